package raft

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
)

// Membership churn under faults (thesis §4): nodes are added as learners
// and promoted, removed (the leader too), replaced, the cluster grows from
// 3 to 5 voters and shrinks back, leadership is transferred and ReadIndex
// reads are served, all while the network partitions, loses, duplicates and
// reorders messages and nodes crash and restart. After every event the
// checker verifies Election Safety across old and new configurations (one
// leader per term among every node that ever ran), Log Matching, Leader
// Completeness and State Machine Safety; reads must see every write
// committed before they started; the KV history must be linearizable; and
// once the faults stop the final configuration must converge and serve.

// churnPool is how many node IDs a churn run may use: three initial voters
// and spares that join (an ID is never reused once removed).
const churnPool = 9

// churn drives one run.
type churn struct {
	t     *testing.T
	c     *simCluster
	rng   *rand.Rand
	seed  int64
	step  int
	op    string
	fresh []transport.NodeID // IDs never added yet
	// crashed are the nodes down now.
	crashed map[transport.NodeID]bool
	// reads maps a read's context to the highest index known committed
	// anywhere when it started: its ReadState must be at least that.
	reads   map[string]uint64
	readSeq int
	stats   churnStats
}

type churnStats struct {
	Changes, Joint, LeaderRemovals, Transfers, ReadsIssued, ReadsAnswered int
}

func newChurn(t *testing.T, seed int64, faults sim.Faults, tweak func(*Config)) *churn {
	c := newSimCluster(t, seed, churnPool, 3, faults, tweak, false)
	// newSimCluster started every node as a voter of a churnPool-node
	// cluster; nothing ran yet, so restart them as three voters and
	// spares that will join.
	for _, id := range c.ids {
		c.s.Crash(id)
	}
	c.initial = slices.Clone(c.ids[:3])
	for _, id := range c.ids {
		c.s.Restart(id)
	}
	k := &churn{
		t:       t,
		c:       c,
		rng:     rand.New(rand.NewPCG(uint64(seed), 0xc0ffee)),
		seed:    seed,
		fresh:   slices.Clone(c.ids[3:]),
		crashed: map[transport.NodeID]bool{},
		reads:   map[string]uint64{},
	}
	c.onReadStates = k.readAnswered
	// Clients talk to the initial members only; they follow redirects.
	return k
}

// maxCommitted is the highest index any node knows committed.
func (k *churn) maxCommitted() uint64 {
	var m uint64
	for i := range k.c.committed {
		m = max(m, i)
	}
	return m
}

func (k *churn) readAnswered(s *kvServer, rs []ReadState) {
	for _, r := range rs {
		// A read may be answered twice (the network duplicates
		// messages); each answer must be right.
		need, ok := k.reads[string(r.Context)]
		if !ok {
			k.c.fail("seed %d step %d: %s got a ReadState for a read never issued %q", k.seed, k.step, s.id, r.Context)
			continue
		}
		k.stats.ReadsAnswered++
		// §6.4: the read index covers every write committed (so every
		// write acknowledged) before the read started.
		if r.Index < need {
			k.c.fail("seed %d step %d: %s: read %q answered at index %d; index %d was committed before it started", k.seed, k.step, s.id, r.Context, r.Index, need)
		}
	}
}

// leader returns the live leader of the highest term, or nil.
func (k *churn) leader() *kvServer { return k.c.leader() }

// members returns the leader's configuration.
func (k *churn) members() Membership {
	if l := k.leader(); l != nil {
		return l.rn.r.conf
	}
	return Membership{}
}

// propose asks the leader for a membership change; refusals that a running
// cluster gives (change in progress, no leader, transfer) are fine.
func (k *churn) propose(cc ConfChange) bool {
	l := k.leader()
	if l == nil {
		return false
	}
	var err error
	k.c.s.Inject(l.id, func(sim.Env) {
		_, _, err = l.rn.ProposeConfChange(cc)
		l.process()
	})
	switch {
	case err == nil:
		k.stats.Changes++
		if l.rn.r.conf.Joint() {
			k.stats.Joint++
		}
		for _, o := range cc.Changes {
			if o.Type == ConfRemove && o.Node == l.id {
				k.stats.LeaderRemovals++
			}
		}
		return true
	case errors.Is(err, ErrConfChangeInProgress), errors.Is(err, ErrNotLeader), errors.Is(err, ErrProposalDropped):
		return false
	default:
		k.c.fail("seed %d step %d: ProposeConfChange(%+v) on %s: %v", k.seed, k.step, cc, l.id, err)
		return false
	}
}

func (k *churn) takeFresh() (transport.NodeID, bool) {
	if len(k.fresh) == 0 {
		return "", false
	}
	id := k.fresh[0]
	k.fresh = k.fresh[1:]
	return id, true
}

// caughtUp returns a learner whose match is within a few entries of the
// leader's last index ("" if none).
func (k *churn) caughtUp() transport.NodeID {
	l := k.leader()
	if l == nil {
		return ""
	}
	last := l.rn.r.log.lastIndex()
	for _, id := range l.rn.r.conf.Learners {
		if pr := l.rn.r.prs[id]; pr != nil && pr.match+5 >= last {
			return id
		}
	}
	return ""
}

func (k *churn) randomVoter() transport.NodeID {
	v := k.members().Voters
	if len(v) == 0 {
		return ""
	}
	return v[k.rng.IntN(len(v))]
}

// issueReads starts a few ReadIndex requests on random live nodes.
func (k *churn) issueReads() {
	for range 1 + k.rng.IntN(3) {
		id := k.c.ids[k.rng.IntN(len(k.c.ids))]
		s := k.c.server(id)
		if s == nil {
			continue
		}
		k.readSeq++
		ctx := fmt.Sprintf("read-%d", k.readSeq)
		need := k.maxCommitted()
		var err error
		k.c.s.Inject(id, func(sim.Env) {
			k.reads[ctx] = need
			err = s.rn.ReadIndex([]byte(ctx))
			if err != nil {
				delete(k.reads, ctx)
			}
			s.process()
		})
		if err == nil {
			k.stats.ReadsIssued++
		}
	}
}

// membershipOp performs one random membership operation.
func (k *churn) membershipOp() {
	m := k.members()
	if len(m.Voters) == 0 {
		return
	}
	explicit := k.rng.IntN(2) == 0 // a joint configuration then lasts until LeaveJoint
	if m.Joint() {
		k.op = "leave joint"
		if !m.AutoLeave && k.rng.IntN(3) == 0 {
			k.propose(ConfChange{LeaveJoint: true})
		}
		return
	}
	switch k.rng.IntN(7) {
	case 0: // add a learner
		k.op = "add learner"
		if len(m.Learners) < 2 {
			if id, ok := k.takeFresh(); ok {
				k.propose(ConfChange{Changes: []ConfChangeOp{{ConfAddLearner, id}}})
			}
		}
	case 1: // promote a learner that caught up
		k.op = "promote"
		if id := k.caughtUp(); id != "" {
			k.propose(ConfChange{Changes: []ConfChangeOp{{ConfPromote, id}}})
		}
	case 2: // remove a voter (perhaps the leader), never below 3
		k.op = "remove voter"
		if len(m.Voters) > 3 {
			k.propose(ConfChange{Changes: []ConfChangeOp{{ConfRemove, k.randomVoter()}}})
		}
	case 3: // replace a voter: joint consensus
		k.op = "replace voter"
		if id, ok := k.takeFresh(); ok {
			k.maybeSplitForJoint(id)
			k.propose(ConfChange{Changes: []ConfChangeOp{{ConfAddVoter, id}, {ConfRemove, k.randomVoter()}}, ExplicitLeave: explicit})
		}
	case 4: // grow 3 -> 5 in one joint change
		k.op = "grow to 5"
		if len(m.Voters) == 3 && len(k.fresh) >= 2 {
			a, _ := k.takeFresh()
			b, _ := k.takeFresh()
			k.maybeSplitForJoint(a, b)
			k.propose(ConfChange{Changes: []ConfChangeOp{{ConfAddVoter, a}, {ConfAddVoter, b}}, ExplicitLeave: explicit})
		}
	case 5: // shrink 5 -> 3 in one joint change
		k.op = "shrink to 3"
		if len(m.Voters) == 5 {
			v := slices.Clone(m.Voters)
			k.rng.Shuffle(len(v), func(i, j int) { v[i], v[j] = v[j], v[i] })
			k.propose(ConfChange{Changes: []ConfChangeOp{{ConfRemove, v[0]}, {ConfRemove, v[1]}}, ExplicitLeave: explicit})
		}
	case 6: // remove a learner
		k.op = "remove learner"
		if len(m.Learners) > 0 {
			k.propose(ConfChange{Changes: []ConfChangeOp{{ConfRemove, m.Learners[0]}}})
		}
	}
}

// maybeSplitForJoint sometimes partitions the leader and the voters about
// to be added from everyone else just before a joint change is proposed:
// the new voters alone then make a majority of the incoming configuration,
// and the outgoing voters, which never see the change, a majority of the
// old one. Nothing may commit, and the old side may elect a leader only
// because nothing did.
func (k *churn) maybeSplitForJoint(added ...transport.NodeID) {
	l := k.leader()
	if l == nil || k.rng.IntN(3) != 0 {
		return
	}
	k.op += " (split)"
	a := append([]transport.NodeID{l.id}, added...)
	var b []transport.NodeID
	for _, n := range k.c.ids {
		if !slices.Contains(a, n) {
			b = append(b, n)
		}
	}
	k.c.s.Partition(a, b)
}

// faultOp injects one fault (or heals).
func (k *churn) faultOp() {
	s := k.c.s
	ids := k.c.ids
	id := ids[k.rng.IntN(len(ids))]
	switch k.rng.IntN(7) {
	case 6:
		// Along a joint change: the leader and the incoming-only voters
		// on one side, the outgoing voters on the other. Only majorities
		// of both may decide anything now.
		k.op = "partition along the joint change"
		l := k.leader()
		if l == nil || !l.rn.r.conf.Joint() {
			return
		}
		m := l.rn.r.conf
		a := []transport.NodeID{l.id}
		for _, v := range m.Voters {
			if v != l.id && !slices.Contains(m.OutgoingVoters, v) {
				a = append(a, v)
			}
		}
		var b []transport.NodeID
		for _, n := range ids {
			if !slices.Contains(a, n) {
				b = append(b, n)
			}
		}
		s.Partition(a, b)
	case 0:
		k.op = "partition"
		var a, b []transport.NodeID
		for _, n := range ids {
			if k.rng.IntN(2) == 0 {
				a = append(a, n)
			} else {
				b = append(b, n)
			}
		}
		s.Partition(a, b)
	case 1:
		k.op = "isolate leader"
		if l := k.leader(); l != nil {
			s.Isolate(l.id)
		}
	case 2:
		k.op = "crash " + string(id)
		s.Crash(id)
		k.crashed[id] = true
	case 3:
		k.op = "crash leader"
		if l := k.leader(); l != nil {
			s.Crash(l.id)
			k.crashed[l.id] = true
		}
	default:
		k.op = "heal"
		k.heal()
	}
}

func (k *churn) heal() {
	k.c.s.Heal()
	for _, n := range k.c.ids {
		if k.crashed[n] {
			k.c.s.Restart(n)
		}
	}
	clear(k.crashed)
}

// run performs steps random steps, then stops the faults and checks that
// the final configuration converges and serves.
func (k *churn) run(steps int) {
	c, s := k.c, k.c.s
	for k.step = 0; k.step < steps && !c.failed; k.step++ {
		s.Run(time.Duration(50+k.rng.IntN(250)) * time.Millisecond)
		if c.failed {
			break // reported with the step and the operation before it
		}
		switch r := k.rng.IntN(10); {
		case r < 4:
			k.membershipOp()
		case r < 5:
			k.op = "transfer"
			if l := k.leader(); l != nil {
				var err error
				s.Inject(l.id, func(sim.Env) { err = l.rn.TransferLeadership(""); l.process() })
				if err == nil {
					k.stats.Transfers++
				}
			}
		case r < 6:
			k.op = "reads"
			k.issueReads()
		default:
			k.faultOp()
		}
	}
	if !c.failed {
		k.op = "faults stopped"
	}
	k.heal()
	s.SetFaults(sim.Faults{MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond})
	// Leave a joint configuration entered with ExplicitLeave (once the
	// cluster has settled: right after the heal a stale leader may still
	// believe in another configuration).
	for try := 0; try < 100 && !c.failed; try++ {
		s.Run(100 * time.Millisecond)
		l := k.leader()
		if l == nil {
			continue
		}
		if m := l.rn.r.conf; !m.Joint() {
			break
		} else if !m.AutoLeave {
			k.propose(ConfChange{LeaveJoint: true})
		}
	}
	// Liveness: a leader of the final configuration commits again.
	before := make([]int, len(c.clients))
	for i, cl := range c.clients {
		before[i] = cl.done
	}
	ok := s.RunUntil(func() bool {
		if c.failed {
			return true
		}
		for i, cl := range c.clients {
			if cl.done <= before[i] {
				return false
			}
		}
		return true
	}, 10*time.Second)
	if !ok && !c.failed {
		c.fail("seed %d: liveness: clients made no progress within 10s after the faults stopped (leader %v, membership %+v)", k.seed, k.leader() != nil, k.members())
	}
	for _, cl := range c.clients {
		cl.stopped = true
	}
	s.Run(3 * time.Second)
	if err := s.Err(); err != nil {
		k.t.Errorf("sim: %v", err)
	}
	if !c.failed {
		k.checkConverged()
		c.checkLinearizable(k.seed)
	}
	if c.failed {
		k.t.Errorf("seed %d: failed at churn step %d, after operation %q (replay: DISTKIT_SEED=%d)", k.seed, k.step, k.op, k.seed)
	}
}

// checkConverged checks that every member of the final configuration
// applied what the leader applied and agrees on the configuration.
func (k *churn) checkConverged() {
	l := k.leader()
	if l == nil {
		k.c.fail("seed %d: no leader after the run", k.seed)
		return
	}
	final := l.rn.r.conf
	if final.Joint() {
		k.c.fail("seed %d: still in a joint configuration %+v after the run", k.seed, final)
	}
	for _, id := range final.Nodes() {
		s := k.c.server(id)
		if s == nil {
			k.c.fail("seed %d: member %s is down after the run", k.seed, id)
			continue
		}
		if s.lastApplied != l.lastApplied {
			k.c.fail("seed %d: %s applied up to %d; leader %s applied up to %d", k.seed, id, s.lastApplied, l.id, l.lastApplied)
		}
		if !s.rn.r.conf.Equal(final) {
			k.c.fail("seed %d: %s has membership %+v; leader has %+v", k.seed, id, s.rn.r.conf, final)
		}
	}
}

// churnSteps is the number of random steps of one churn run.
const churnSteps = 40

func TestSimMembershipChurn(t *testing.T) {
	var total churnStats
	sim.Seeds(t, seedsFor(60), func(t *testing.T, seed int64) {
		k := newChurn(t, seed, chaosFaults, nil)
		k.run(churnSteps)
		total.Changes += k.stats.Changes
		total.Joint += k.stats.Joint
		total.LeaderRemovals += k.stats.LeaderRemovals
		total.Transfers += k.stats.Transfers
		total.ReadsIssued += k.stats.ReadsIssued
		total.ReadsAnswered += k.stats.ReadsAnswered
	})
	t.Logf("churn exercised %+v", total)
	if !testing.Short() && os.Getenv(sim.EnvSeed) == "" && (total.Changes < 100 || total.Joint < 10 || total.LeaderRemovals == 0 || total.Transfers < 10 || total.ReadsAnswered < 50) {
		t.Errorf("churn exercised %+v; want many changes, joint ones, leader removals, transfers and answered reads", total)
	}
}

// TestSimMembershipChurnLease runs the churn with lease reads (thesis
// §6.4.1): answered without a round while the lease holds, every read must
// still cover what was committed before it started. The ticks of the
// simulation drift by up to 10% each way, so two ticks of drift per
// election timeout are allowed, plus one for rounding.
func TestSimMembershipChurnLease(t *testing.T) {
	lease := func(cfg *Config) { cfg.LeaseReads, cfg.LeaseDriftTicks = true, 3 }
	var answered int
	sim.Seeds(t, seedsFor(30), func(t *testing.T, seed int64) {
		k := newChurn(t, seed, chaosFaults, lease)
		k.run(churnSteps)
		answered += k.stats.ReadsAnswered
	})
	if !testing.Short() && os.Getenv(sim.EnvSeed) == "" && answered < 30 {
		t.Errorf("%d lease reads answered; want many", answered)
	}
}

// scenarioStep is one membership change a scenario wants: cc is proposed
// (when ready says so) until the leader's committed configuration
// satisfies done (an accepted change may still be lost to a leader change).
type scenarioStep struct {
	name  string
	cc    ConfChange
	ready func(k *churn) bool
	done  func(m Membership) bool
}

// runScenario performs steps in order under faults: each is proposed until
// accepted, and the next waits until the previous one is in force
// everywhere (the configuration of every voter says so).
func runScenario(t *testing.T, seed int64, steps []scenarioStep) {
	lossy := sim.Faults{Drop: 0.03, Duplicate: 0.02, MinDelay: time.Millisecond, MaxDelay: 8 * time.Millisecond, Reorder: 0.05}
	k := newChurn(t, seed, lossy, nil)
	c, s := k.c, k.c.s
	for i, st := range steps {
		k.step, k.op = i, st.name
		done := false
		for try := 0; try < 200 && !done && !c.failed; try++ {
			s.Run(time.Duration(50+k.rng.IntN(100)) * time.Millisecond)
			switch k.rng.IntN(12) {
			case 0:
				id := c.ids[k.rng.IntN(len(c.ids))]
				s.Crash(id)
				s.At(time.Duration(100+k.rng.IntN(300))*time.Millisecond, func() { s.Restart(id) })
			case 1:
				if l := k.leader(); l != nil {
					s.Isolate(l.id)
					s.At(time.Duration(100+k.rng.IntN(300))*time.Millisecond, s.Heal)
				}
			case 2:
				k.issueReads()
			}
			l := k.leader()
			if l == nil || l.rn.r.conf.Joint() || l.rn.r.confIndex() > l.rn.r.log.committed {
				continue
			}
			if st.done(l.rn.r.conf) {
				done = true
				break
			}
			if st.ready == nil || st.ready(k) {
				k.propose(st.cc)
			}
		}
		if !done && !c.failed {
			c.fail("seed %d: scenario step %d (%s) never accepted", seed, i, st.name)
		}
	}
	k.op = "scenario done"
	k.run(0)
}

// addAndPromote is the safe way to grow: add a learner, promote it once it
// has caught up.
func addAndPromote(id transport.NodeID) []scenarioStep {
	return []scenarioStep{
		{
			name: "add learner " + string(id),
			cc:   ConfChange{Changes: []ConfChangeOp{{ConfAddLearner, id}}},
			done: func(m Membership) bool { return m.Contains(id) },
		},
		{
			name:  "promote " + string(id),
			cc:    ConfChange{Changes: []ConfChangeOp{{ConfPromote, id}}},
			ready: func(k *churn) bool { return k.caughtUp() == id },
			done:  func(m Membership) bool { return slices.Contains(m.Voters, id) },
		},
	}
}

func remove(id transport.NodeID) scenarioStep {
	return scenarioStep{
		name: "remove " + string(id),
		cc:   ConfChange{Changes: []ConfChangeOp{{ConfRemove, id}}},
		done: func(m Membership) bool { return !m.Contains(id) },
	}
}

// TestSimReplaceEveryMember replaces n1, n2, n3 one by one with n4, n5, n6
// (add as learner, promote, remove the old one), under faults.
func TestSimReplaceEveryMember(t *testing.T) {
	var steps []scenarioStep
	for i, old := range []transport.NodeID{"n1", "n2", "n3"} {
		steps = append(steps, addAndPromote(transport.NodeID(fmt.Sprintf("n%d", i+4)))...)
		steps = append(steps, remove(old))
	}
	sim.Seeds(t, seedsFor(20), func(t *testing.T, seed int64) { runScenario(t, seed, steps) })
}

// TestSimGrowShrink grows the cluster from 3 to 5 voters and back, once one
// server at a time and once in a single joint change each way.
func TestSimGrowShrink(t *testing.T) {
	var steps []scenarioStep
	steps = append(steps, addAndPromote("n4")...)
	steps = append(steps, addAndPromote("n5")...)
	steps = append(steps, remove("n1"), remove("n4"))
	steps = append(steps,
		scenarioStep{
			name: "grow to 5 (joint)",
			cc:   ConfChange{Changes: []ConfChangeOp{{ConfAddVoter, "n6"}, {ConfAddVoter, "n7"}}},
			done: func(m Membership) bool { return len(m.Voters) == 5 && m.IsVoter("n6") && m.IsVoter("n7") },
		},
		scenarioStep{
			name: "shrink to 3 (joint)",
			cc:   ConfChange{Changes: []ConfChangeOp{{ConfRemove, "n2"}, {ConfRemove, "n6"}}},
			done: func(m Membership) bool { return len(m.Voters) == 3 && !m.Contains("n2") && !m.Contains("n6") },
		},
	)
	sim.Seeds(t, seedsFor(20), func(t *testing.T, seed int64) { runScenario(t, seed, steps) })
}
