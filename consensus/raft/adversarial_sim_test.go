package raft

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
)

// Adversarial schedules: instead of more random seeds, the simulation
// drives the cluster into the corners where Raft's rules matter (a term
// interleaving of Figure 8, a voter that crashes right after voting, a
// leader cut off while the others move on) and lets the same checker as
// the chaos runs (sim_cluster_test.go) judge. Each scenario picks its cast
// (which node lags, which votes, which leads) from the seed, so the seeds
// vary the schedule, not only the noise. The rules they hold are recorded
// as mutations in internal/mutate/testdata/raft-rules.mut.

// adversarialBudget bounds the events of one scenario: a broken rule that
// livelocks the cluster fails with the seed and the step, fast.
const adversarialBudget = 2_000_000

// newAdversarialCluster is newSimCluster with messages that outlive their
// sender's crash (a vote already on the wire still arrives), an event
// budget, a quiet network (1-3 ms, no loss: the schedule is the adversary)
// and a checker of §5.2's one vote per term.
func newAdversarialCluster(t *testing.T, seed int64, nodes, clients int, tweak func(*Config)) *simCluster {
	t.Helper()
	s, err := sim.New(sim.Config{Seed: seed, TornWrites: true, DeliverAfterSenderCrash: true, MaxEvents: adversarialBudget,
		Faults: sim.Faults{MinDelay: time.Millisecond, MaxDelay: 3 * time.Millisecond}})
	if err != nil {
		t.Fatalf("sim.New: %v", err)
	}
	c := &simCluster{t: t, s: s, tweak: tweak, leaders: map[uint64]transport.NodeID{}, committed: map[uint64]Entry{}}
	for i := range nodes {
		c.ids = append(c.ids, transport.NodeID(fmt.Sprintf("n%d", i+1)))
	}
	for _, id := range c.ids {
		if err := s.AddNode(id, func() sim.Node { return &kvServer{c: c, id: id} }); err != nil {
			t.Fatalf("AddNode: %v", err)
		}
	}
	for i := range clients {
		k := &kvClient{c: c, index: i, id: transport.NodeID(fmt.Sprintf("client%d", i)), target: i % nodes}
		c.clients = append(c.clients, k)
		if err := s.AddNode(k.id, func() sim.Node { return k }); err != nil {
			t.Fatalf("AddNode: %v", err)
		}
	}
	votes := map[voteKey]transport.NodeID{}
	c.onSend = func(srv *kvServer, m Message) {
		if m.Type != MsgVoteResp || m.Reject {
			return
		}
		// §5.2: "each server will vote for at most one candidate in a
		// given term", across crashes too.
		k := voteKey{srv.id, m.Term}
		if prev, ok := votes[k]; ok && prev != m.To {
			c.fail("%s voted for %s and then for %s in term %d (one vote per term, §5.2)", srv.id, prev, m.To, m.Term)
		}
		votes[k] = m.To
	}
	t.Cleanup(func() {
		if err := s.Err(); err != nil {
			t.Errorf("sim: %v", err)
		}
	})
	return c
}

type voteKey struct {
	voter transport.NodeID
	term  uint64
}

// cast returns the cluster's IDs in a seeded order, so each seed gives the
// scenario's roles to different nodes.
func cast(c *simCluster, seed int64) []transport.NodeID {
	ids := slices.Clone(c.ids)
	rng := rand.New(rand.NewPCG(uint64(seed), 0xad5e))
	rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	return ids
}

// runUntil runs until cond holds or limit passes, failing the scenario
// with what it was waiting for otherwise.
func runUntil(c *simCluster, what string, limit time.Duration, cond func() bool) bool {
	c.t.Helper()
	if c.failed {
		return false
	}
	if !c.s.RunUntil(func() bool { return c.failed || cond() }, limit) {
		c.fail("seed %d, step %d: scenario stalled: %s not reached within %v", c.s.Seed(), c.s.Stats().Events, what, limit)
		return false
	}
	return !c.failed
}

// leaderAmong returns the live leader among ids, if any.
func (c *simCluster) leaderAmong(ids ...transport.NodeID) *kvServer {
	for _, id := range ids {
		if s := c.server(id); s != nil && s.rn.r.role == Leader {
			return s
		}
	}
	return nil
}

// propose proposes data on node id as if a client had asked it.
func (c *simCluster) propose(id transport.NodeID, data string) {
	c.s.Inject(id, func(sim.Env) {
		if s := c.server(id); s != nil {
			cmd := kvCommand{Op: 'p', Client: 99, Seq: uint64(len(c.committed) + 1), Key: "k", Value: data}
			_, _, _ = s.rn.Propose(cmd.encode())
			s.process()
		}
	})
}

// settle heals everything, restarts every crashed node and checks that
// the cluster ends with exactly one leader that every live node follows in
// its term, and that every node applied the same entries.
func (c *simCluster) settle(limit time.Duration) {
	c.t.Helper()
	c.s.Heal()
	for _, id := range c.ids {
		if c.s.Node(id) == nil {
			c.s.Restart(id)
		}
	}
	oneLeader := func() bool {
		l := c.leader()
		if l == nil {
			return false
		}
		for _, id := range c.ids {
			s := c.server(id)
			if s == nil || s.rn.r.term != l.rn.r.term || (s != l && s.rn.r.role == Leader) || s.lastApplied != l.lastApplied {
				return false
			}
		}
		return true
	}
	if !c.failed && !c.s.RunUntil(func() bool { return c.failed || oneLeader() }, limit) {
		var state []string
		for _, id := range c.ids {
			if s := c.server(id); s != nil {
				state = append(state, fmt.Sprintf("%s %v term %d applied %d", id, s.rn.r.role, s.rn.r.term, s.lastApplied))
			}
		}
		c.fail("seed %d, step %d: liveness: %v after healing, the nodes do not agree on one leader of one term: %v",
			c.s.Seed(), c.s.Stats().Events, limit, state)
	}
}

// TestAdversarialFigure8 plays Figure 8 of the Raft paper in the
// simulation, with roles drawn from the seed. Five nodes; MsgApp carries
// one entry (MaxMsgBytes 1), so an old entry and the new leader's no-op
// travel separately:
//
//  1. leader L1 gets entry X while partitioned with one follower A: X is
//     on two nodes, not committed;
//  2. the majority elects L2, which is isolated and crashed at once: its
//     no-op (a later term than X) is on L2 alone;
//  3. L1, A and B form a majority; L1 or A (L3) wins a later term and
//     sends X to B, then its no-op: X is on a majority before the no-op is;
//  4. the moment B holds X, the network splits L3 off with A, and L2
//     restarts among B and the rest: L2's log (last term above X's) wins
//     their votes and overwrites X at its index.
//
// A leader that counts replicas of an old entry (§5.4.2) commits X in step
// 3, and the checker sees step 4 replace a committed entry. Under the rule
// X was never committed, and losing it is correct.
func TestAdversarialFigure8(t *testing.T) {
	sim.Seeds(t, 6, func(t *testing.T, seed int64) {
		tweak := func(cfg *Config) { cfg.MaxMsgBytes, cfg.MaxInflightMsgs = 1, 1 }
		c := newAdversarialCluster(t, seed, 5, 0, tweak)
		s := c.s
		if !runUntil(c, "a first leader", 2*time.Second, func() bool { return c.leader() != nil }) {
			return
		}
		l1 := c.leader().id
		for i := range 3 {
			c.propose(l1, fmt.Sprint("before-", i))
		}
		s.Run(200 * time.Millisecond)
		rest := slices.DeleteFunc(cast(c, seed), func(id transport.NodeID) bool { return id == l1 })
		a, b := rest[0], rest[1]
		others := rest[1:] // b and the two that will follow L2

		// 1. X reaches A only.
		s.Partition([]transport.NodeID{l1, a}, others)
		c.propose(l1, "X")
		s.Run(50 * time.Millisecond)
		x := c.server(l1).rn.r.log.lastIndex()

		// 2. The majority elects L2; isolate and crash it the instant it
		// wins, so its no-op stays on its own disk.
		if !runUntil(c, "a leader of the majority", 3*time.Second, func() bool { return c.leaderAmong(others...) != nil }) {
			return
		}
		l2 := c.leaderAmong(others...).id
		s.Isolate(l2)
		s.Crash(l2)
		if t2 := c.committedTermAt(x); t2 != 0 {
			t.Fatalf("index %d committed (term %d) before the scenario's point", x, t2)
		}
		followers := slices.DeleteFunc(slices.Clone(others), func(id transport.NodeID) bool { return id == l2 })
		if !slices.Contains(followers, b) {
			b = followers[0]
		}
		cd := slices.DeleteFunc(slices.Clone(followers), func(id transport.NodeID) bool { return id == b })

		// 3. L1, A and B form a majority; its leader L3 sends X to B.
		s.Heal()
		s.Partition([]transport.NodeID{l1, a, b}, cd)
		if !runUntil(c, "a leader holding X with X on B", 3*time.Second, func() bool {
			l3 := c.leaderAmong(l1, a)
			return l3 != nil && l3.rn.r.prs[b] != nil && l3.rn.r.prs[b].match >= x
		}) {
			return
		}
		l3 := c.leaderAmong(l1, a).id

		// 4. Split L3 off (its no-op to B is lost in flight) and bring L2
		// back among B and the rest.
		s.Partition([]transport.NodeID{l1, a}, append([]transport.NodeID{l2, b}, cd...))
		s.Restart(l2)
		if !runUntil(c, "a leader of the new majority", 3*time.Second, func() bool {
			return c.leaderAmong(append([]transport.NodeID{l2, b}, cd...)...) != nil
		}) {
			return
		}
		s.Run(300 * time.Millisecond)
		t.Logf("seed %d: L1 %s, A %s, L2 %s, B %s, L3 %s; X at %d", seed, l1, a, l2, b, l3, x)
		c.settle(3 * time.Second)
	})
}

// committedTermAt returns the term of the entry the checker knows committed
// at index i, or 0.
func (c *simCluster) committedTermAt(i uint64) uint64 { return c.committed[i].Term }

// TestAdversarialVoterCrashes is a split vote in one term with a voter that
// crashes right after voting. Five nodes in classic mode (no pre-vote, no
// check-quorum, long election timeouts so only the schedule campaigns):
//
//  1. a leader commits entries while node A is cut off, so A lags;
//  2. the leader crashes; A and B campaign at the same instant, in term
//     T; the links to voter D deliver A's request first, then B's;
//  3. D adopts T refusing A (its log is behind), then grants B: a vote
//     without a term change. The simulation crashes D the moment its vote
//     is sent (the vote still arrives) and restarts it from its disk;
//  4. C, cut off from A and B so still in the term before, campaigns into
//     T and its request reaches the restarted D. A D that persisted its vote before sending it
//     refuses; one that did not (MustSync only on term changes) grants it,
//     and the checker sees two votes by D in term T.
func TestAdversarialVoterCrashes(t *testing.T) {
	sim.Seeds(t, 4, func(t *testing.T, seed int64) {
		classic := func(cfg *Config) { cfg.PreVote, cfg.CheckQuorum, cfg.ElectionTicks = false, false, 100 }
		c := newAdversarialCluster(t, seed, 5, 1, classic)
		s := c.s
		// Long election timeouts: the first election takes up to 2 s.
		if !runUntil(c, "a first leader", 5*time.Second, func() bool { return c.leader() != nil }) {
			return
		}
		l := c.leader().id
		roles := slices.DeleteFunc(cast(c, seed), func(id transport.NodeID) bool { return id == l })
		a, b, cc, d := roles[0], roles[1], roles[2], roles[3]

		// 1. A lags.
		s.Isolate(a)
		commit := c.server(l).rn.r.log.committed
		if !runUntil(c, "entries committed without A", 2*time.Second, func() bool {
			return c.server(l) != nil && c.server(l).rn.r.log.committed > commit+2
		}) {
			return
		}
		for _, k := range c.clients {
			k.stopped = true
		}
		s.Run(100 * time.Millisecond)

		// 2. The leader crashes; three candidates in one term. C does not
		// hear A and B, so it is still in the term before and campaigns
		// into T later, when D is back (a crash loses what is in flight to
		// the node, so C's request must leave after D restarted).
		s.Crash(l)
		s.Heal()
		fixed := func(d time.Duration) sim.Faults { return sim.Faults{MinDelay: d, MaxDelay: d} }
		s.SetLinkFaults(a, d, fixed(time.Millisecond))
		s.SetLinkFaults(b, d, fixed(3*time.Millisecond))
		s.Cut(a, cc)
		s.Cut(b, cc)
		crashed := false
		prev := c.onSend
		c.onSend = func(srv *kvServer, m Message) {
			prev(srv, m)
			// 3. D's vote is on the wire: crash D now, restart it soon.
			if !crashed && srv.id == d && m.Type == MsgVoteResp && !m.Reject && m.To == b {
				crashed = true
				s.At(0, func() { s.Crash(d) })
				s.At(5*time.Millisecond, func() { s.Restart(d) })
			}
		}
		campaign := func(id transport.NodeID) {
			s.Inject(id, func(sim.Env) {
				srv := c.server(id)
				srv.rn.r.campaign(false, false)
				srv.process()
			})
		}
		campaign(a)
		campaign(b)
		term := c.server(a).rn.r.term
		if c.server(b).rn.r.term != term {
			t.Fatalf("candidates A and B are in terms %d and %d; the scenario needs one", term, c.server(b).rn.r.term)
		}
		s.At(20*time.Millisecond, func() {
			campaign(cc)
			if got := c.server(cc).rn.r.term; got != term {
				c.fail("candidate C campaigns in term %d; the scenario needs %d", got, term)
			}
		})
		// 4. C's request reaches the restarted D.
		s.Run(100 * time.Millisecond)
		if !crashed && !c.failed {
			t.Fatalf("seed %d: voter %s never granted %s a vote; the scenario did not happen", seed, d, b)
		}
		for _, id := range []transport.NodeID{a, b} {
			s.ResetLinkFaults(id, d)
		}
		c.settle(5 * time.Second)
	})
}

// TestAdversarialStaleLeaderStepsDown cuts a leader off (classic mode: no
// check-quorum, so it keeps believing it leads) until the others elect a
// new leader in a higher term, then heals. The old leader hears the higher
// term at once, from the new leader's heartbeats and from the answers to
// its own; it must step down (§5.1), so within a bound the cluster has one
// leader in one term. A leader that ignores higher terms fails the bound
// with the seed, rather than hanging the run.
func TestAdversarialStaleLeaderStepsDown(t *testing.T) {
	sim.Seeds(t, 4, func(t *testing.T, seed int64) {
		classic := func(cfg *Config) { cfg.PreVote, cfg.CheckQuorum = false, false }
		c := newAdversarialCluster(t, seed, 3+2*int(seed%2), 1, classic)
		s := c.s
		if !runUntil(c, "a first leader", 2*time.Second, func() bool { return c.leader() != nil }) {
			return
		}
		old := c.leader()
		oldTerm := old.rn.r.term
		s.Isolate(old.id)
		rest := slices.DeleteFunc(slices.Clone(c.ids), func(id transport.NodeID) bool { return id == old.id })
		if !runUntil(c, "a new leader while the old one is cut off", 3*time.Second, func() bool {
			l := c.leaderAmong(rest...)
			return l != nil && l.rn.r.term > oldTerm
		}) {
			return
		}
		if c.server(old.id).rn.r.role != Leader {
			t.Fatalf("the cut-off leader stepped down on its own; the scenario needs it to believe it leads")
		}
		rng := rand.New(rand.NewPCG(uint64(seed), 1))
		s.Run(time.Duration(rng.IntN(200)) * time.Millisecond)
		c.settle(time.Second)
	})
}
