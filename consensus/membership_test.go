package consensus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// churnCluster is a memnet cluster founded by three nodes that others
// join later with Config.Join, recording acknowledged writes.
type churnCluster struct {
	*cluster
	net   *memnet.Network
	acked map[string]string
	seq   int
}

func newChurnCluster(t *testing.T) *churnCluster {
	c, net := newMemnetCluster(t, true, memnet.Faults{MaxDelay: time.Millisecond}, nil)
	founders := slices.Clone(c.ids)
	base := c.cfg
	c.cfg = func(id transport.NodeID) Config {
		if slices.Contains(founders, id) {
			return base(id)
		}
		// The join rule: Peers are the founders, as they were given them.
		cfg := testConfig(id, founders)
		cfg.Join = true
		cfg.DataDir = c.dirs[id]
		return cfg
	}
	return &churnCluster{cluster: c, net: net, acked: map[string]string{}}
}

// join starts a new node that joins the cluster.
func (cc *churnCluster) join(id transport.NodeID) {
	cc.t.Helper()
	cc.dirs[id] = cc.t.TempDir()
	cc.ids = append(cc.ids, id)
	cc.start(id)
}

// leader returns the node that leads (as the running nodes agree).
func (cc *churnCluster) leader(ctx context.Context) *Node {
	cc.t.Helper()
	for {
		for _, id := range cc.ids {
			n := cc.nodes[id]
			if n == nil {
				continue
			}
			if li := n.Leader(); li.Role == raft.Leader {
				return n
			}
		}
		time.Sleep(time.Millisecond)
		if ctx.Err() != nil {
			cc.t.Fatalf("no leader: %v", ctx.Err())
		}
	}
}

// write proposes a fresh key on the leader until one attempt is
// acknowledged, and records it.
func (cc *churnCluster) write(ctx context.Context) {
	cc.t.Helper()
	cc.seq++
	k, v := fmt.Sprintf("w%d", cc.seq), fmt.Sprint(cc.seq)
	for ctx.Err() == nil {
		if _, err := cc.leader(ctx).Propose(ctx, []byte(k+"="+v)); err == nil {
			cc.acked[k] = v
			return
		}
		time.Sleep(time.Millisecond)
	}
	cc.t.Fatalf("write %s never acknowledged", k)
}

// change applies ops through whichever node leads, retrying while the
// leader is busy (a fresh leader, another change, a transfer).
func (cc *churnCluster) change(ctx context.Context, ops ...raft.ConfChangeOp) *Node {
	cc.t.Helper()
	for {
		l := cc.leader(ctx)
		err := l.ChangeMembership(ctx, ops...)
		switch {
		case err == nil:
			return l
		case errors.Is(err, ErrNotLeader), errors.Is(err, raft.ErrConfChangeInProgress),
			errors.Is(err, raft.ErrProposalDropped), errors.Is(err, ErrProposalLost):
			time.Sleep(time.Millisecond)
		default:
			cc.t.Fatalf("ChangeMembership(%v) = %v", ops, err)
		}
	}
}

// check requires every acknowledged write on every running member of m,
// and m to be the configuration every running member has.
func (cc *churnCluster) check(ctx context.Context, voters ...transport.NodeID) {
	cc.t.Helper()
	l := cc.leader(ctx)
	cc.write(ctx)
	last := l.Status().Commit
	for _, id := range voters {
		n := cc.nodes[id]
		if err := n.Read(ctx); err != nil {
			cc.t.Fatalf("%s: Read = %v", id, err)
		}
		if err := cc.sms[id].waitApplied(ctx, last); err != nil {
			cc.t.Fatalf("%s: %v", id, err)
		}
		for k, v := range cc.acked {
			if got, _ := cc.sms[id].get(k); got != v {
				cc.t.Fatalf("%s: acknowledged %s=%s reads %q", id, k, v, got)
			}
		}
		m, _ := n.Members()
		got := slices.Sorted(slices.Values(m.Voters))
		if !slices.Equal(got, slices.Sorted(slices.Values(voters))) || m.Joint() {
			cc.t.Fatalf("%s: voters %v (joint %v); want %v", id, m.Voters, m.Joint(), voters)
		}
	}
}

func op(t raft.ConfChangeType, id transport.NodeID) raft.ConfChangeOp {
	return raft.ConfChangeOp{Type: t, Node: id}
}

// TestMembershipGrowShrink grows a cluster 3 -> 5 the safe way (learners
// caught up, then promoted) and shrinks it 5 -> 3 in one joint change,
// writing throughout: every acknowledged write is on every member.
func TestMembershipGrowShrink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cc := newChurnCluster(t)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for range 5 {
			cc.write(ctx)
		}
		for _, id := range []transport.NodeID{"n4", "n5"} {
			cc.join(id)
			for {
				err := cc.leader(ctx).AddAndPromote(ctx, id, 0)
				if err == nil {
					break
				}
				if ctx.Err() != nil || !errors.Is(err, ErrNotLeader) && !errors.Is(err, raft.ErrConfChangeInProgress) {
					t.Fatalf("AddAndPromote(%s) = %v", id, err)
				}
				time.Sleep(time.Millisecond)
			}
			cc.write(ctx)
		}
		cc.check(ctx, "n1", "n2", "n3", "n4", "n5")
		// Shrink by two voters at once: a joint configuration, left
		// before ChangeMembership returns.
		on := cc.change(ctx, op(raft.ConfRemove, "n1"), op(raft.ConfRemove, "n2"))
		if m, committed := on.Members(); m.Joint() || !committed {
			t.Fatalf("ChangeMembership returned with membership %+v (committed %v); want the joint configuration left and committed", m, committed)
		}
		cc.write(ctx)
		for _, id := range []transport.NodeID{"n1", "n2"} {
			cc.stop(id)
		}
		cc.check(ctx, "n3", "n4", "n5")
	})
}

// TestMembershipReplaceAndRemoveLeader replaces a node (a new voter and a
// removal in one joint change), then removes the leader itself: it steps
// down once the change commits and another member leads on.
func TestMembershipReplaceAndRemoveLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cc := newChurnCluster(t)
		ctx := context.Background()
		cc.write(ctx)
		cc.join("n4")
		victim := cc.others(cc.leader(ctx).ID())[0]
		cc.change(ctx, op(raft.ConfAddVoter, "n4"), op(raft.ConfRemove, victim))
		cc.stop(victim)
		var rest []transport.NodeID
		for _, id := range cc.ids {
			if id != victim {
				rest = append(rest, id)
			}
		}
		cc.check(ctx, rest...)

		l := cc.leader(ctx)
		if err := l.Remove(ctx, l.ID()); err != nil {
			t.Fatalf("leader Remove(itself) = %v", err)
		}
		cc.write(ctx)
		nl := cc.leader(ctx)
		if nl == l {
			t.Fatalf("removed leader %s still leads", l.ID())
		}
		cc.stop(l.ID())
		var left []transport.NodeID
		for _, id := range rest {
			if id != l.ID() {
				left = append(left, id)
			}
		}
		cc.check(ctx, left...)
	})
}

// TestMembershipErrors: changes off the leader and changes while another
// is in flight are refused with clear errors; a node that is down can be
// removed.
func TestMembershipErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cc := newChurnCluster(t)
		ctx := context.Background()
		cc.write(ctx)
		l := cc.leader(ctx)
		f := cc.nodes[cc.others(l.ID())[0]]
		if err := f.AddLearner(ctx, "n9"); !errors.Is(err, ErrNotLeader) {
			t.Errorf("AddLearner on a follower = %v; want ErrNotLeader", err)
		}
		if err := l.ChangeMembership(ctx, op(raft.ConfRemove, "stranger")); !errors.Is(err, raft.ErrInvalidConfChange) {
			t.Errorf("removing a stranger = %v; want raft.ErrInvalidConfChange", err)
		}
		// Two changes at once: one is applied, the other refused while
		// the first is uncommitted (the learners never start; that does
		// not matter).
		addTwoLearners(t, ctx, l, "concurrent changes")
		// A voter that is down is removed all the same.
		down := cc.others(l.ID())[1]
		cc.stop(down)
		cc.change(ctx, op(raft.ConfRemove, down))
		if m, committed := l.Members(); m.Contains(down) || !committed {
			t.Errorf("Members after removing %s = %+v (committed %v)", down, m, committed)
		}
	})
}

// TestAddAndPromoteWaitsForCatchUp: a learner that cannot be reached is
// never promoted (it would count for quorums with an empty log); once it
// is reachable it catches up and is promoted.
func TestAddAndPromoteWaitsForCatchUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cc := newChurnCluster(t)
		ctx := context.Background()
		for range 5 {
			cc.write(ctx)
		}
		cc.join("n4")
		cc.net.Isolate("n4")
		l := cc.leader(ctx)
		actx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if err := l.AddAndPromote(actx, "n4", 0); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("AddAndPromote of an unreachable node = %v; want a timeout", err)
		}
		if m, _ := l.Members(); !m.IsLearner("n4") {
			t.Fatalf("membership %+v; want n4 still a learner", m)
		}
		cc.net.Heal()
		bctx, cancel2 := context.WithTimeout(ctx, 10*time.Second)
		defer cancel2()
		if err := l.AddAndPromote(bctx, "n4", 0); err != nil {
			t.Fatalf("AddAndPromote after heal = %v", err)
		}
		cc.check(ctx, "n1", "n2", "n3", "n4")
	})
}

// TestChangeMembershipWaitsForFreshLeader: a leader that was just elected
// has not committed an entry of its term yet, and the core refuses changes
// until it has (Ongaro's fix to single-server changes). ChangeMembership
// waits for that inside, so a change asked of a fresh leader succeeds
// without a retry loop; two changes asked together still conflict: the
// first goes in, the second finds it in flight and is refused with
// ErrConfChangeInProgress.
func TestChangeMembershipWaitsForFreshLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Every message takes exactly 1 ms of virtual time: the new leader's
		// first entry cannot commit in the instant it wins.
		c, _ := newMemnetCluster(t, false, memnet.Faults{MinDelay: time.Millisecond, MaxDelay: time.Millisecond}, nil)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		lead, err := c.nodes["n1"].WaitLeader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		target := c.others(lead)[0]
		tn := c.nodes[target]
		obs := tn.Observe(ctx)
		transferred := make(chan error, 1)
		go func() { transferred <- c.nodes[lead].TransferLeadership(ctx, target) }()
		for li := range obs {
			if li.Role == raft.Leader {
				break
			}
		}
		// The same virtual instant: the entry of the new term is appended,
		// not committed.
		if st := tn.Status(); st.Commit >= st.LastIndex {
			t.Fatalf("%s leads with commit %d, last index %d; want its first entry uncommitted (the test lost its race)", target, st.Commit, st.LastIndex)
		}
		addTwoLearners(t, ctx, tn, "changes asked of a fresh leader")
		if err := <-transferred; err != nil {
			t.Errorf("TransferLeadership = %v", err)
		}
		// A change asked after the first one committed goes in too.
		if err := tn.Promote(ctx, pickLearner(tn)); err != nil {
			t.Errorf("Promote after the conflict = %v", err)
		}
	})
}

// pickLearner returns a learner of n's configuration.
func pickLearner(n *Node) transport.NodeID {
	m, _ := n.Members()
	if len(m.Learners) == 0 {
		return ""
	}
	return m.Learners[0]
}

// TestAddAndPromoteNeedsAnAnswer: however small the log and however large
// maxLag, a learner that never answered (down or unreachable) is not
// promoted: it would count for quorums without holding the log.
func TestAddAndPromoteNeedsAnAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cc := newChurnCluster(t)
		ctx := context.Background()
		cc.write(ctx)
		l := cc.leader(ctx)
		actx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		// n4 never starts.
		if err := l.AddAndPromote(actx, "n4", 1000); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("AddAndPromote of a learner that never answered = %v; want a timeout", err)
		}
		if m, _ := l.Members(); !m.IsLearner("n4") || slices.Contains(m.Voters, "n4") {
			t.Fatalf("membership %+v; want n4 still a learner", m)
		}
	})
}

// TestAddAndPromoteWaitsForLag: a learner that answered once but fell more
// than maxLag entries behind is not promoted until it has caught up.
func TestAddAndPromoteWaitsForLag(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cc := newChurnCluster(t)
		ctx := context.Background()
		cc.write(ctx)
		cc.join("n4")
		l := cc.leader(ctx)
		if err := l.AddLearner(ctx, "n4"); err != nil {
			t.Fatalf("AddLearner = %v", err)
		}
		for {
			st := l.Status()
			if st.Progress["n4"].Match >= st.LastIndex {
				break
			}
			time.Sleep(time.Millisecond)
		}
		cc.net.Isolate("n4")
		for range 5 {
			cc.write(ctx)
		}
		actx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if err := l.AddAndPromote(actx, "n4", 2); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("AddAndPromote of a learner 5 entries behind with maxLag 2 = %v; want a timeout", err)
		}
		cc.net.Heal()
		bctx, cancel2 := context.WithTimeout(ctx, 10*time.Second)
		defer cancel2()
		if err := l.AddAndPromote(bctx, "n4", 2); err != nil {
			t.Fatalf("AddAndPromote after heal = %v", err)
		}
	})
}

// TestChangeMembershipAfterTransfer is the tour's sequence: a change
// applied on the leader, leadership handed over at once, and a second
// change asked of the new leader. The new leader may take over before it
// has heard that the first change committed (a transfer's TimeoutNow and
// the votes carry no commit index), so its core still sees that change in
// flight; its first commit in its term settles it. ChangeMembership must
// wait for that, not refuse with ErrConfChangeInProgress.
func TestChangeMembershipAfterTransfer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _ := newMemnetCluster(t, false, memnet.Faults{MinDelay: time.Millisecond, MaxDelay: time.Millisecond}, nil)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		lead, err := c.nodes["n1"].WaitLeader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ln := c.nodes[lead]
		if err := ln.AddLearner(ctx, "n8"); err != nil {
			t.Fatalf("AddLearner = %v", err)
		}
		target := c.others(lead)[0]
		tn := c.nodes[target]
		if err := ln.TransferLeadership(ctx, target); err != nil {
			t.Fatalf("TransferLeadership = %v", err)
		}
		if st := tn.Status(); st.Role != raft.Leader {
			t.Fatalf("%s is %v after the transfer; want leader", target, st.Role)
		}
		if err := tn.Remove(ctx, "n8"); err != nil {
			t.Fatalf("Remove on the new leader = %v; want it to wait for its first commit, then apply", err)
		}
		if m, committed := tn.Members(); m.IsLearner("n8") || !committed {
			t.Errorf("Members() = %+v (committed %v); want n8 gone, committed", m, committed)
		}
	})
}

// addTwoLearners asks n to add learners n8 and n9 at the same time (they
// never start; that does not matter): one change must be applied and the
// other refused with ErrConfChangeInProgress, as the first is uncommitted.
func addTwoLearners(t *testing.T, ctx context.Context, n *Node, what string) {
	t.Helper()
	errs := make(chan error, 2)
	for _, id := range []transport.NodeID{"n8", "n9"} {
		go func() { errs <- n.AddLearner(ctx, id) }()
	}
	var ok, refused int
	for range 2 {
		switch err := <-errs; {
		case err == nil:
			ok++
		case errors.Is(err, raft.ErrConfChangeInProgress):
			refused++
		default:
			t.Fatalf("two %s: AddLearner = %v; want nil or ErrConfChangeInProgress", what, err)
		}
	}
	if ok != 1 || refused != 1 {
		t.Errorf("two %s: %d applied, %d refused; want 1 and 1", what, ok, refused)
	}
}

// TestMembershipWithEndedContext: a membership change whose caller's
// context has ended is not made, as a command is not proposed (found by
// review: do handed it to the loop at random, and the loop proposed it);
// and AddAndPromote refuses a nil context instead of panicking once the
// learner is there.
func TestMembershipWithEndedContext(t *testing.T) {
	c := newCluster(t, false, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l := c.nodes[c.leader(ctx)]
	ended, end := context.WithCancel(context.Background())
	end()
	for i := range 20 {
		id := transport.NodeID(fmt.Sprintf("x%d", i))
		if err := l.AddLearner(ended, id); !errors.Is(err, context.Canceled) {
			t.Fatalf("AddLearner(ended context) = %v; want context.Canceled", err)
		}
	}
	// A change the loop takes after its caller's context ended (do checks
	// the context first; this is the loop's own check).
	w := &confWait{ctx: ended, cc: raft.ConfChange{Changes: []raft.ConfChangeOp{{Type: raft.ConfAddLearner, Node: "late"}}}, done: make(chan error, 1)}
	proposed := make(chan bool, 1)
	if err := l.do(ctx, func() { proposed <- l.proposeConf(w) }); err != nil {
		t.Fatal(err)
	}
	if <-proposed {
		t.Fatalf("the loop proposed a membership change whose caller's context had ended")
	}
	if err := <-w.done; !errors.Is(err, context.Canceled) {
		t.Fatalf("the loop's proposeConf for an ended context = %v; want context.Canceled", err)
	}
	// A change that is made: whatever the loop was handed before it is
	// settled by then.
	if err := l.AddLearner(ctx, "n9"); err != nil { // never started: never catches up
		t.Fatal(err)
	}
	if m, _ := l.Members(); len(m.Learners) != 1 || !m.IsLearner("n9") {
		t.Fatalf("learners %v; want only n9 (no change made for an ended context)", m.Learners)
	}
	//lint:ignore SA1012 a nil context is what is tested
	if err := l.AddAndPromote(nil, "n9", 0); !errors.Is(err, ErrNilContext) {
		t.Fatalf("AddAndPromote(nil) = %v; want ErrNilContext", err)
	}
}
