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

// §6.4 step 2: a request that arrives while a heartbeat round is in flight
// is confirmed by a later round, never by the one in flight: that round's
// acknowledgements may all predate the request (and a newer leader's
// writes). Here the first round's heartbeats are answered and the second
// round's are lost: only the first request is answered, and the second
// once a new round is acknowledged.
func TestReadIndexMidRoundWaitsForNextRound(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.electNode("n1")
	if _, _, err := c.nodes["n1"].Propose([]byte("w")); err != nil {
		t.Fatal(err)
	}
	c.process()
	rn := c.nodes["n1"]
	ready := func() []Message {
		t.Helper()
		rd, err := rn.Ready()
		if err != nil {
			t.Fatal(err)
		}
		if len(rd.ReadStates) != 0 {
			t.Fatalf("ReadStates %v before any round was acknowledged", readCtxs(rd.ReadStates))
		}
		// Copies: the core may reuse a Ready's buffers after Advance.
		msgs := slices.Clone(rd.Messages)
		for i := range msgs {
			msgs[i].Context = slices.Clone(msgs[i].Context)
		}
		rn.Advance(rd)
		return msgs
	}
	if err := rn.ReadIndex([]byte("r0")); err != nil {
		t.Fatal(err)
	}
	first := ready() // round 1, in flight
	if err := rn.ReadIndex([]byte("r1")); err != nil {
		t.Fatal(err)
	}
	_ = ready() // round 2: lost
	c.queue = append(c.queue, first...)
	c.process()
	if got := readCtxs(c.reads["n1"]); !slices.Equal(got, []string{"r0"}) {
		t.Fatalf("ReadStates after the first round's acknowledgements = %v; want r0 only (r1 arrived mid-round)", got)
	}
	for range DefaultConfig().HeartbeatTicks {
		c.tickAll()
	}
	if got := readCtxs(c.reads["n1"]); !slices.Equal(got, []string{"r0", "r1"}) {
		t.Fatalf("ReadStates after a later round = %v; want r0, r1", got)
	}
}
