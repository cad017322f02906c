package raft

import (
	"fmt"
	"slices"
	"testing"

	"github.com/distkit/distkit/transport"
)

// testCluster runs RawNodes in memory with instantaneous, lossless
// delivery driven by the test: the simplest world for unit tests.
type testCluster struct {
	t       testing.TB
	ids     []transport.NodeID
	nodes   map[transport.NodeID]*RawNode
	stores  map[transport.NodeID]*MemoryStorage
	applied map[transport.NodeID][]Entry
	// due counts the Readys with SnapshotDue per node.
	due map[transport.NodeID]int
	// reads collects the ReadStates per node.
	reads map[transport.NodeID][]ReadState
	// drop filters messages (true = lost).
	drop  func(m Message) bool
	queue []Message
}

func newTestCluster(t testing.TB, n int, tweak func(*Config)) *testCluster {
	t.Helper()
	ids := make([]transport.NodeID, n)
	for i := range ids {
		ids[i] = transport.NodeID(fmt.Sprintf("n%d", i+1))
	}
	return buildCluster(t, ids, nil, tweak)
}

// buildCluster creates a RawNode per ID, over a MemoryStorage that prepare
// (if non-nil) fills first, with Seed i for the i-th node.
func buildCluster(t testing.TB, ids []transport.NodeID, prepare func(i int, s *MemoryStorage), tweak func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{
		t:       t,
		ids:     ids,
		nodes:   map[transport.NodeID]*RawNode{},
		stores:  map[transport.NodeID]*MemoryStorage{},
		applied: map[transport.NodeID][]Entry{},
		due:     map[transport.NodeID]int{},
		reads:   map[transport.NodeID][]ReadState{},
	}
	for i, id := range c.ids {
		s := NewMemoryStorage()
		if prepare != nil {
			prepare(i, s)
		}
		cfg := DefaultConfig()
		cfg.ID, cfg.Peers, cfg.Storage, cfg.Seed = id, c.ids, s, uint64(i)
		if tweak != nil {
			tweak(&cfg)
		}
		rn, err := NewRawNode(cfg)
		if err != nil {
			t.Fatalf("NewRawNode(%s): %v", id, err)
		}
		c.nodes[id], c.stores[id] = rn, s
	}
	return c
}

// process drains every Ready of every node, delivering messages, until the
// cluster is quiet.
func (c *testCluster) process() {
	c.t.Helper()
	for range 100000 {
		busy := false
		for _, id := range c.ids {
			rn := c.nodes[id]
			if rn == nil || !rn.HasReady() {
				continue
			}
			busy = true
			rd, err := rn.Ready()
			if err != nil {
				c.t.Fatalf("%s: Ready: %v", id, err)
			}
			s := c.stores[id]
			if rd.Snapshot != nil {
				if err := s.ApplySnapshot(*rd.Snapshot); err != nil {
					c.t.Fatalf("%s: ApplySnapshot: %v", id, err)
				}
				c.applied[id] = nil
			}
			if err := s.Append(rd.Entries); err != nil {
				c.t.Fatalf("%s: Append: %v", id, err)
			}
			if !rd.HardState.IsZero() {
				_ = s.SetHardState(rd.HardState)
			}
			for _, m := range rd.Messages {
				if c.drop == nil || !c.drop(m) {
					c.queue = append(c.queue, m)
				}
			}
			c.applied[id] = append(c.applied[id], rd.CommittedEntries...)
			if rd.SnapshotDue {
				c.due[id]++
			}
			c.reads[id] = append(c.reads[id], rd.ReadStates...)
			rn.Advance(rd)
		}
		if len(c.queue) > 0 {
			busy = true
			q := c.queue
			c.queue = nil
			for _, m := range q {
				if rn := c.nodes[m.To]; rn != nil {
					if err := rn.Step(m); err != nil {
						c.t.Fatalf("%s: Step(%v from %s): %v", m.To, m.Type, m.From, err)
					}
				}
			}
		}
		if !busy {
			return
		}
	}
	c.t.Fatalf("cluster did not quiesce")
}

// tickAll ticks every node once and processes the consequences.
func (c *testCluster) tickAll() {
	for _, id := range c.ids {
		if rn := c.nodes[id]; rn != nil {
			rn.Tick()
		}
	}
	c.process()
}

// elect ticks until some node is leader and returns it.
func (c *testCluster) elect() transport.NodeID {
	c.t.Helper()
	for range 1000 {
		c.tickAll()
		if l := c.leader(); l != "" {
			return l
		}
	}
	c.t.Fatalf("no leader elected")
	return ""
}

func (c *testCluster) leader() transport.NodeID {
	for _, id := range c.ids {
		if rn := c.nodes[id]; rn != nil && rn.Status().Role == Leader {
			return id
		}
	}
	return ""
}

// appliedData returns the data of the normal entries node id applied.
func (c *testCluster) appliedData(id transport.NodeID) []string {
	var out []string
	for _, e := range c.applied[id] {
		if e.Type == EntryNormal {
			out = append(out, string(e.Data))
		}
	}
	return out
}

func TestClusterElectsAndReplicates(t *testing.T) {
	for _, n := range []int{1, 3, 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			c := newTestCluster(t, n, nil)
			lead := c.elect()
			want := []string{"x", "y", "z"}
			for _, d := range want {
				if _, _, err := c.nodes[lead].Propose([]byte(d)); err != nil {
					t.Fatalf("Propose(%q): %v", d, err)
				}
			}
			c.process()
			// Followers learn the commit index with the next heartbeat.
			c.tickAll()
			for _, id := range c.ids {
				if got := c.appliedData(id); !slices.Equal(got, want) {
					t.Errorf("%s applied %q; want %q", id, got, want)
				}
			}
		})
	}
}
