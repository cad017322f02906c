package txn_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/internal/vfs"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
	"github.com/distkit/distkit/txn"
)

// TestReplicatedPowerLoss cuts the power of replicated-coordinator
// replicas while transactions run, in virtual time (a synctest bubble per
// seed). Each of the three replicas keeps its consensus log in a DataDir
// on a vfs.CrashFS of its own (consensus.Config.FS) and snapshots its
// transaction table every few entries, so that restarts go through
// snapshot restore and log replay. A power cut makes the replica's k-th
// next fsync fail (the node must stop there: fail-stop), takes it off the
// network, crashes its file system (what was not fsynced is lost or torn
// at sector granularity, directory entries not synced are gone) and
// restarts it from what survived. A round cuts one replica, two (no
// majority until the first is back) or all three (every replica restarts
// from its own snapshot and log). In half the rounds two participants, q1
// and q2, are cut off from everyone right after the COMMIT of a
// transaction over them is applied in the replicated log (the step hook)
// and before they hear of it, while the others' transactions go on: it
// stays committed and not ended in the table, through snapshots and the
// power cut, and neither can learn the outcome from the other. Victims
// (the leader more often than not), k, the downtimes and the pauses are
// drawn from the seed.
//
// Checks, per round: a replica whose fsync failed stopped; every restart
// succeeds; once a majority of replicas is up (the survivors, from the
// victim's death; the first victim back when two were down, the second
// when all three were; and not before q1 and q2 are back), no participant
// stays in doubt longer than plBound: an election (which pre-vote's lease
// can stretch to three minimum election timeouts), a query round, the
// message delays, and one election timeout per extra election term the
// group needed (a split vote; the log says how many); a round that exceeds
// it prints the timeline of roles, terms and participants in doubt. At the
// end: every transaction (adding 1 to its own key on two participants) is
// applied on both or neither, as its caller was told when it was told
// (committed: on both; aborted: on neither), a last transaction commits,
// and no participant is in doubt or holds a lock.
//
// The seed fixes every random choice of the test, the file systems and the
// network; goroutine interleavings inside the bubble may still differ
// between runs. A failure prints the seed: DISTKIT_SEED=N replays it,
// DISTKIT_SOAK=1 runs 25 times as many seeds.
func TestReplicatedPowerLoss(t *testing.T) {
	for _, seed := range powerLossSeeds(t, 4, 25) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			bubble(t, func(t *testing.T) { replicatedPowerLossTrial(t, seed) })
			if t.Failed() {
				t.Logf("replay: DISTKIT_SEED=%d go test -run TestReplicatedPowerLoss ./txn", seed)
			}
		})
	}
}

// powerLossSeeds returns seeds 1..n, soak times as many with
// DISTKIT_SOAK=1, or the one DISTKIT_SEED names.
func powerLossSeeds(t *testing.T, n, soak uint64) []uint64 {
	t.Helper()
	if s := os.Getenv("DISTKIT_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("DISTKIT_SEED=%q: %v", s, err)
		}
		return []uint64{seed}
	}
	if os.Getenv("DISTKIT_SOAK") == "1" {
		n *= soak
	}
	var seeds []uint64
	for s := uint64(1); s <= n; s++ {
		seeds = append(seeds, s)
	}
	return seeds
}

// plReplica is one coordinator replica's machine: its disk, how many times
// it started, and what runs on it now.
type plReplica struct {
	fs     *vfs.CrashFS
	starts int
	rc     *txn.ReplicatedCoordinator
}

// plCluster is three replicas on crash file systems and five
// participants (memory logs: their power loss is TestRuntimePowerLoss's)
// on one memnet network: the workers use p1, p2 and p3; q1 and q2 take
// the transactions that are cut off after their COMMIT.
type plCluster struct {
	t        *testing.T
	seed     uint64
	snapshot uint64 // SnapshotThreshold
	net      *memnet.Network
	replicas []transport.NodeID
	parts    []transport.NodeID
	trs      map[transport.NodeID]*memnet.Transport
	stores   map[transport.NodeID]*txn.Store
	partsRun map[transport.NodeID]*txn.Participant

	mu   sync.Mutex // guards reps' fs and rc
	reps map[transport.NodeID]*plReplica

	// quit stops every worker (close); work counts them.
	quit     chan struct{}
	quitOnce sync.Once
	work     sync.WaitGroup
	tl       *plTimeline
}

func (c *plCluster) start(id transport.NodeID) {
	c.t.Helper()
	c.mu.Lock()
	r := c.reps[id]
	r.starts++
	fs, starts := r.fs, r.starts
	c.mu.Unlock()
	rc := consensus.DefaultConfig()
	rc.ID, rc.Peers, rc.Service = id, c.replicas, "txn/raft"
	rc.TickInterval, rc.ElectionTicks = rcTick, rcElectionTicks
	rc.Seed = c.seed*1000 + uint64(slices.Index(c.replicas, id))*100 + uint64(starts)
	rc.DataDir, rc.FS = "/data/"+string(id), fs
	rc.SnapshotThreshold, rc.SnapshotRetainEntries = c.snapshot, 2
	coord, err := txn.NewReplicatedCoordinator(c.trs[id], rc, rcTxnConfig())
	if err != nil {
		c.t.Fatalf("seed %d: %s: start %d (file system seed %d): %v", c.seed, id, starts, fs.Seed(), err)
	}
	c.mu.Lock()
	r.rc = coord
	c.mu.Unlock()
}

func (c *plCluster) coord(id transport.NodeID) *txn.ReplicatedCoordinator {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reps[id].rc
}

// leader returns the live replica that leads and has taken over, or nil.
func (c *plCluster) leader() *txn.ReplicatedCoordinator {
	for _, id := range c.replicas {
		if rc := c.coord(id); rc != nil && !c.net.Crashed(id) && rc.Stats().Leading {
			return rc
		}
	}
	return nil
}

func (c *plCluster) leaderID() transport.NodeID {
	for _, id := range c.replicas {
		if rc := c.coord(id); rc != nil && !c.net.Crashed(id) && rc.Stats().Leading {
			return id
		}
	}
	return ""
}

// term returns the highest term a live replica is in.
func (c *plCluster) term() uint64 {
	var term uint64
	for _, id := range c.replicas {
		if rc := c.coord(id); rc != nil && !c.net.Crashed(id) {
			term = max(term, rc.Node().Status().Term)
		}
	}
	return term
}

func (c *plCluster) inDoubt() int {
	n := 0
	for _, p := range c.partsRun {
		n += p.Stats().InDoubt
	}
	return n
}

// powerCut cuts the power of victims: the k-th next fsync of each fails,
// and the node must stop on it; a victim with nothing to write by a
// deadline loses its power wherever it is. Each victim leaves the network
// as soon as it stopped, then its disk keeps only what survives a crash,
// and it is closed (not restarted). It returns when the last one died.
//
// The exception: an fsync of a snapshot being received from the leader
// (a file not yet installed, which nothing the node promised depends on)
// only makes the node refuse that chunk and drop the file; the node goes
// on and the leader's next transfer starts over
// (consensus.TestSnapshotStreamReceiveFailure). Such a victim loses its
// power at the deadline.
func (c *plCluster) powerCut(victims []transport.NodeID, ks []int) time.Time {
	before := make([]int, len(victims)) // FailedSyncs of each before the cut
	for i, id := range victims {
		c.mu.Lock()
		fs := c.reps[id].fs
		c.mu.Unlock()
		before[i] = len(fs.FailedSyncs())
		fs.InjectSyncError(ks[i])
	}
	down := make([]bool, len(victims))
	poll := func() bool {
		all := true
		for i, id := range victims {
			if !down[i] && c.coord(id).Node().Status().Err != nil {
				down[i] = true
				c.net.Crash(id)
			}
			all = all && down[i]
		}
		return all
	}
	for i := 0; i < 200 && !poll(); i++ {
		time.Sleep(time.Millisecond)
	}
	// A replica whose fsync failed must stop (it cannot know what of its
	// log or vote is on disk); give one that failed just now a moment.
	for i := 0; i < 20 && !poll(); i++ {
		time.Sleep(time.Millisecond)
	}
	for i, id := range victims {
		c.mu.Lock()
		fs := c.reps[id].fs
		c.mu.Unlock()
		for _, name := range fs.FailedSyncs()[before[i]:] {
			if !down[i] && !strings.HasPrefix(path.Base(name), ".snapshot.recv-") {
				c.t.Errorf("seed %d: %s kept running after its fsync of %s failed", c.seed, id, name)
			}
		}
	}
	died := time.Now()
	for _, id := range victims {
		c.net.Crash(id) // no-op if already off
		c.mu.Lock()
		r := c.reps[id]
		after := r.fs.Crash()
		rc := r.rc
		r.fs, r.rc = after, nil
		c.mu.Unlock()
		rc.Close() // the storage error that stopped it, or the dead disk's
	}
	return died
}

func (c *plCluster) restart(id transport.NodeID) {
	c.t.Helper()
	if err := c.net.Restart(id); err != nil {
		c.t.Fatal(err)
	}
	c.start(id)
}

// close stops everything, also after a t.Fatal in the middle of a round:
// no goroutine of the bubble may outlive it.
func (c *plCluster) close() {
	c.quitOnce.Do(func() { close(c.quit) })
	for _, id := range c.replicas {
		if rc := c.coord(id); rc != nil {
			rc.Close() // a worker waiting in Run returns
		}
	}
	c.work.Wait()
	if c.tl != nil {
		c.tl.stop()
	}
	for _, p := range c.partsRun {
		p.Close()
	}
	c.net.Close()
}

// plMaxDelay is the most a message takes in TestReplicatedPowerLoss.
const plMaxDelay = 2 * time.Millisecond

// plBound is how long a participant may stay in doubt once a majority of
// replicas is up, in TestReplicatedPowerLoss:
//
//   - the election: up to three minimum election timeouts (3 x
//     ElectionTicks ticks), not the two of inDoubtBound. With pre-vote and
//     check-quorum a follower refuses to pre-vote while it heard from the
//     leader within the minimum election timeout (or, restarted, within
//     that long of its start), so the most up-to-date survivor may time
//     out first, be refused by the other's lease, and win only at its
//     next timeout, up to two minimum timeouts later (the timelines of
//     the first soak runs showed exactly this, at 131-143 ms);
//   - one query round (RetryInterval) and two coordinator ticks, as in
//     inDoubtBound;
//   - ten message delays (the pre-vote and vote requests and answers, the
//     takeover's append and acknowledgement, a query to a replica that
//     does not lead and its leader hint, the query to the leader and its
//     answer): inDoubtBound is for a network without delays;
//   - an election timeout (the longest) for every extra election term (a
//     split vote).
func plBound(extraTerms int) time.Duration {
	cfg := rcTxnConfig()
	return 3*rcElectionTicks*rcTick + cfg.RetryInterval + 2*cfg.TickInterval +
		10*plMaxDelay + time.Duration(extraTerms)*rcElection
}

// plEvent is a change the timeline saw.
type plEvent struct {
	at   time.Time
	what string
}

// plTimeline samples, every millisecond, each replica's role and term and
// the participants in doubt, and records the changes (printed when a
// round's bound is exceeded).
type plTimeline struct {
	done   chan struct{}
	wg     sync.WaitGroup
	events []plEvent
}

func (c *plCluster) timeline() *plTimeline {
	tl := &plTimeline{done: make(chan struct{})}
	tl.wg.Go(func() {
		last := ""
		for {
			s := ""
			for _, id := range c.replicas {
				switch rc := c.coord(id); {
				case rc == nil || c.net.Crashed(id):
					s += fmt.Sprintf("%s:off ", id)
				default:
					st := rc.Node().Status()
					role := st.Role.String()
					if st.Err != nil {
						role = "stopped"
					}
					if rc.Stats().Leading {
						role += "+leading"
					}
					s += fmt.Sprintf("%s:%s/t%d ", id, role, st.Term)
				}
			}
			s += fmt.Sprintf("in-doubt:%d", c.inDoubt())
			if s != last {
				tl.events = append(tl.events, plEvent{time.Now(), s})
				last = s
			}
			select {
			case <-tl.done:
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
	return tl
}

func (tl *plTimeline) stop() []plEvent {
	close(tl.done)
	tl.wg.Wait()
	return tl.events
}

// plResult is what a transaction's caller was told.
type plResult struct {
	key    string
	pa, pb transport.NodeID
	err    error
}

// workers runs transactions from four goroutines until stop (or the
// cluster's quit) is closed; each adds 1 to a key of its own on two of
// p1, p2 and p3.
func (c *plCluster) workers(label string, stop <-chan struct{}, out *[]plResult, mu *sync.Mutex) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := range 4 {
		c.work.Add(1)
		wg.Go(func() {
			defer c.work.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-c.quit:
					return
				default:
				}
				l := c.leader()
				if l == nil {
					time.Sleep(rcTick)
					continue
				}
				key := fmt.Sprintf("%s-w%d-%d", label, w, i)
				pa, pb := c.parts[(w+i)%3], c.parts[(w+i+1)%3]
				ops, _ := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: key, Amount: 1})
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := l.Run(ctx, txn.Work{Participant: pa, Ops: ops}, txn.Work{Participant: pb, Ops: ops})
				cancel()
				if errors.Is(err, txn.ErrNotLeader) {
					continue
				}
				mu.Lock()
				*out = append(*out, plResult{key, pa, pb, err})
				mu.Unlock()
				time.Sleep(time.Millisecond)
			}
		})
	}
	return &wg
}

func replicatedPowerLossTrial(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 16))
	ncfg := memnet.DefaultConfig()
	ncfg.Seed = int64(seed)
	net, err := memnet.New(ncfg)
	if err != nil {
		t.Fatal(err)
	}
	// Latencies up to 2 ms: of the messages a replica sends just before
	// its power fails, some arrive and some do not.
	if err := net.SetFaults(memnet.Faults{MaxDelay: plMaxDelay}); err != nil {
		t.Fatal(err)
	}
	c := &plCluster{t: t, seed: seed, snapshot: uint64(4 + rng.IntN(12)), net: net,
		replicas: []transport.NodeID{"r1", "r2", "r3"}, parts: []transport.NodeID{"p1", "p2", "p3", "q1", "q2"},
		trs: map[transport.NodeID]*memnet.Transport{}, stores: map[transport.NodeID]*txn.Store{},
		partsRun: map[transport.NodeID]*txn.Participant{}, reps: map[transport.NodeID]*plReplica{},
		quit: make(chan struct{})}
	defer c.close()
	for i, id := range append(slices.Clone(c.replicas), c.parts...) {
		if c.trs[id], err = net.Join(id); err != nil {
			t.Fatal(err)
		}
		if slices.Contains(c.replicas, id) {
			c.reps[id] = &plReplica{fs: vfs.NewCrashFS(seed*10 + uint64(i))}
		}
	}
	for _, id := range c.replicas {
		c.start(id)
	}
	for _, id := range c.parts {
		st := txn.NewStore()
		if c.partsRun[id], err = txn.NewParticipant(c.trs[id], txn.NewMemoryLog(), st, rcTxnConfig()); err != nil {
			t.Fatal(err)
		}
		c.stores[id] = st
	}

	var rmu sync.Mutex
	var results []plResult
	rounds, cuts := 8, 0
	for round := range rounds {
		stop := make(chan struct{})
		wg := c.workers(fmt.Sprintf("r%d", round), stop, &results, &rmu)
		time.Sleep(time.Duration(20+rng.IntN(150)) * time.Millisecond)
		// Half the rounds cut two participants, q1 and q2, off from
		// everyone right after the COMMIT of a transaction over them is in
		// the replicated log, before they hear of it (the matrix's
		// "applied COMMIT" point, with a partition in place of the
		// crash): it stays committed and not ended in the replicated
		// table, through snapshots and the power cut, until they are
		// back; neither can learn the outcome from the other.
		isolated := false
		if rng.IntN(2) == 0 {
			close(stop) // alone, so that the next COMMIT applied is its
			wg.Wait()
			isolated = true
			var once sync.Once
			isolate := func() {
				once.Do(func() {
					c.net.Isolate("q1")
					c.net.Isolate("q2")
				})
			}
			if l := c.leader(); l != nil {
				txn.SetStepHook(l, func(step string) {
					if step == "applied COMMIT" {
						isolate()
					}
				})
				key := fmt.Sprintf("r%d-q", round)
				ops, _ := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: key, Amount: 1})
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := l.Run(ctx, txn.Work{Participant: "q1", Ops: ops}, txn.Work{Participant: "q2", Ops: ops})
				cancel()
				if !errors.Is(err, txn.ErrNotLeader) {
					rmu.Lock()
					results = append(results, plResult{key, "q1", "q2", err})
					rmu.Unlock()
				}
			}
			isolate() // also if the leader changed meanwhile
			// More transactions (snapshots) while they are away.
			stop = make(chan struct{})
			wg = c.workers(fmt.Sprintf("r%d-after", round), stop, &results, &rmu)
			time.Sleep(time.Duration(30+rng.IntN(120)) * time.Millisecond)
		}

		// The victims: the leader more often than not; one replica, two
		// (no majority until the first is back) or all three (the whole
		// group: every replica restarts from its own snapshot and log),
		// a third of the rounds each.
		victims := []transport.NodeID{c.replicas[rng.IntN(3)]}
		if l := c.leaderID(); l != "" && rng.IntN(3) != 0 {
			victims[0] = l
		}
		i := slices.Index(c.replicas, victims[0])
		switch rng.IntN(3) {
		case 2:
			victims = append(victims, c.replicas[(i+1)%3], c.replicas[(i+2)%3])
		case 1:
			victims = append(victims, c.replicas[(i+1+rng.IntN(2))%3])
		}
		ks := []int{1 + rng.IntN(6), 1 + rng.IntN(6), 1 + rng.IntN(6)}[:len(victims)]
		termBefore := c.term()
		c.tl = c.timeline()
		died := c.powerCut(victims, ks)
		close(stop) // the transactions in flight go on; no new ones
		cuts += len(victims)

		// majorityUp: from when a majority of replicas is up (at once
		// when only one replica lost its power).
		majorityUp := died
		up := 3 - len(victims)
		for _, v := range victims {
			time.Sleep(time.Duration(rng.IntN(100)) * time.Millisecond)
			c.restart(v)
			if up++; up == 2 && len(victims) > 1 {
				majorityUp = time.Now()
			}
		}
		if isolated {
			// Back: from now on they can learn the outcome.
			c.net.Heal()
			majorityUp = time.Now()
		}
		for time.Since(majorityUp) <= 20*plBound(0) && c.inDoubt() > 0 {
			time.Sleep(time.Millisecond)
		}
		took := time.Since(majorityUp)
		// Each term beyond the one election a leader's loss costs is a
		// split vote, which costs up to another election timeout.
		extra := 0
		if tb, ta := termBefore, c.term(); ta > tb+1 {
			extra = int(ta - tb - 1)
		}
		bound := plBound(extra)
		t.Logf("seed %d round %d: power cut %v (fsync %v), q1 and q2 cut off %v, in doubt %v after a majority was up (bound %v, %d extra election terms)",
			seed, round, victims, ks, isolated, took, bound, extra)
		events := c.tl.stop()
		c.tl = nil
		if n := c.inDoubt(); n > 0 || took > bound {
			t.Errorf("seed %d round %d: participants in doubt for %v after a majority of replicas was up (%d still in doubt); bound %v; timeline (from the majority up):",
				seed, round, took, n, bound)
			for _, e := range events {
				t.Logf("  %+8v %s", e.at.Sub(majorityUp), e.what)
			}
		}
		wg.Wait()
		if t.Failed() {
			return
		}
	}

	// A last transaction commits, and the group settles.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ops, _ := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: "final", Amount: 1})
	for {
		l := c.leader()
		if l == nil {
			if ctx.Err() != nil {
				t.Fatalf("seed %d: no leader after the power cuts", seed)
			}
			time.Sleep(rcTick)
			continue
		}
		_, err := l.Run(ctx, txn.Work{Participant: "p1", Ops: ops}, txn.Work{Participant: "p2", Ops: ops})
		if err == nil {
			results = append(results, plResult{"final", "p1", "p2", nil})
			if err := l.Quiesce(ctx); err == nil {
				break
			}
		} else if !errors.Is(err, txn.ErrNotLeader) || ctx.Err() != nil {
			t.Fatalf("seed %d: last transaction: %v", seed, err)
		}
	}

	committed, aborted, unknown, wrong := 0, 0, 0, 0
	bad := func(format string, args ...any) {
		if wrong++; wrong <= 10 {
			t.Errorf("seed %d: "+format, append([]any{seed}, args...)...)
		}
	}
	for _, r := range results {
		va, _ := c.stores[r.pa].Get(r.key)
		vb, _ := c.stores[r.pb].Get(r.key)
		switch {
		case va != vb:
			bad("%s: %s has %d, %s has %d; want the same", r.key, r.pa, va, r.pb, vb)
		case va != 0 && va != 1:
			bad("%s: applied %d times", r.key, va)
		case r.err == nil && va != 1:
			bad("%s: Run() = committed; not applied", r.key)
		case errors.Is(r.err, txn.ErrAborted) && va != 0:
			bad("%s: Run() = %v; applied", r.key, r.err)
		}
		switch {
		case r.err == nil:
			committed++
		case errors.Is(r.err, txn.ErrAborted):
			aborted++
		default:
			unknown++
		}
	}
	for _, p := range c.parts {
		if n := c.stores[p].Locked(); n != 0 {
			t.Errorf("seed %d: %s holds %d locks", seed, p, n)
		}
	}
	if n := c.inDoubt(); n != 0 {
		t.Errorf("seed %d: %d participants in doubt at the end", seed, n)
	}
	if wrong > 10 {
		t.Errorf("seed %d: %d transactions wrong in all", seed, wrong)
	}
	t.Logf("seed %d: %d power cuts; %d committed, %d aborted, %d unknown to their caller (snapshot every %d entries)",
		seed, cuts, committed, aborted, unknown, c.snapshot)
}
