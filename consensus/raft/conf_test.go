package raft

import (
	"errors"
	"slices"
	"testing"

	"github.com/distkit/distkit/transport"
)

// Membership changes in a running cluster (thesis §4.1-§4.3).

// addJoiner starts a fresh node that joins the cluster (Config.Join).
func (c *testCluster) addJoiner(id transport.NodeID, tweak func(*Config)) {
	c.t.Helper()
	s := NewMemoryStorage()
	cfg := DefaultConfig()
	cfg.ID, cfg.Storage, cfg.Join, cfg.Seed = id, s, true, uint64(len(c.ids))
	if tweak != nil {
		tweak(&cfg)
	}
	rn, err := NewRawNode(cfg)
	if err != nil {
		c.t.Fatalf("NewRawNode(%s): %v", id, err)
	}
	c.ids = append(c.ids, id)
	c.nodes[id], c.stores[id] = rn, s
}

// changeConf proposes cc on the leader, processes, and fails on error.
func (c *testCluster) changeConf(lead transport.NodeID, cc ConfChange) uint64 {
	c.t.Helper()
	idx, _, err := c.nodes[lead].ProposeConfChange(cc)
	if err != nil {
		c.t.Fatalf("ProposeConfChange(%+v): %v", cc, err)
	}
	c.process()
	return idx
}

func (c *testCluster) membership(id transport.NodeID) Membership {
	return c.nodes[id].Status().Membership
}

// settle ticks a few heartbeats so that every node learns the commit index.
func (c *testCluster) settle() {
	for range 3 {
		c.tickAll()
	}
}

func op(t ConfChangeType, id transport.NodeID) ConfChangeOp { return ConfChangeOp{Type: t, Node: id} }

// electNode makes id the leader by campaigning from it.
func (c *testCluster) electNode(id transport.NodeID) {
	c.t.Helper()
	c.nodes[id].r.campaign(false, false)
	c.process()
	if c.leader() != id {
		c.t.Fatalf("%s did not win the election (leader %q)", id, c.leader())
	}
	c.settle()
}

// §4.1: a server uses the latest configuration in its log, committed or
// not; a learner then catches up and a promotion makes it a voter.
func TestConfChangeAddLearnerThenPromote(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.electNode("n1")
	c.addJoiner("n4", nil)
	c.changeConf("n1", ConfChange{Changes: []ConfChangeOp{op(ConfAddLearner, "n4")}})
	c.settle()
	if m := c.membership("n4"); !slices.Equal(m.Learners, ids("n4")) || !slices.Equal(m.Voters, ids("n1", "n2", "n3")) {
		t.Fatalf("n4's membership = %+v; want voters n1-n3 and learner n4", m)
	}
	if got := c.nodes["n1"].Status().Progress["n4"].Match; got != c.nodes["n1"].Status().LastIndex {
		t.Fatalf("learner match = %d; want the leader's last index %d", got, c.nodes["n1"].Status().LastIndex)
	}
	c.changeConf("n1", ConfChange{Changes: []ConfChangeOp{op(ConfPromote, "n4")}})
	c.settle()
	for _, id := range c.ids {
		if m := c.membership(id); !slices.Equal(m.Voters, ids("n1", "n2", "n3", "n4")) || len(m.Learners) != 0 {
			t.Errorf("%s's membership = %+v; want voters n1-n4", id, m)
		}
	}
	if _, _, err := c.nodes["n1"].Propose([]byte("x")); err != nil {
		t.Fatal(err)
	}
	c.settle()
	if got := c.appliedData("n4"); !slices.Equal(got, []string{"x"}) {
		t.Errorf("n4 applied %q; want [x]", got)
	}
}

// Learners never count for commit: with both other voters cut off, the
// leader and two learners are not a quorum (though they are a majority of
// the five members).
func TestLearnerAckDoesNotCommit(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.electNode("n1")
	c.addJoiner("l", nil)
	c.addJoiner("m", nil)
	c.changeConf("n1", ConfChange{Changes: []ConfChangeOp{op(ConfAddLearner, "l"), op(ConfAddLearner, "m")}})
	c.settle()
	c.drop = func(m Message) bool { return m.To == "n2" || m.To == "n3" }
	idx, _, err := c.nodes["n1"].Propose([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	c.process()
	st := c.nodes["n1"].Status()
	if st.Progress["l"].Match < idx {
		t.Fatalf("learner match %d; want it to hold index %d", st.Progress["l"].Match, idx)
	}
	if st.Commit >= idx {
		t.Errorf("leader committed index %d with only a learner's ack; want it uncommitted", idx)
	}
}

// Learners never campaign, however long they hear nothing.
func TestLearnerNeverCampaigns(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.electNode("n1")
	c.addJoiner("l", nil)
	c.changeConf("n1", ConfChange{Changes: []ConfChangeOp{op(ConfAddLearner, "l")}})
	c.settle()
	c.drop = func(m Message) bool { return true }
	rn := c.nodes["l"]
	for range 100 {
		rn.Tick()
		for rn.HasReady() {
			rd, _ := rn.Ready()
			for _, m := range rd.Messages {
				if m.Type == MsgVote || m.Type == MsgPreVote {
					t.Fatalf("learner sent %v", m.Type)
				}
			}
			rn.Advance(rd)
		}
	}
	if st := rn.Status(); st.Role != Follower {
		t.Errorf("learner role = %v; want follower", st.Role)
	}
}

// §4.3: while in C_old,new, an entry commits only with majorities of both:
// the new voters alone are not enough.
func TestJointCommitNeedsBothMajorities(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.electNode("n1")
	c.addJoiner("n4", nil)
	c.addJoiner("n5", nil)
	c.changeConf("n1", ConfChange{Changes: []ConfChangeOp{op(ConfAddVoter, "n4"), op(ConfAddVoter, "n5"), op(ConfRemove, "n2"), op(ConfRemove, "n3")}, ExplicitLeave: true})
	c.settle()
	if m := c.membership("n1"); !m.Joint() {
		t.Fatalf("membership %+v; want joint", m)
	}
	// The old voters n2 and n3 are cut off: n1, n4, n5 are a majority of
	// C_new but only n1 of C_old.
	c.drop = func(m Message) bool { return m.To == "n2" || m.To == "n3" }
	idx, _, err := c.nodes["n1"].Propose([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	if st := c.nodes["n1"].Status(); st.Commit >= idx {
		t.Errorf("committed index %d in C_old,new with no majority of C_old; want uncommitted", idx)
	}
	// Elections too: n4 cannot win with n5 and n1 alone.
	c.nodes["n4"].r.campaign(false, false)
	c.process()
	if c.nodes["n4"].Status().Role == Leader {
		t.Errorf("n4 won an election in C_old,new without a majority of C_old")
	}
}

// §4.3: the joint configuration is left automatically once committed; the
// leader, if removed, steps down once C_new commits and hands over.
func TestJointAutoLeaveAndLeaderRemoval(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.electNode("n1")
	c.addJoiner("n4", nil)
	c.addJoiner("n5", nil)
	c.changeConf("n1", ConfChange{Changes: []ConfChangeOp{op(ConfAddVoter, "n4"), op(ConfAddVoter, "n5"), op(ConfRemove, "n1"), op(ConfRemove, "n2")}})
	c.settle()
	c.settle()
	want := ids("n3", "n4", "n5")
	for _, id := range want {
		if m := c.membership(id); m.Joint() || !slices.Equal(m.Voters, want) {
			t.Errorf("%s's membership = %+v; want voters %v, not joint", id, m, want)
		}
	}
	if st := c.nodes["n1"].Status(); st.Role == Leader {
		t.Errorf("removed leader n1 still leads")
	}
	l := c.leader()
	if !slices.Contains(want, l) {
		t.Fatalf("leader after the change = %q; want one of %v", l, want)
	}
	if _, _, err := c.nodes[l].Propose([]byte("after")); err != nil {
		t.Fatal(err)
	}
	c.settle()
	for _, id := range want {
		if got := c.appliedData(id); !slices.Contains(got, "after") {
			t.Errorf("%s applied %q; want it to include \"after\"", id, got)
		}
	}
}

// A change while another is pending is refused; so is one before the
// leader has committed an entry of its term (the single-server change fix).
func TestConfChangeRefusedWhilePending(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.electNode("n1")
	c.drop = func(m Message) bool { return true }
	if _, _, err := c.nodes["n1"].ProposeConfChange(ConfChange{Changes: []ConfChangeOp{op(ConfAddLearner, "l")}}); err != nil {
		t.Fatal(err)
	}
	c.process()
	_, _, err := c.nodes["n1"].ProposeConfChange(ConfChange{Changes: []ConfChangeOp{op(ConfAddLearner, "m")}})
	if !errors.Is(err, ErrConfChangeInProgress) {
		t.Errorf("second change while the first is uncommitted: %v; want ErrConfChangeInProgress", err)
	}

	c2 := newTestCluster(t, 3, nil)
	c2.drop = func(m Message) bool { return m.Type == MsgAppResp } // nothing commits
	c2.nodes["n1"].r.campaign(false, false)
	c2.process()
	_, _, err = c2.nodes["n1"].ProposeConfChange(ConfChange{Changes: []ConfChangeOp{op(ConfAddLearner, "l")}})
	if !errors.Is(err, ErrConfChangeInProgress) {
		t.Errorf("change before committing an entry of the term: %v; want ErrConfChangeInProgress", err)
	}

	c3 := newTestCluster(t, 3, nil)
	c3.electNode("n1")
	c3.addJoiner("n4", nil)
	c3.addJoiner("n5", nil)
	c3.changeConf("n1", ConfChange{Changes: []ConfChangeOp{op(ConfAddVoter, "n4"), op(ConfAddVoter, "n5")}, ExplicitLeave: true})
	c3.settle()
	_, _, err = c3.nodes["n1"].ProposeConfChange(ConfChange{Changes: []ConfChangeOp{op(ConfRemove, "n4")}})
	if !errors.Is(err, ErrConfChangeInProgress) {
		t.Errorf("change in a joint configuration: %v; want ErrConfChangeInProgress", err)
	}
	c3.changeConf("n1", ConfChange{LeaveJoint: true})
	c3.settle()
	if m := c3.membership("n5"); m.Joint() || len(m.Voters) != 5 {
		t.Errorf("after LeaveJoint n5's membership = %+v; want 5 voters, not joint", m)
	}
}

// §4.1: the configuration takes effect on append and is rolled back when
// the entry is truncated by a new leader.
func TestConfChangeTakesEffectOnAppendAndRollsBack(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.electNode("n1")
	// Only n2 receives the change; nobody acknowledges, so it stays
	// uncommitted.
	c.drop = func(m Message) bool { return m.To != "n2" || m.Type != MsgApp }
	c.changeConf("n1", ConfChange{Changes: []ConfChangeOp{op(ConfAddLearner, "l")}})
	if m := c.membership("n2"); !slices.Equal(m.Learners, ids("l")) {
		t.Fatalf("n2's membership after append = %+v; want learner l (effective on append)", m)
	}
	if m := c.membership("n3"); len(m.Learners) != 0 {
		t.Fatalf("n3's membership = %+v; want no learner (it did not get the entry)", m)
	}
	// n3, whose log lacks the entry, becomes leader of a higher term (set
	// directly: n1 and n2 would refuse it their votes, which is beside the
	// point here). Its first append truncates n2's copy of the change.
	c.drop = nil
	r3 := c.nodes["n3"].r
	r3.becomeCandidate()
	r3.becomeLeader()
	c.process()
	c.settle()
	if m := c.membership("n2"); len(m.Learners) != 0 {
		t.Errorf("n2's membership after truncation = %+v; want the learner rolled back", m)
	}
}

// The membership lives in snapshots and is restored with them, and a
// restart rebuilds it from the snapshot plus the log after it.
func TestMembershipSurvivesRestartAndSnapshot(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.electNode("n1")
	c.addJoiner("l", nil)
	c.changeConf("n1", ConfChange{Changes: []ConfChangeOp{op(ConfAddLearner, "l")}})
	c.settle()
	want := c.membership("n2")
	// Restart n2 from its storage (log only, no snapshot).
	restart := func(id transport.NodeID) {
		cfg := DefaultConfig()
		cfg.ID, cfg.Peers, cfg.Storage = id, ids("n1", "n2", "n3"), c.stores[id]
		cfg.Applied = c.nodes[id].Status().Applied
		rn, err := NewRawNode(cfg)
		if err != nil {
			t.Fatalf("restart %s: %v", id, err)
		}
		c.nodes[id] = rn
	}
	restart("n2")
	if got := c.membership("n2"); !got.Equal(want) {
		t.Errorf("after restart from the log: %+v; want %+v", got, want)
	}
	// Snapshot n2 at its applied index with the membership the core
	// reports for it, compact, restart.
	rn := c.nodes["n2"]
	applied := rn.Status().Applied
	m, err := rn.MembershipAt(applied)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.stores["n2"].CreateSnapshot(applied, m, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.stores["n2"].Compact(applied); err != nil {
		t.Fatal(err)
	}
	restart("n2")
	if got := c.membership("n2"); !got.Equal(want) {
		t.Errorf("after restart from a snapshot: %+v; want %+v", got, want)
	}
	if _, err := c.nodes["n2"].MembershipAt(applied - 1); !errors.Is(err, ErrCompacted) {
		t.Errorf("MembershipAt(before the snapshot) = %v; want ErrCompacted", err)
	}
}

// A fresh node that neither bootstraps nor joins is a misconfiguration.
func TestJoinConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ID, cfg.Peers, cfg.Storage = "x", ids("a", "b"), NewMemoryStorage()
	if _, err := NewRawNode(cfg); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("ID outside Peers without Join: %v; want ErrInvalidConfig", err)
	}
	cfg.Join = true
	if _, err := NewRawNode(cfg); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Join with Peers: %v; want ErrInvalidConfig", err)
	}
	cfg.Peers = nil
	rn, err := NewRawNode(cfg)
	if err != nil {
		t.Fatalf("Join without Peers: %v", err)
	}
	if st := rn.Status(); len(st.Membership.Voters) != 0 {
		t.Errorf("a joining node's membership = %+v; want empty", st.Membership)
	}
}

// Status reports the index of the configuration in force, so that a
// runtime can tell when a change is committed.
func TestStatusMembershipIndex(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.electNode("n1")
	c.drop = func(m Message) bool { return true }
	idx, _, err := c.nodes["n1"].ProposeConfChange(ConfChange{Changes: []ConfChangeOp{op(ConfAddLearner, "l")}})
	if err != nil {
		t.Fatal(err)
	}
	c.process()
	if st := c.nodes["n1"].Status(); st.MembershipIndex != idx || st.Commit >= idx {
		t.Fatalf("Status: MembershipIndex %d, Commit %d; want %d, uncommitted", st.MembershipIndex, st.Commit, idx)
	}
	c.drop = nil
	c.settle()
	if st := c.nodes["n1"].Status(); st.Commit < st.MembershipIndex {
		t.Errorf("Status: Commit %d < MembershipIndex %d after settling", st.Commit, st.MembershipIndex)
	}
}

// A removed node stops naming the leader it no longer hears from, so that
// it does not redirect clients to a stale leader forever.
func TestRemovedNodeForgetsLeader(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.electNode("n1")
	c.addJoiner("l", nil)
	c.changeConf("n1", ConfChange{Changes: []ConfChangeOp{op(ConfAddLearner, "l")}})
	c.settle()
	c.changeConf("n1", ConfChange{Changes: []ConfChangeOp{op(ConfRemove, "l")}})
	c.settle()
	// The leader sends a removed node nothing more, not even its removal
	// (thesis §4.2.2): it still believes it is a learner.
	if st := c.nodes["l"].Status(); st.Leader != "n1" {
		t.Fatalf("removed learner: leader %q; want n1", st.Leader)
	}
	for range 2 * DefaultConfig().ElectionTicks {
		c.tickAll()
	}
	if st := c.nodes["l"].Status(); st.Leader != "" || st.Role != Follower {
		t.Errorf("removed node after two election timeouts: leader %q role %v; want no leader, follower", st.Leader, st.Role)
	}
	if l := c.leader(); l != "n1" {
		t.Errorf("leader = %q; want n1 undisturbed", l)
	}
}
