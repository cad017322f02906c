package consensus

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestRestartEmptyMemoryNode (issue 15): an in-memory node (no DataDir)
// stopped and restarted under the same ID comes back with an empty log;
// the leader still holds its old match index. It must catch up, from the
// log or by snapshot, within a bounded number of heartbeat intervals
// (1000: a generous bound that only turns a hang into a failure on a
// loaded machine; it takes a few in practice, logged). Before the fix the
// leader's probe never went below match+1, which the empty follower kept
// rejecting: the two exchanged probe and rejection as fast as the network
// carried them, and the follower never caught up. (Not in a synctest
// bubble for that reason: that storm never lets virtual time advance, so
// a regression would hang instead of failing.)
//
// The restarted node also forgot its vote and the entries it acknowledged;
// Raft's safety assumes neither is lost. Catching up as fast as possible
// is the best the cluster can do about it (until then the node's empty log
// would grant its vote to any candidate); what is lost cannot be undone,
// which is why a node holding data of record needs a DataDir.
func TestRestartEmptyMemoryNode(t *testing.T) {
	tests := []struct {
		name        string
		threshold   uint64 // SnapshotThreshold
		behind      int    // writes while the node is down
		viaSnapshot bool
	}{
		{"up to date when stopped", 0, 0, false},
		{"behind, from the log", 0, 40, false},
		{"behind, log compacted: by snapshot", 20, 40, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testRestartEmptyMemoryNode(t, tt.threshold, tt.behind, tt.viaSnapshot)
		})
	}
}

func testRestartEmptyMemoryNode(t *testing.T, threshold uint64, behind int, viaSnapshot bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := newCluster(t, false, func(cfg *Config) {
		cfg.SnapshotThreshold = threshold
		cfg.SnapshotRetainEntries = 5
	})
	cl := c.client()
	for i := range 30 {
		write(ctx, t, cl, fmt.Sprintf("a%d", i), "1")
	}
	leader := cl.Leader()
	lagger := c.others(leader)[0]
	if err := c.sms[lagger].waitApplied(ctx, c.nodes[leader].Status().Applied); err != nil {
		t.Fatal(err)
	}
	c.stop(lagger)
	for i := range behind {
		write(ctx, t, cl, fmt.Sprintf("b%d", i), "2")
	}
	c.start(lagger) // a fresh memory store under the same ID
	start := time.Now()
	last := write(ctx, t, cl, "after", "restart")
	cfg := c.cfg(lagger)
	heartbeat := time.Duration(cfg.HeartbeatTicks) * cfg.TickInterval
	const bound = 1000 // heartbeat intervals
	wctx, cancel := context.WithTimeout(ctx, bound*heartbeat)
	defer cancel()
	if err := c.sms[lagger].waitApplied(wctx, last); err != nil {
		t.Fatalf("restarted empty %s did not catch up within %d heartbeats: %v; its status %+v; leader's progress for it %+v",
			lagger, bound, err, c.nodes[lagger].Status().Status, c.nodes[leader].Status().Progress[lagger])
	}
	t.Logf("caught up in %v (%.1f heartbeat intervals; a loaded machine stretches it)", time.Since(start), float64(time.Since(start))/float64(heartbeat))
	for i := range 30 {
		if v, _ := c.sms[lagger].get(fmt.Sprintf("a%d", i)); v != "1" {
			t.Fatalf("restarted %s: a%d = %q; want 1", lagger, i, v)
		}
	}
	snap, _ := c.nodes[lagger].store.Snapshot()
	if got := !snap.IsZero(); got != viaSnapshot {
		t.Fatalf("restarted %s holds a snapshot (index %d) = %v; want %v", lagger, snap.Meta.Index, got, viaSnapshot)
	}
}
