package consensus

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// recordingMetrics is a Metrics that records every call, for tests.
type recordingMetrics struct {
	mu           sync.Mutex // guards every field
	saves        int
	saveEntries  int
	applies      int
	applyEntries int
	leaders      []LeaderInfo // Role unset
	drops        map[DropReason]int
	snaps        map[SnapshotEvent][]uint64
}

func newRecordingMetrics() *recordingMetrics {
	return &recordingMetrics{drops: map[DropReason]int{}, snaps: map[SnapshotEvent][]uint64{}}
}

func (m *recordingMetrics) ObserveSave(d time.Duration, entries int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.saves++
	m.saveEntries += entries
}

func (m *recordingMetrics) ObserveApply(entries int, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.applies++
	m.applyEntries += entries
}

func (m *recordingMetrics) LeaderChanged(leader transport.NodeID, term uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.leaders = append(m.leaders, LeaderInfo{Leader: leader, Term: term})
}

func (m *recordingMetrics) MessageDropped(reason DropReason) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.drops[reason]++
}

func (m *recordingMetrics) Snapshot(ev SnapshotEvent, index uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.snaps[ev] = append(m.snaps[ev], index)
}

func (m *recordingMetrics) get(f func(m *recordingMetrics) int) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return f(m)
}

// checkHistogram fails unless h is a well-formed cumulative histogram.
func checkHistogram(t *testing.T, name string, h Histogram) {
	t.Helper()
	for i := 1; i < HistogramBuckets; i++ {
		if h.Buckets[i] < h.Buckets[i-1] {
			t.Errorf("%s.Buckets[%d] = %d < Buckets[%d] = %d; want cumulative counts", name, i, h.Buckets[i], i-1, h.Buckets[i-1])
		}
	}
	if h.Buckets[HistogramBuckets-1] > h.Count {
		t.Errorf("%s: last bucket %d > Count %d", name, h.Buckets[HistogramBuckets-1], h.Count)
	}
}

// waitStatus sleeps (in the bubble's virtual time) one tick at a time until
// cond holds for n's Status, and fails after limit.
func waitStatus(t *testing.T, n *Node, limit time.Duration, what string, cond func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		st := n.Status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v (virtual); status %+v", what, limit, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestStatusFollowerProgress: the leader's Status reports each follower's
// match, lag (last index − match), role and silence. A partitioned
// follower's lag grows with every write while the other's stays 0; after
// the partition heals it returns to 0.
func TestStatusFollowerProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, net := newMemnetCluster(t, false, memnet.Faults{}, nil)
		ctx := context.Background()
		l := waitLeaderNode(ctx, t, c)
		if _, err := l.Propose(ctx, []byte("a=1")); err != nil {
			t.Fatal(err)
		}
		f, o := c.others(l.ID())[0], c.others(l.ID())[1]

		// A slow link to f: the leader pipelines appends to it (Next runs
		// ahead) while its acknowledgements are on the way; the lag counts
		// what f holds (Match), not what was sent.
		if err := net.SetLinkFaults(l.ID(), f, memnet.Faults{MinDelay: 3 * time.Millisecond, MaxDelay: 3 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Go(func() {
				if _, err := l.Propose(ctx, []byte(fmt.Sprintf("p%d=1", i))); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait() // committed through o, in no virtual time
		st := l.Status()
		if pr := st.Progress[f]; pr.Lag != st.LastIndex-pr.Match || pr.Lag < 10 || pr.Next <= pr.Match+1 {
			t.Errorf("pipelined follower %s: Match %d Next %d Lag %d, LastIndex %d; want Lag = LastIndex - Match >= 10, Next > Match+1",
				f, pr.Match, pr.Next, pr.Lag, st.LastIndex)
		}
		net.ResetLinkFaults(l.ID(), f)
		waitStatus(t, l, 5*time.Second, "pipelined follower's lag back to 0", func(st Status) bool {
			return st.Progress[f].Lag == 0
		})

		net.Partition([]transport.NodeID{f}, []transport.NodeID{l.ID(), o})
		before := l.Status().Progress[f].Match

		const writes = 10
		for i := range writes {
			if _, err := l.Propose(ctx, []byte(fmt.Sprintf("k%d=%d", i, i))); err != nil {
				t.Fatal(err)
			}
		}
		cfg := c.cfg(l.ID())
		time.Sleep(time.Duration(2*cfg.ElectionTicks) * cfg.TickInterval)
		st = l.Status()
		for id, pr := range st.Progress {
			if pr.Lag != st.LastIndex-pr.Match {
				t.Errorf("Progress[%s].Lag = %d; want LastIndex %d - Match %d", id, pr.Lag, st.LastIndex, pr.Match)
			}
			if pr.Learner {
				t.Errorf("Progress[%s].Learner = true; want a voter", id)
			}
		}
		if got := st.Progress[f]; got.Match != before || got.Lag < writes {
			t.Errorf("partitioned follower %s: Match %d Lag %d; want Match %d (unchanged) and Lag >= %d", f, got.Match, got.Lag, before, writes)
		}
		if got := st.Progress[f]; got.RecentActive || got.TicksSinceHeard < uint64(cfg.ElectionTicks) {
			t.Errorf("partitioned follower %s: RecentActive %v TicksSinceHeard %d; want false and >= %d", f, got.RecentActive, got.TicksSinceHeard, cfg.ElectionTicks)
		}
		if got := st.Progress[o]; got.Lag != 0 || !got.RecentActive || got.TicksSinceHeard > uint64(cfg.HeartbeatTicks)+1 {
			t.Errorf("connected follower %s: Lag %d RecentActive %v TicksSinceHeard %d; want 0, true, <= %d", o, got.Lag, got.RecentActive, got.TicksSinceHeard, cfg.HeartbeatTicks+1)
		}

		net.Heal()
		st = waitStatus(t, l, 5*time.Second, "healed follower's lag back to 0", func(st Status) bool {
			return st.Progress[f].Lag == 0
		})
		if got := st.Progress[f]; got.Match != st.LastIndex {
			t.Errorf("healed follower %s: Match %d; want LastIndex %d", f, got.Match, st.LastIndex)
		}
		if fs := c.nodes[f].Status(); fs.Progress != nil {
			t.Errorf("follower %s: Progress = %v; want nil on a follower", f, fs.Progress)
		}
	})
}

// countingStorage counts the Saves that write to disk: entries, or a new
// term or vote (a commit index alone is saved lazily, without fsync).
type countingStorage struct {
	nodeStorage
	saves, voteSaves atomic.Int64
	last             raft.HardState // owned by the node's loop
}

func (s *countingStorage) Save(hs raft.HardState, ents []raft.Entry) error {
	newVote := !hs.IsZero() && (hs.Term != s.last.Term || hs.Vote != s.last.Vote)
	if newVote || len(ents) > 0 {
		s.saves.Add(1)
	}
	if newVote && len(ents) == 0 {
		s.voteSaves.Add(1)
	}
	if !hs.IsZero() {
		s.last = hs
	}
	return s.nodeStorage.Save(hs, ents)
}

// TestStatusLatencyHistograms: every Save that writes to disk (entries, or
// a term or vote alone; not a commit index alone) is counted in SaveLatency and reported to Metrics.ObserveSave, every applied
// entry in an ObserveApply batch; the histograms are cumulative.
func TestStatusLatencyHistograms(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net, err := memnet.New(memnet.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer net.Close()
		nodes := map[transport.NodeID]*Node{}
		stores := map[transport.NodeID]*countingStorage{}
		recs := map[transport.NodeID]*recordingMetrics{}
		for _, id := range three {
			tr, err := net.Join(id)
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			recs[id] = newRecordingMetrics()
			cfg := testConfig(id, three)
			cfg.Metrics = recs[id]
			stores[id] = &countingStorage{nodeStorage: &memStorage{MemoryStorage: raft.NewMemoryStorage()}}
			n, err := newNode(cfg, tr, newKV(), stores[id])
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			nodes[id] = n
		}
		ctx := context.Background()
		lead, err := nodes["n1"].WaitLeader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			if _, err := nodes[lead].Propose(ctx, []byte(fmt.Sprintf("k%d=1", i))); err != nil {
				t.Fatal(err)
			}
		}
		cfg := testConfig("n1", three)
		time.Sleep(time.Duration(2*cfg.HeartbeatTicks) * cfg.TickInterval) // the followers learn the commit index
		var voteSaves int64
		for _, id := range three {
			n, store, rec := nodes[id], stores[id], recs[id]
			if err := n.Close(); err != nil { // no Save or apply after this
				t.Fatal(err)
			}
			st := n.Status()
			saves := store.saves.Load()
			voteSaves += store.voteSaves.Load()
			if saves == 0 || st.SaveLatency.Count != uint64(saves) {
				t.Errorf("%s: SaveLatency.Count = %d; want the %d Saves that wrote to disk (> 0)", id, st.SaveLatency.Count, saves)
			}
			if got := rec.get(func(m *recordingMetrics) int { return m.saves }); got != int(saves) {
				t.Errorf("%s: ObserveSave called %d times; want %d", id, got, saves)
			}
			if got := rec.get(func(m *recordingMetrics) int { return m.saveEntries }); uint64(got) != st.LastIndex {
				t.Errorf("%s: ObserveSave entries add up to %d; want LastIndex %d", id, got, st.LastIndex)
			}
			if got := rec.get(func(m *recordingMetrics) int { return m.applyEntries }); uint64(got) != st.Applied || st.Applied < 20 {
				t.Errorf("%s: ObserveApply entries add up to %d; want Applied %d (>= 20)", id, got, st.Applied)
			}
			if got := rec.get(func(m *recordingMetrics) int { return m.applies }); st.ApplyLatency.Count != uint64(got) || got == 0 {
				t.Errorf("%s: ApplyLatency.Count = %d; want the %d ObserveApply calls (> 0)", id, st.ApplyLatency.Count, got)
			}
			checkHistogram(t, string(id)+" SaveLatency", st.SaveLatency)
			checkHistogram(t, string(id)+" ApplyLatency", st.ApplyLatency)
			// Virtual time stands still during a Save: every one took 0, in
			// the first bucket.
			if st.SaveLatency.Buckets[0] != st.SaveLatency.Count || st.LastSaveDuration != 0 {
				t.Errorf("%s: SaveLatency = %+v, LastSaveDuration %v; want every Save of 0s in the first bucket", id, st.SaveLatency, st.LastSaveDuration)
			}
			rec.mu.Lock()
			leaders := rec.leaders
			rec.mu.Unlock()
			if len(leaders) == 0 || leaders[len(leaders)-1] != (LeaderInfo{Leader: lead, Term: st.Term}) {
				t.Errorf("%s: LeaderChanged calls %v; want the last to be (%s, %d)", id, leaders, lead, st.Term)
			}
		}
		if voteSaves == 0 {
			t.Errorf("no Save of a term or vote alone; the test needs one")
		}
	})
}

// TestHistogramBuckets: an observation lands in the first bucket whose
// bound is at least it, counts are cumulative, larger ones only in Count.
func TestHistogramBuckets(t *testing.T) {
	tests := []struct {
		d     time.Duration
		first int // first bucket counting d; HistogramBuckets: none
	}{
		{0, 0},
		{50 * time.Microsecond, 0},
		{50*time.Microsecond + 1, 1},
		{100 * time.Microsecond, 1},
		{time.Millisecond, 5}, // 1.6 ms
		{HistogramBound(HistogramBuckets - 1), HistogramBuckets - 1},
		{HistogramBound(HistogramBuckets-1) + 1, HistogramBuckets},
		{time.Hour, HistogramBuckets},
	}
	for _, tt := range tests {
		t.Run(tt.d.String(), func(t *testing.T) {
			var h histogram
			h.observe(tt.d)
			got := h.snapshot()
			for i := range HistogramBuckets {
				want := uint64(0)
				if i >= tt.first {
					want = 1
				}
				if got.Buckets[i] != want {
					t.Errorf("observe(%v): Buckets[%d] (le %v) = %d; want %d", tt.d, i, HistogramBound(i), got.Buckets[i], want)
				}
			}
			if got.Count != 1 || got.Sum != tt.d {
				t.Errorf("observe(%v): Count %d Sum %v; want 1, %v", tt.d, got.Count, got.Sum, tt.d)
			}
		})
	}
	if HistogramBound(0) != 50*time.Microsecond || HistogramBound(HistogramBuckets-1) != 1638400*time.Microsecond ||
		HistogramBound(-1) != 0 || HistogramBound(HistogramBuckets) != 0 {
		t.Errorf("HistogramBound: 0 -> %v, %d -> %v, out of range -> %v, %v; want 50µs, 1.6384s, 0, 0",
			HistogramBound(0), HistogramBuckets-1, HistogramBound(HistogramBuckets-1), HistogramBound(-1), HistogramBound(HistogramBuckets))
	}
	if m := (Histogram{Count: 4, Sum: time.Second}).Mean(); m != 250*time.Millisecond {
		t.Errorf("Mean = %v; want 250ms", m)
	}
}

// TestStatusSnapshotCounters: a follower cut off while the others snapshot
// and compact is brought back by a snapshot: the leader counts it sent,
// the follower installed, every node taken; Metrics sees the same.
func TestStatusSnapshotCounters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		recs := map[transport.NodeID]*recordingMetrics{}
		for _, id := range three {
			recs[id] = newRecordingMetrics()
		}
		c, net := newMemnetCluster(t, false, memnet.Faults{}, func(cfg *Config) {
			cfg.SnapshotThreshold = 5
			cfg.SnapshotRetainEntries = 1
			cfg.Metrics = recs[cfg.ID]
		})
		ctx := context.Background()
		l := waitLeaderNode(ctx, t, c)
		f := c.others(l.ID())[0]
		net.Isolate(f)
		var last uint64
		for i := range 20 {
			v, err := l.Propose(ctx, []byte(fmt.Sprintf("k%d=%d", i, i)))
			if err != nil {
				t.Fatal(err)
			}
			last = v.(uint64)
		}
		net.Heal()
		if err := c.sms[f].waitApplied(ctx, last); err != nil {
			t.Fatal(err)
		}
		ls, fs := l.Status(), c.nodes[f].Status()
		if ls.SnapshotsTaken == 0 || ls.SnapshotsSent == 0 || ls.SnapshotChunksSent < ls.SnapshotsSent {
			t.Errorf("leader: SnapshotsTaken %d SnapshotsSent %d SnapshotChunksSent %d; want > 0, > 0, >= sent",
				ls.SnapshotsTaken, ls.SnapshotsSent, ls.SnapshotChunksSent)
		}
		if fs.SnapshotsInstalled == 0 || fs.SnapshotsSent != 0 {
			t.Errorf("follower: SnapshotsInstalled %d SnapshotsSent %d; want > 0 and 0", fs.SnapshotsInstalled, fs.SnapshotsSent)
		}
		for _, tc := range []struct {
			id   transport.NodeID
			ev   SnapshotEvent
			want uint64
		}{
			{l.ID(), SnapshotTaken, ls.SnapshotsTaken},
			{l.ID(), SnapshotSent, ls.SnapshotsSent},
			{f, SnapshotInstalled, fs.SnapshotsInstalled},
		} {
			if got := recs[tc.id].get(func(m *recordingMetrics) int { return len(m.snaps[tc.ev]) }); uint64(got) != tc.want {
				t.Errorf("%s: Metrics.Snapshot(%v) called %d times; want %d as in Status", tc.id, tc.ev, got, tc.want)
			}
		}
	})
}

// TestStatusCountsDrops: messages the transport refuses and messages that
// cannot be decoded are counted by reason, and reported to Metrics.
func TestStatusCountsDrops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net, err := memnet.New(memnet.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer net.Close()
		tr, err := net.Join("n1")
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		other, err := net.Join("x")
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		rec := newRecordingMetrics()
		// n2 and n3 never join: every vote request n1 sends them fails.
		cfg := testConfig("n1", three)
		cfg.Metrics = rec
		n, err := New(cfg, tr, newKV())
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		waitStatus(t, n, 10*time.Second, "a failed send", func(st Status) bool { return st.DroppedSendFailed > 0 })
		if err := other.Send(context.Background(), "n1", cfg.Service, []byte("garbage")); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		st := n.Status() // final: no more sends
		if st.DroppedMalformed != 1 {
			t.Errorf("DroppedMalformed = %d; want 1", st.DroppedMalformed)
		}
		for reason, want := range map[DropReason]uint64{DropSendFailed: st.DroppedSendFailed, DropMalformed: 1, DropQueueFull: 0} {
			if got := rec.get(func(m *recordingMetrics) int { return m.drops[reason] }); uint64(got) != want {
				t.Errorf("MessageDropped(%v) called %d times; want %d", reason, got, want)
			}
		}
	})
}

// TestMetricsConfig: a typed nil Metrics is refused; the names used as
// labels are stable.
func TestMetricsConfig(t *testing.T) {
	cfg := testConfig("n1", three)
	cfg.Metrics = (*recordingMetrics)(nil)
	if err := cfg.Validate(); err == nil {
		t.Errorf("Validate with a typed nil Metrics = nil; want an error")
	}
	names := map[fmt.Stringer]string{
		DropForeignCluster: "foreign_cluster", DropNonMember: "non_member", DropMalformed: "malformed",
		DropQueueFull: "queue_full", DropSendFailed: "send_failed", DropReason(0): "unknown", DropReason(99): "unknown",
		SnapshotTaken: "taken", SnapshotSent: "sent", SnapshotInstalled: "installed", SnapshotEvent(0): "unknown",
	}
	for v, want := range names {
		if got := v.String(); got != want {
			t.Errorf("%#v.String() = %q; want %q", v, got, want)
		}
	}
}

// BenchmarkObserver is the cost the observability adds to one Ready that
// persists and applies entries, with no Config.Metrics: four clock reads,
// a Save and an apply observation. The clock dominates.
func BenchmarkObserver(b *testing.B) {
	var o observer
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		o.saved(time.Since(start), 1)
		start = time.Now()
		o.applied(1, time.Since(start))
	}
}

// startAlone starts node n1 of the cluster peers on a memnet network of
// its own, with Metrics rec and tweak applied to its Config.
func startAlone(t *testing.T, peers []transport.NodeID, sm StateMachine, rec Metrics, tweak func(*Config)) *Node {
	t.Helper()
	tr := aloneTransport(t)
	cfg := testConfig("n1", peers)
	cfg.Metrics = rec
	if tweak != nil {
		tweak(&cfg)
	}
	n, err := New(cfg, tr, sm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() }) // before the transport's (cleanups run last first)
	return n
}

// aloneTransport returns node n1's transport on a memnet network of its
// own; both are closed when the test ends.
func aloneTransport(t *testing.T) transport.Transport {
	t.Helper()
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	tr, err := net.Join("n1")
	if err != nil {
		net.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tr.Close()
		net.Close()
	})
	return tr
}

// TestStatusBackgroundSnapshotCounted: a snapshot written by the Node's
// snapshot goroutine (a SnapshotViewer) is counted once recorded.
func TestStatusBackgroundSnapshotCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		close(release)
		sm := &viewSM{kvSM: newKV(), release: release, started: new(atomic.Int32), released: new(atomic.Int32)}
		rec := newRecordingMetrics()
		n := startAlone(t, []transport.NodeID{"n1"}, sm, rec, func(cfg *Config) {
			cfg.SnapshotThreshold = 5
			cfg.SnapshotRetainEntries = 1
		})
		ctx := context.Background()
		if _, err := n.WaitLeader(ctx); err != nil {
			t.Fatal(err)
		}
		for i := range 12 {
			if _, err := n.Propose(ctx, []byte(fmt.Sprintf("k%d=1", i))); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait() // the snapshot goroutine is done
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		st := n.Status()
		if st.SnapshotsTaken == 0 || sm.started.Load() == 0 {
			t.Fatalf("SnapshotsTaken = %d after %d background snapshots; want > 0", st.SnapshotsTaken, sm.started.Load())
		}
		if got := rec.get(func(m *recordingMetrics) int { return len(m.snaps[SnapshotTaken]) }); uint64(got) != st.SnapshotsTaken {
			t.Errorf("Metrics.Snapshot(taken) called %d times; want %d", got, st.SnapshotsTaken)
		}
	})
}

// TestStatusCountsQueueFull: received messages beyond maxQueuedMessages
// while the loop is busy are dropped and counted.
func TestStatusCountsQueueFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecordingMetrics()
		n := startAlone(t, three, newKV(), rec, nil)
		m := raft.Message{Type: raft.MsgHeartbeat, From: "n2", To: "n1", Term: 1}
		payload, err := m.MarshalAppend(appendEnvelopeHeader(nil, n.clusterID))
		if err != nil {
			t.Fatal(err)
		}
		// Hold the loop: nothing drains the queue meanwhile.
		busy, release := make(chan struct{}), make(chan struct{})
		if err := n.do(context.Background(), func() { close(busy); <-release }); err != nil {
			t.Fatal(err)
		}
		<-busy
		const extra = 5
		for range maxQueuedMessages + extra {
			n.receive(transport.Message{From: "n2", To: "n1", Service: "raft", Payload: payload})
		}
		close(release)
		st := n.Status()
		if st.DroppedQueueFull != extra {
			t.Errorf("DroppedQueueFull = %d; want %d", st.DroppedQueueFull, extra)
		}
		if got := rec.get(func(m *recordingMetrics) int { return m.drops[DropQueueFull] }); got != extra {
			t.Errorf("MessageDropped(queue_full) called %d times; want %d", got, extra)
		}
	})
}
