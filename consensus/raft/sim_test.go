package raft

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
)

// chaosFaults is the network during the chaos phase: lossy, duplicating
// and reordering.
var chaosFaults = sim.Faults{
	Drop:      0.05,
	Duplicate: 0.03,
	MinDelay:  time.Millisecond,
	MaxDelay:  8 * time.Millisecond,
	Reorder:   0.05,
}

const (
	chaosDuration = 3 * time.Second
	// livenessBound is how long after the faults stop every client must
	// have completed an operation (so a leader was elected and commits).
	livenessBound = 3 * time.Second
)

// runChaos runs one seed: clients issue gets and puts while the network
// partitions, loses, duplicates and reorders messages and nodes crash and
// restart (losing unsynced writes, with torn tails). The checker verifies
// the safety properties after every event; at the end the faults stop,
// liveness is checked, and the client history must be linearizable.
func runChaos(t *testing.T, seed int64, nodes int) *simCluster {
	return runChaosWith(t, seed, nodes, nil, false)
}

// runChaosWith is runChaos with every node's Config adjusted by tweak, and
// with asynchronous fsyncs if asyncPersist is set.
func runChaosWith(t *testing.T, seed int64, nodes int, tweak func(*Config), asyncPersist bool) *simCluster {
	c := newSimCluster(t, seed, nodes, 3, chaosFaults, tweak, asyncPersist)
	s := c.s
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	crashed := map[transport.NodeID]bool{}
	var lossyLinks [][2]transport.NodeID
	healLinks := func() {
		for _, l := range lossyLinks {
			s.ResetLinkFaults(l[0], l[1])
		}
		lossyLinks = nil
	}
	for s.Elapsed() < chaosDuration && !c.failed {
		s.Run(time.Duration(100+rng.IntN(300)) * time.Millisecond)
		id := c.ids[rng.IntN(len(c.ids))]
		switch rng.IntN(9) {
		case 0: // split the cluster in two random groups
			var a, b []transport.NodeID
			for _, n := range c.ids {
				if rng.IntN(2) == 0 {
					a = append(a, n)
				} else {
					b = append(b, n)
				}
			}
			s.Partition(a, b)
		case 1: // cut the leader off
			if l := c.leader(); l != nil {
				s.Isolate(l.id)
			}
		case 2: // crash a random node
			s.Crash(id)
			crashed[id] = true
		case 3: // crash the leader
			if l := c.leader(); l != nil {
				s.Crash(l.id)
				crashed[l.id] = true
			}
		case 4: // a one-way link failure
			s.Cut(id, c.ids[rng.IntN(len(c.ids))])
		case 5: // one very lossy, slow link
			lossy := chaosFaults
			lossy.Drop, lossy.MaxDelay = 0.5, 40*time.Millisecond
			to := c.ids[rng.IntN(len(c.ids))]
			s.SetLinkFaults(id, to, lossy)
			lossyLinks = append(lossyLinks, [2]transport.NodeID{id, to})
		default: // back to health for a while (the network stays lossy)
			healLinks()
			s.Heal()
			for _, n := range c.ids {
				if crashed[n] {
					s.Restart(n)
				}
			}
			clear(crashed)
		}
	}
	// The faults stop.
	healLinks()
	s.Heal()
	s.SetFaults(sim.Faults{MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond})
	for _, n := range c.ids {
		if crashed[n] {
			s.Restart(n)
		}
	}
	before := make([]int, len(c.clients))
	for i, k := range c.clients {
		before[i] = k.done
	}
	progressed := s.RunUntil(func() bool {
		for i, k := range c.clients {
			if k.done <= before[i] {
				return c.failed
			}
		}
		return true
	}, livenessBound)
	if !progressed && !c.failed {
		c.fail("liveness: clients made no progress within %v after the faults stopped (leader: %v)", livenessBound, c.leader() != nil)
	}
	for _, k := range c.clients {
		k.stopped = true
	}
	// With no new proposals, a follower that restarts (or was behind)
	// must still catch up: from the log, or by snapshot.
	s.Run(100 * time.Millisecond)
	victim := c.ids[rng.IntN(len(c.ids))]
	s.Crash(victim)
	s.Run(time.Duration(rng.IntN(300)) * time.Millisecond)
	s.Restart(victim)
	s.Run(2 * time.Second)
	if err := s.Err(); err != nil {
		t.Errorf("sim: %v", err)
	}
	if !c.failed {
		c.checkConverged()
		c.checkLinearizable(seed)
	}
	return c
}

// checkConverged checks that, once quiet, every node applied the same
// entries as the leader.
func (c *simCluster) checkConverged() {
	l := c.leader()
	if l == nil {
		c.fail("no leader after the run")
		return
	}
	for _, id := range c.ids {
		s := c.server(id)
		if s == nil {
			continue
		}
		if s.lastApplied != l.lastApplied {
			c.fail("%s applied up to %d; leader %s applied up to %d", id, s.lastApplied, l.id, l.lastApplied)
		}
	}
}

func seedsFor(n int) int {
	if testing.Short() {
		return n / 10
	}
	return n
}

func TestSimChaos3(t *testing.T) {
	sim.Seeds(t, seedsFor(60), func(t *testing.T, seed int64) { runChaos(t, seed, 3) })
}

func TestSimChaos5(t *testing.T) {
	sim.Seeds(t, seedsFor(30), func(t *testing.T, seed int64) { runChaos(t, seed, 5) })
}

// TestSimChaosAsyncPersist gives every fsync a duration during which the
// node keeps stepping, and lets leaders send appends before their own
// entries are durable (thesis §10.2.1); crashes then lose a leader's
// unsynced entries that followers already hold.
func TestSimChaosAsyncPersist(t *testing.T) {
	sim.Seeds(t, seedsFor(60), func(t *testing.T, seed int64) { runChaosWith(t, seed, 3, nil, true) })
}

// TestSimChaosClassic runs the chaos without pre-vote and check-quorum
// (plain Raft as in the paper): disruptions are allowed, safety is not.
func TestSimChaosClassic(t *testing.T) {
	classic := func(cfg *Config) { cfg.PreVote, cfg.CheckQuorum = false, false }
	sim.Seeds(t, seedsFor(40), func(t *testing.T, seed int64) { runChaosWith(t, seed, 3, classic, false) })
}

// TestSimChaosMixed runs a cluster whose nodes disagree on pre-vote and
// check-quorum, as during a rolling configuration change.
func TestSimChaosMixed(t *testing.T) {
	mixed := func(cfg *Config) {
		if cfg.ID == "n1" {
			cfg.PreVote, cfg.CheckQuorum = false, false
		}
	}
	sim.Seeds(t, seedsFor(40), func(t *testing.T, seed int64) { runChaosWith(t, seed, 3, mixed, false) })
}

// TestSimDeterministic checks that a seed replays exactly: the same seed
// gives the same trace, so any failure printed by the chaos tests can be
// replayed and debugged.
func TestSimDeterministic(t *testing.T) {
	for seed := int64(1); seed <= 5; seed++ {
		a := runChaos(t, seed, 5)
		b := runChaos(t, seed, 5)
		if a.s.TraceHash() != b.s.TraceHash() {
			t.Errorf("seed %d ran twice: trace hashes %x and %x; want equal", seed, a.s.TraceHash(), b.s.TraceHash())
		}
	}
}

// TestSimCoverage checks that the chaos runs exercise what they claim to:
// re-elections, crash-restarts, compaction and chunked snapshot transfers.
func TestSimCoverage(t *testing.T) {
	var total simCoverage
	for seed := int64(1); seed <= 20; seed++ {
		c := runChaos(t, seed, 3)
		cv := c.coverage
		cv.Terms, cv.Ops = len(c.leaders), len(c.history)
		total.Terms += cv.Terms
		total.SnapshotChunks += cv.SnapshotChunks
		total.SnapshotsInstalled += cv.SnapshotsInstalled
		total.Compactions += cv.Compactions
		total.Restarts += cv.Restarts
		total.Ops += cv.Ops
	}
	t.Logf("20 seeds exercised %+v", total)
	if total.Terms < 40 || total.Restarts < 20 || total.Compactions == 0 || total.SnapshotsInstalled == 0 || total.SnapshotChunks <= total.SnapshotsInstalled || total.Ops < 500 {
		t.Errorf("20 chaos seeds exercised %+v; want re-elections, restarts, compactions and multi-chunk snapshot installs", total)
	}
}
