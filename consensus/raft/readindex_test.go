package raft

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/distkit/distkit/transport"
)

// ReadIndex (thesis §6.4) and lease reads (§6.4.1).

func readCtxs(rs []ReadState) []string {
	var out []string
	for _, r := range rs {
		out = append(out, string(r.Context))
	}
	return out
}

// §6.4 steps 1-3: the leader records its commit index, confirms its
// leadership with one heartbeat round that every request made before the
// next Ready shares, then answers.
func TestReadIndexOneBatchedRound(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.electNode("n1")
	if _, _, err := c.nodes["n1"].Propose([]byte("w")); err != nil {
		t.Fatal(err)
	}
	c.process()
	commit := c.nodes["n1"].Status().Commit
	rn := c.nodes["n1"]
	for i := range 3 {
		if err := rn.ReadIndex(fmt.Appendf(nil, "r%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	rd, err := rn.Ready()
	if err != nil {
		t.Fatal(err)
	}
	if len(rd.ReadStates) != 0 {
		t.Fatalf("ReadStates before the heartbeat round: %v; want none", rd.ReadStates)
	}
	beats := 0
	for _, m := range rd.Messages {
		if m.Type == MsgHeartbeat && len(m.Context) > 0 {
			beats++
		}
	}
	if beats != 2 {
		t.Errorf("%d heartbeats with a round for 3 reads; want 2 (one round, one per follower)", beats)
	}
	c.queue = append(c.queue, rd.Messages...)
	rn.Advance(rd)
	c.process()
	got := c.reads["n1"]
	if !slices.Equal(readCtxs(got), []string{"r0", "r1", "r2"}) {
		t.Fatalf("ReadStates = %v; want r0, r1, r2", got)
	}
	for _, r := range got {
		if r.Index != commit {
			t.Errorf("ReadState %q index = %d; want the commit index %d", r.Context, r.Index, commit)
		}
	}
}

// A leader cut off from the others must not answer: it may have been
// deposed, and a newer leader may have committed writes it does not know.
func TestReadIndexNeedsQuorumRound(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.electNode("n1")
	c.drop = func(m Message) bool { return m.From == "n1" }
	if err := c.nodes["n1"].ReadIndex([]byte("r")); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		c.tickAll()
	}
	if got := c.reads["n1"]; len(got) != 0 {
		t.Errorf("isolated leader answered %v; want no answer", got)
	}
	// One follower answering is enough for a quorum of three.
	c.drop = func(m Message) bool { return m.To == "n3" || m.From == "n3" }
	c.tickAll()
	c.tickAll()
	if got := c.reads["n1"]; !slices.Equal(readCtxs(got), []string{"r"}) {
		t.Errorf("after a quorum round: %v; want r answered", got)
	}
}

// §6.4 step 1: a new leader answers only once it has committed an entry
// of its term (before that its commit index may lag behind).
func TestReadIndexWaitsForCommitInTerm(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.drop = func(m Message) bool { return m.Type == MsgAppResp }
	c.nodes["n1"].r.campaign(false, false)
	c.process()
	if err := c.nodes["n1"].ReadIndex([]byte("r")); err != nil {
		t.Fatal(err)
	}
	c.tickAll()
	c.tickAll()
	if got := c.reads["n1"]; len(got) != 0 {
		t.Fatalf("answered %v before committing an entry of the term", got)
	}
	c.drop = nil
	c.settle()
	got := c.reads["n1"]
	if len(got) != 1 || got[0].Index < c.nodes["n1"].Status().Commit {
		t.Errorf("ReadStates = %v; want one at the commit index %d", got, c.nodes["n1"].Status().Commit)
	}
}

// Follower read: the follower forwards the request and gets the leader's
// read index back; it then waits until it has applied that index.
func TestReadIndexFollower(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.electNode("n1")
	if _, _, err := c.nodes["n1"].Propose([]byte("w")); err != nil {
		t.Fatal(err)
	}
	c.process()
	if err := c.nodes["n2"].ReadIndex([]byte("f")); err != nil {
		t.Fatal(err)
	}
	c.process()
	got := c.reads["n2"]
	if len(got) != 1 || string(got[0].Context) != "f" || got[0].Index != c.nodes["n1"].Status().Commit {
		t.Errorf("follower ReadStates = %v; want f at %d", got, c.nodes["n1"].Status().Commit)
	}
	c2 := newTestCluster(t, 3, nil)
	if err := c2.nodes["n2"].ReadIndex([]byte("f")); !errors.Is(err, ErrNotLeader) {
		t.Errorf("ReadIndex with no leader known = %v; want ErrNotLeader", err)
	}
}

// §4.3 again: in a joint configuration the round needs both majorities.
func TestReadIndexJoint(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.electNode("n1")
	c.addJoiner("n4", nil)
	c.addJoiner("n5", nil)
	c.changeConf("n1", ConfChange{Changes: []ConfChangeOp{op(ConfAddVoter, "n4"), op(ConfAddVoter, "n5"), op(ConfRemove, "n2"), op(ConfRemove, "n3")}, ExplicitLeave: true})
	c.settle()
	c.drop = func(m Message) bool { return m.To == "n2" || m.To == "n3" }
	if err := c.nodes["n1"].ReadIndex([]byte("r")); err != nil {
		t.Fatal(err)
	}
	c.settle()
	if got := c.reads["n1"]; len(got) != 0 {
		t.Errorf("answered %v with acks from C_new only; want no answer", got)
	}
}

// §6.4.1: with lease reads the leader answers without a round while its
// lease holds, and needs a round again once it expired.
func TestLeaseRead(t *testing.T) {
	lease := func(cfg *Config) { cfg.LeaseReads, cfg.LeaseDriftTicks = true, 2 }
	c := newTestCluster(t, 3, lease)
	for range 30 { // the start guard delays the first election
		c.tickAll()
	}
	l := c.leader()
	if l == "" {
		t.Fatal("no leader")
	}
	c.settle()
	rn := c.nodes[l]
	if err := rn.ReadIndex([]byte("fast")); err != nil {
		t.Fatal(err)
	}
	rd, _ := rn.Ready()
	if !slices.Equal(readCtxs(rd.ReadStates), []string{"fast"}) {
		t.Errorf("within the lease: ReadStates %v; want fast answered at once", rd.ReadStates)
	}
	rn.Advance(rd)
	// Cut the leader off: once ElectionTicks - LeaseDriftTicks ticks have
	// passed since the last acknowledged round, the lease is over.
	c.drop = func(m Message) bool { return m.From == l || m.To == l }
	for range DefaultConfig().ElectionTicks - 2 {
		rn.Tick()
	}
	if err := rn.ReadIndex([]byte("late")); err != nil {
		t.Fatal(err)
	}
	rd, _ = rn.Ready()
	if len(rd.ReadStates) != 0 {
		t.Errorf("after the lease: ReadStates %v; want none without a round", rd.ReadStates)
	}
	rn.Advance(rd)

	cfg := DefaultConfig()
	cfg.ID, cfg.Peers, cfg.Storage = "a", []transport.NodeID{"a"}, NewMemoryStorage()
	cfg.LeaseReads, cfg.CheckQuorum = true, false
	if _, err := NewRawNode(cfg); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("LeaseReads without CheckQuorum: %v; want ErrInvalidConfig", err)
	}
}

// A leader that cannot confirm its reads does not hold them without bound.
func TestReadIndexPendingBound(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.CheckQuorum = false })
	c.electNode("n1")
	c.drop = func(m Message) bool { return true }
	var err error
	for i := 0; i <= maxPendingReads && err == nil; i++ {
		err = c.nodes["n1"].ReadIndex(nil)
	}
	if !errors.Is(err, ErrProposalDropped) {
		t.Errorf("ReadIndex beyond %d pending = %v; want ErrProposalDropped", maxPendingReads, err)
	}
}
