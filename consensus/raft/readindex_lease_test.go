package raft

import (
	"slices"
	"testing"
)

// §6.4.1 for drivers: LeaseRead reports the lease a driver may serve reads
// off without calling ReadIndex, and ExpireLease ends it at once (the
// driver's clock says it ran out before the tick count does): from then on
// reads, local or forwarded, need a round started after the call.
func TestLeaseReadAndExpireLease(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.LeaseReads, cfg.LeaseDriftTicks = true, 2 })
	for range 30 { // the start guard delays the first election
		c.tickAll()
	}
	l := c.leader()
	if l == "" {
		t.Fatal("no leader")
	}
	c.settle()
	rn := c.nodes[l]
	commit := rn.Status().Commit
	index, age, ok := rn.LeaseRead()
	if !ok || index != commit || age >= uint64(DefaultConfig().ElectionTicks-2) {
		t.Fatalf("LeaseRead on a settled leader = %d, %d, %v; want %d, < %d, true", index, age, ok, commit, DefaultConfig().ElectionTicks-2)
	}
	for _, id := range c.ids {
		if _, _, ok := c.nodes[id].LeaseRead(); id != l && ok {
			t.Errorf("LeaseRead on follower %s = ok; want no lease", id)
		}
	}

	rn.ExpireLease()
	if _, _, ok := rn.LeaseRead(); ok {
		t.Fatal("LeaseRead after ExpireLease = ok; want no lease")
	}
	if err := rn.ReadIndex([]byte("after")); err != nil {
		t.Fatal(err)
	}
	rd, err := rn.Ready()
	if err != nil {
		t.Fatal(err)
	}
	if len(rd.ReadStates) != 0 {
		t.Fatalf("ReadStates right after ExpireLease: %v; want none before a round", readCtxs(rd.ReadStates))
	}
	c.queue = append(c.queue, rd.Messages...)
	rn.Advance(rd)
	c.process()
	if got := c.reads[l]; !slices.Equal(readCtxs(got), []string{"after"}) {
		t.Fatalf("ReadStates after the round = %v; want after", readCtxs(got))
	}
	if _, _, ok := rn.LeaseRead(); !ok {
		t.Error("LeaseRead after a round started after ExpireLease was acknowledged = no lease; want the lease back")
	}
}
