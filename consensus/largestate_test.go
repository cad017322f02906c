package consensus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// TestSnapPolicy checks the snapshot policy's arithmetic against a
// sequence of events: a snapshot is due once the command bytes since the
// last one reach SnapshotLogPercent% of its size; the first is always due;
// a failed snapshot's commands count towards the next; an installed
// snapshot resets the count.
func TestSnapPolicy(t *testing.T) {
	cmds := func(n, size int) []raft.Entry {
		ents := make([]raft.Entry, n)
		for i := range ents {
			ents[i].Data = make([]byte, size)
		}
		return ents
	}
	type step struct {
		apply   []raft.Entry // applied before the question
		install bool         // a leader's snapshot was installed first
		want    bool         // due?
		finish  int64        // if due: the snapshot's size, or -1 if it failed
	}
	tests := []struct {
		name    string
		percent uint64
		steps   []step
	}{
		{"0 percent: always due", 0, []step{
			{want: true, finish: 1000},
			{apply: cmds(1, 1), want: true, finish: 1 << 30},
			{want: true, finish: 5},
		}},
		{"first is due, then 25 percent of 1000", 25, []step{
			{want: true, finish: 1000},
			{apply: cmds(24, 10), want: false},
			{apply: cmds(1, 9), want: false}, // 249 bytes
			{apply: cmds(1, 1), want: true, finish: 400},
			{apply: cmds(1, 99), want: false},
			{apply: cmds(1, 1), want: true, finish: 400},
		}},
		{"failed snapshot gives its bytes back", 100, []step{
			{want: true, finish: 100},
			{apply: cmds(10, 10), want: true, finish: -1},
			{want: true, finish: 300}, // still 100 bytes, the last size still 100
			{apply: cmds(29, 10), want: false},
			{apply: cmds(1, 10), want: true, finish: 300},
		}},
		{"installed snapshot resets the count", 50, []step{
			{want: true, finish: 100},
			{apply: cmds(1, 49), want: false},
			{install: true, apply: cmds(1, 1), want: false}, // 1 byte since
			{apply: cmds(1, 49), want: true, finish: 100},
		}},
		{"huge state saturates", maxSnapshotLogPercent, []step{
			{want: true, finish: 1 << 62},
			{apply: cmds(1, 1<<10), want: false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p snapPolicy
			for i, s := range tt.steps {
				if s.install {
					p.installed()
				}
				p.applied(s.apply)
				if got := p.due(tt.percent); got != s.want {
					t.Fatalf("step %d: due(%d) = %v with %d bytes since a snapshot of %d; want %v", i, tt.percent, got, p.logBytes, p.lastSize, s.want)
				}
				if !s.want {
					continue
				}
				p.started()
				p.finished(uint64(max(s.finish, 0)), s.finish >= 0)
			}
		})
	}
}

// padSM is a state machine whose snapshot is large (pad bytes) next to a
// small state (the number of commands applied). It counts the snapshots
// it wrote; view selects the background path (SnapshotViewer).
type padSM struct {
	mu      sync.Mutex // guards applied
	applied uint64
	pad     int
	snaps   *atomic.Int32
}

func (s *padSM) Apply(Entry) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applied++
	return nil
}

func (s *padSM) Snapshot(w io.Writer) error {
	s.mu.Lock()
	n := s.applied
	s.mu.Unlock()
	return padView{n: n, pad: s.pad, snaps: s.snaps}.WriteSnapshot(w)
}

func (s *padSM) Restore(r io.Reader) error {
	var n uint64
	if _, err := fmt.Fscanln(r, &n); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s.mu.Lock()
	s.applied = n
	s.mu.Unlock()
	return nil
}

type padViewSM struct{ *padSM }

var _ SnapshotViewer = padViewSM{}

func (s padViewSM) SnapshotView() (SnapshotWriter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return padView{n: s.applied, pad: s.pad, snaps: s.snaps}, nil
}

type padView struct {
	n     uint64
	pad   int
	snaps *atomic.Int32
}

func (v padView) WriteSnapshot(w io.Writer) error {
	if _, err := fmt.Fprintln(w, v.n); err != nil {
		return err
	}
	if _, err := w.Write(make([]byte, v.pad)); err != nil {
		return err
	}
	v.snaps.Add(1)
	return nil
}

func (padView) Release() {}

// TestSnapshotLogPercent runs a cluster whose state snapshots to 10 KB
// with SnapshotThreshold 10 and 100-byte commands: with SnapshotLogPercent
// 100 a node takes its first snapshot at the threshold and the next only
// after 10 KB of commands (100 entries), on both snapshot paths; with 0 it
// snapshots every 10 entries. It fails if the policy is ignored. (Writes
// are not paced here: TestPacedWriter covers that.)
func TestSnapshotLogPercent(t *testing.T) {
	const (
		threshold = 10
		pad       = 10_000
		cmdBytes  = 100
		commands  = 150
	)
	tests := []struct {
		name     string
		view     bool
		percent  uint64
		min, max int32 // snapshots per node
	}{
		{"view/100%", true, 100, 2, 2},
		{"sync/100%", false, 100, 2, 2},
		{"view/0%", true, 0, 8, commands/threshold + 1},
		{"sync/0%", false, 0, 8, commands/threshold + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				net, err := memnet.New(memnet.DefaultConfig())
				if err != nil {
					t.Fatal(err)
				}
				defer net.Close()
				nodes := map[transport.NodeID]*Node{}
				snaps := map[transport.NodeID]*atomic.Int32{}
				defer func() {
					for _, n := range nodes {
						n.Close()
					}
				}()
				for _, id := range three {
					tr, err := net.Join(id)
					if err != nil {
						t.Fatal(err)
					}
					cfg := testConfig(id, three)
					cfg.SnapshotThreshold = threshold
					cfg.SnapshotRetainEntries = 2
					cfg.SnapshotLogPercent = tt.percent
					cfg.SnapshotWriteRate = 0 // TestPacedWriter's subject
					snaps[id] = new(atomic.Int32)
					var sm StateMachine = &padSM{pad: pad, snaps: snaps[id]}
					if tt.view {
						sm = padViewSM{sm.(*padSM)}
					}
					n, err := New(cfg, tr, sm)
					if err != nil {
						t.Fatal(err)
					}
					nodes[id] = n
				}
				members := map[transport.NodeID]Proposer{}
				for id, n := range nodes {
					members[id] = n
				}
				client, err := NewClient(members, DefaultClientConfig())
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				cmd := bytes.Repeat([]byte{'x'}, cmdBytes)
				for i := range commands {
					if _, err := client.Propose(ctx, cmd); err != nil {
						t.Fatalf("Propose #%d: %v", i, err)
					}
					// Time for a background snapshot to finish, so that
					// none is skipped for being in flight.
					time.Sleep(time.Millisecond)
				}
				synctest.Wait()
				for _, id := range three {
					if got := snaps[id].Load(); got < tt.min || got > tt.max {
						t.Errorf("%s wrote %d snapshots for %d commands of %d bytes (threshold %d, state %d bytes, SnapshotLogPercent %d); want %d..%d",
							id, got, commands, cmdBytes, threshold, pad, tt.percent, tt.min, tt.max)
					}
					// The last snapshot saved is the policy's second one,
					// 100 commands after the first.
					if snap, _ := nodes[id].store.Snapshot(); tt.percent == 100 && (snap.Meta.Index < 100 || snap.Meta.Index > 130) {
						t.Errorf("%s: last snapshot at %d; want about 110", id, snap.Meta.Index)
					}
				}
			})
		})
	}
}

// TestPacedWriter: a snapshot writer with a rate passes the bytes on in
// slices and takes (in the bubble's virtual time) as long as the rate
// says; without one it does not wait; closing quit fails the write at
// once, also while it waits.
func TestPacedWriter(t *testing.T) {
	const rate = 4 << 20
	tests := []struct {
		name     string
		rate     uint64
		bytes    int
		min, max time.Duration
	}{
		{"unpaced", 0, 8 << 20, 0, 0},
		{"4MiB/s, 8MiB", rate, 8 << 20, 2*time.Second - time.Second*pacedSlice/rate, 2 * time.Second},
		{"4MiB/s, one slice", rate, pacedSlice, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var got countingWriter
				pw := &pacedWriter{w: &got, quit: make(chan struct{}), rate: tt.rate}
				start := time.Now()
				for b := make([]byte, tt.bytes); len(b) > 0; b = b[min(len(b), 1<<20):] {
					if _, err := pw.Write(b[:min(len(b), 1<<20)]); err != nil {
						t.Fatal(err)
					}
				}
				took := time.Since(start)
				if took < tt.min || took > tt.max {
					t.Errorf("writing %d bytes at %d bytes/s took %v; want %v..%v", tt.bytes, tt.rate, took, tt.min, tt.max)
				}
				if pw.n != uint64(tt.bytes) || got.n != tt.bytes {
					t.Errorf("counted %d, passed on %d bytes; want %d", pw.n, got.n, tt.bytes)
				}
				if tt.rate > 0 && got.largest > pacedSlice {
					t.Errorf("largest write passed on: %d bytes; want at most %d", got.largest, pacedSlice)
				}
			})
		})
	}
	t.Run("quit while waiting", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			quit := make(chan struct{})
			var got countingWriter
			pw := &pacedWriter{w: &got, quit: quit, rate: 1 << 20}
			done := make(chan error, 1)
			go func() {
				_, err := pw.Write(make([]byte, 64<<20)) // 64 s at this rate
				done <- err
			}()
			// Not a multiple of a slice's time (0.25 s), so that the
			// writer is waiting, not just waking, when quit closes.
			time.Sleep(1100 * time.Millisecond)
			close(quit)
			synctest.Wait()
			select {
			case err := <-done:
				if !errors.Is(err, errSnapshotAbandoned) {
					t.Errorf("Write after quit = %v; want errSnapshotAbandoned", err)
				}
			default:
				t.Error("Write still waiting after quit was closed")
				<-done // lets the bubble end
			}
			if got.n > 2<<20 {
				t.Errorf("%d bytes passed on in about 1 s at 1 MiB/s", got.n)
			}
		})
	})
}

// countingWriter counts what it is given and the largest single write.
type countingWriter struct{ n, largest int }

func (c *countingWriter) Write(b []byte) (int, error) {
	c.n += len(b)
	c.largest = max(c.largest, len(b))
	return len(b), nil
}

// TestSnapshotPolicyConfig: Validate refuses the policy's settings out of
// their bounds, and DefaultConfig's are inside them.
func TestSnapshotPolicyConfig(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		ok     bool
	}{
		{"default", func(*Config) {}, true},
		{"off", func(c *Config) { c.SnapshotLogPercent, c.SnapshotWriteRate = 0, 0 }, true},
		{"largest percent", func(c *Config) { c.SnapshotLogPercent = maxSnapshotLogPercent }, true},
		{"percent too large", func(c *Config) { c.SnapshotLogPercent = maxSnapshotLogPercent + 1 }, false},
		{"slowest rate", func(c *Config) { c.SnapshotWriteRate = minSnapshotWriteRate }, true},
		{"rate too slow", func(c *Config) { c.SnapshotWriteRate = minSnapshotWriteRate - 1 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig("n1", []transport.NodeID{"n1"})
			tt.modify(&cfg)
			err := cfg.Validate()
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalidConfig)) {
				t.Errorf("Validate() = %v; want ok=%v (or ErrInvalidConfig)", err, tt.ok)
			}
		})
	}
}

// TestRestartKnowsSnapshotSize: a node restarted from a snapshot knows
// that snapshot's size, so its snapshot policy does not treat the first
// snapshot after the start as due regardless of size (a large state would
// be rewritten SnapshotThreshold entries after every restart).
func TestRestartKnowsSnapshotSize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const pad = 10_000
		net, err := memnet.New(memnet.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer func() { net.Close() }() // the second network, at the end
		dir := t.TempDir()
		one := []transport.NodeID{"n1"}
		start := func() *Node {
			tr, err := net.Join("n1")
			if err != nil {
				t.Fatal(err)
			}
			cfg := testConfig("n1", one)
			cfg.DataDir = dir
			cfg.SnapshotThreshold = 5
			cfg.SnapshotWriteRate = 0
			n, err := New(cfg, tr, &padSM{pad: pad, snaps: new(atomic.Int32)})
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		n := start()
		if _, err := n.WaitLeader(ctx); err != nil {
			t.Fatal(err)
		}
		for i := range 12 {
			if _, err := n.Propose(ctx, []byte(fmt.Sprint("c", i))); err != nil {
				t.Fatal(err)
			}
		}
		n.Close()
		net.Close()
		net, err = memnet.New(memnet.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		n = start()
		defer n.Close()
		got := make(chan uint64, 1) // do runs the function on the loop without waiting for it
		if err := n.do(ctx, func() { got <- n.snapPol.lastSize }); err != nil {
			t.Fatal(err)
		}
		size := <-got
		if size < pad {
			t.Fatalf("after a restart from a snapshot of about %d bytes, the snapshot policy's last size is %d", pad, size)
		}
	})
}
