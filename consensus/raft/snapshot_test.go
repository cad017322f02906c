package raft

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/distkit/distkit/transport"
)

// restart replaces node id with a new RawNode over the same storage, as
// after a crash (MemoryStorage here holds exactly what was persisted).
func (c *testCluster) restart(id transport.NodeID, tweak func(*Config)) {
	c.t.Helper()
	s := c.stores[id]
	snap, _ := s.Snapshot()
	cfg := DefaultConfig()
	cfg.ID, cfg.Peers, cfg.Storage, cfg.Applied = id, c.ids, s, snap.Meta.Index
	if tweak != nil {
		tweak(&cfg)
	}
	rn, err := NewRawNode(cfg)
	if err != nil {
		c.t.Fatalf("restart %s: %v", id, err)
	}
	c.nodes[id] = rn
}

// compact snapshots node id at its applied index with the given state and
// drops its whole log.
func (c *testCluster) compact(id transport.NodeID, state []byte) uint64 {
	c.t.Helper()
	st := c.nodes[id].Status()
	s := c.stores[id]
	if _, err := s.CreateSnapshot(st.Applied, Membership{Voters: st.Voters}, state); err != nil {
		c.t.Fatalf("CreateSnapshot: %v", err)
	}
	if err := s.Compact(st.Applied); err != nil {
		c.t.Fatalf("Compact: %v", err)
	}
	return st.Applied
}

// leaveBehind elects a leader, cuts one follower off (c.drop) and has the
// leader commit n commands without it. It returns both.
func (c *testCluster) leaveBehind(n int) (lead, lagging transport.NodeID) {
	c.t.Helper()
	lead = c.elect()
	lagging = c.ids[0]
	if lagging == lead {
		lagging = c.ids[1]
	}
	c.drop = func(m Message) bool { return m.To == lagging || m.From == lagging }
	for i := range n {
		if _, _, err := c.nodes[lead].Propose(fmt.Appendf(nil, "cmd%d", i)); err != nil {
			c.t.Fatal(err)
		}
		c.process()
	}
	return lead, lagging
}

func snapshotTweak(cfg *Config) {
	cfg.MaxMsgBytes = 100
	cfg.SnapshotThreshold = 0
}

// §7: a follower that needs compacted entries receives the snapshot in
// chunks of at most MaxMsgBytes, installs it, and then follows the log.
func TestSnapshotInChunks(t *testing.T) {
	c := newTestCluster(t, 3, snapshotTweak)
	lead, lagging := c.leaveBehind(20)
	state := bytes.Repeat([]byte("state!"), 100) // 600 bytes: 6 chunks
	snapIndex := c.compact(lead, state)

	chunks := 0
	c.drop = func(m Message) bool {
		if m.Type == MsgSnap {
			chunks++
			if len(m.Data) > 100 {
				t.Errorf("snapshot chunk of %d bytes; want at most MaxMsgBytes = 100", len(m.Data))
			}
		}
		return false
	}
	for range 5 {
		c.tickAll()
	}
	got, _ := c.stores[lagging].Snapshot()
	if got.Meta.Index != snapIndex || !bytes.Equal(got.Data, state) {
		t.Fatalf("follower snapshot = index %d, %d bytes; want index %d, %d bytes", got.Meta.Index, len(got.Data), snapIndex, len(state))
	}
	if chunks != 6 {
		t.Errorf("snapshot sent in %d chunks; want 6", chunks)
	}
	// Replication resumes after the snapshot.
	if _, _, err := c.nodes[lead].Propose([]byte("after")); err != nil {
		t.Fatal(err)
	}
	c.process()
	c.tickAll()
	if a := c.appliedData(lagging); len(a) != 1 || a[0] != "after" {
		t.Errorf("follower applied %q after the snapshot; want [after]", a)
	}
	if st := c.nodes[lead].Status().Progress[lagging]; st.State != ProgressReplicate || st.Match != c.nodes[lead].Status().LastIndex {
		t.Errorf("leader's progress for the follower = %+v; want replicating and caught up", st)
	}
}

// A follower stuck mid-snapshot recovers: it restarts (losing its partial
// copy) and chunks are lost; the leader notices the silence, resends and
// restarts the transfer, and the follower ends up with the snapshot.
func TestSnapshotStuckFollowerRecovers(t *testing.T) {
	tests := []struct {
		name string
		// disrupt runs after the follower received `after` chunks.
		after   int
		restart bool // the follower restarts (losing the partial snapshot)
		lose    int  // chunks lost after that
	}{
		{"chunk lost", 2, false, 1},
		{"several chunks lost", 1, false, 8},
		{"follower restarts mid-transfer", 3, true, 0},
		{"restart and losses", 2, true, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCluster(t, 3, snapshotTweak)
			lead, lagging := c.leaveBehind(10)
			state := bytes.Repeat([]byte("s"), 1000) // 10 chunks
			snapIndex := c.compact(lead, state)
			received, lost := 0, 0
			disrupted := false
			c.drop = func(m Message) bool {
				if m.Type != MsgSnap || m.To != lagging {
					return false
				}
				if received == tt.after && !disrupted {
					disrupted = true
					if tt.restart {
						c.restart(lagging, snapshotTweak)
					}
				}
				if disrupted && lost < tt.lose {
					lost++
					return true
				}
				received++
				return false
			}
			for range 20 * DefaultConfig().ElectionTicks {
				c.tickAll()
				if got, _ := c.stores[lagging].Snapshot(); got.Meta.Index == snapIndex {
					break
				}
			}
			got, _ := c.stores[lagging].Snapshot()
			if got.Meta.Index != snapIndex || !bytes.Equal(got.Data, state) {
				t.Fatalf("follower snapshot = index %d, %d bytes; want index %d, %d bytes", got.Meta.Index, len(got.Data), snapIndex, len(state))
			}
			c.tickAll()
			if st := c.nodes[lead].Status().Progress[lagging]; st.State != ProgressReplicate {
				t.Errorf("leader's progress for the follower = %+v; want replicating", st)
			}
		})
	}
}

// The leader picks up a newer snapshot when it restarts a stalled transfer.
func TestSnapshotRestartUsesNewest(t *testing.T) {
	c := newTestCluster(t, 3, snapshotTweak)
	lead := c.elect()
	lagging := c.ids[0]
	if lagging == lead {
		lagging = c.ids[1]
	}
	cutOff := func(m Message) bool { return m.To == lagging || m.From == lagging }
	c.drop = cutOff
	propose := func(n int) {
		for i := range n {
			if _, _, err := c.nodes[lead].Propose(fmt.Appendf(nil, "cmd%d", i)); err != nil {
				t.Fatal(err)
			}
			c.process()
		}
	}
	propose(5)
	c.compact(lead, []byte("old"))
	// The follower answers heartbeats (so the leader starts a transfer)
	// but every snapshot chunk is lost.
	c.drop = func(m Message) bool { return m.Type == MsgSnap }
	for range 10 {
		c.tickAll()
	}
	if st := c.nodes[lead].Status().Progress[lagging]; st.State != ProgressSnapshot {
		t.Fatalf("progress = %+v; want a snapshot transfer", st)
	}
	c.drop = func(m Message) bool { return m.Type == MsgSnap || cutOff(m) }
	propose(5)
	newest := c.compact(lead, []byte("new"))
	c.drop = nil
	for range 10 * DefaultConfig().ElectionTicks {
		c.tickAll()
	}
	got, _ := c.stores[lagging].Snapshot()
	if got.Meta.Index != newest || string(got.Data) != "new" {
		t.Errorf("follower snapshot = index %d %q; want the newest, index %d \"new\"", got.Meta.Index, got.Data, newest)
	}
}
