package consensus

import (
	"context"
	"fmt"
	"io"
	"maps"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// viewSM is a kvSM that offers point-in-time snapshot views (a copy of the
// map); its views wait for release before they write anything.
type viewSM struct {
	*kvSM
	release  <-chan struct{}
	started  *atomic.Int32 // views that began writing, on every node
	released *atomic.Int32 // views released
}

var _ SnapshotViewer = (*viewSM)(nil)

func (s *viewSM) SnapshotView() (SnapshotWriter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &kvView{data: maps.Clone(s.data), applied: s.applied, sm: s}, nil
}

type kvView struct {
	data    map[string]string
	applied uint64
	sm      *viewSM
}

func (v *kvView) WriteSnapshot(w io.Writer) error {
	v.sm.started.Add(1)
	<-v.sm.release
	keys := make([]string, 0, len(v.data))
	for k := range v.data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if _, err := fmt.Fprintf(w, "%d\n", v.applied); err != nil {
		return err
	}
	for _, k := range keys {
		if _, err := fmt.Fprintf(w, "%s=%s\n", k, v.data[k]); err != nil {
			return err
		}
	}
	return nil
}

func (v *kvView) Release() { v.sm.released.Add(1) }

// TestSnapshotDoesNotStallNode: a state machine whose snapshot takes a
// long time (here: until released) is snapshotted by a goroutine of its
// own, so the cluster keeps committing meanwhile with no leader change;
// once released, the snapshot is saved, holds exactly the state as of its
// index, and the log is compacted.
func TestSnapshotDoesNotStallNode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const threshold = 20
		net, err := memnet.New(memnet.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer net.Close()
		release := make(chan struct{})
		var releaseOnce sync.Once
		unblock := func() { releaseOnce.Do(func() { close(release) }) }
		var started, released atomic.Int32
		nodes := map[transport.NodeID]*Node{}
		for _, id := range three {
			tr, err := net.Join(id)
			if err != nil {
				t.Fatal(err)
			}
			cfg := testConfig(id, three)
			cfg.SnapshotThreshold = threshold
			cfg.SnapshotRetainEntries = 2
			n, err := New(cfg, tr, &viewSM{kvSM: newKV(), release: release, started: &started, released: &released})
			if err != nil {
				for _, n := range nodes {
					n.Close()
				}
				t.Fatal(err)
			}
			nodes[id] = n
		}
		defer func() {
			unblock() // first, if the test failed early: Close waits for the views
			for _, n := range nodes {
				n.Close()
			}
		}()
		leader := func() *Node {
			for _, id := range three {
				if st := nodes[id].Status(); st.Role == raft.Leader {
					return nodes[id]
				}
			}
			return nil
		}
		for leader() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		l := leader()
		term := l.Status().Term
		write := func(k string) {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if _, err := l.Propose(ctx, []byte(k+"=1")); err != nil {
				t.Fatalf("Propose(%s) on %s while snapshots are being written: %v", k, l.ID(), err)
			}
		}
		// The leader's no-op is entry 1; entries 2..threshold+1 trigger the
		// snapshot at index threshold on every node.
		for i := range threshold + 5 {
			write(fmt.Sprintf("a%02d", i))
		}
		synctest.Wait()
		if got := started.Load(); got != 3 {
			t.Fatalf("%d snapshot views started; want one per node", got)
		}
		// Well past several election timeouts, the snapshots still blocked.
		for i := range 100 {
			write(fmt.Sprintf("b%02d", i))
			time.Sleep(5 * time.Millisecond)
		}
		for _, id := range three {
			st := nodes[id].Status()
			if st.Term != term || st.Leader != l.ID() {
				t.Fatalf("%s: term %d, leader %q while snapshots were written; want term %d, leader %s", id, st.Term, st.Leader, term, l.ID())
			}
			if snap, _ := nodes[id].store.Snapshot(); !snap.IsZero() {
				t.Fatalf("%s saved snapshot %d before its view was written", id, snap.Meta.Index)
			}
		}
		unblock()
		for _, id := range three {
			var snap raft.Snapshot
			for range 100 {
				if snap, _ = nodes[id].store.Snapshot(); !snap.IsZero() {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			// The snapshot is taken after the Ready that crossed the
			// threshold is applied: at threshold or a little past it.
			idx := snap.Meta.Index
			if idx < threshold || idx > threshold+6 {
				t.Fatalf("%s: snapshot index %d; want %d..%d", id, idx, threshold, threshold+6)
			}
			// Point in time: the snapshot holds the keys applied up to its
			// index (key a<i> is entry i+2), none applied after.
			kv := newKV()
			if err := kv.Restore(strings.NewReader(string(snap.Data))); err != nil {
				t.Fatal(err)
			}
			for i := range threshold + 5 {
				k := fmt.Sprintf("a%02d", i)
				if _, ok := kv.get(k); ok != (uint64(i+2) <= idx) {
					t.Errorf("%s: snapshot at %d has %s (entry %d): %v", id, idx, k, i+2, ok)
				}
			}
			if _, ok := kv.get("b00"); ok {
				t.Errorf("%s: snapshot at %d has b00, written after it", id, idx)
			}
			if st := nodes[id].Status(); st.FirstIndex != idx-2+1 {
				t.Errorf("%s: log starts at %d after snapshot %d; want %d", id, st.FirstIndex, idx, idx-1)
			}
		}
		if got := released.Load(); got != 3 {
			t.Errorf("%d views released; want 3", got)
		}
	})
}
