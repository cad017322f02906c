package detector_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/distkit/distkit/detector"
	"github.com/distkit/distkit/detector/detectorsim"
	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
)

// observed is an event and the node that reported it.
type observed struct {
	by transport.NodeID
	detector.Event
}

type recorder struct {
	events []observed
	errs   []error
}

// cluster is a simulated cluster of n nodes named n1..nN.
type cluster struct {
	s   *sim.Sim
	ids []transport.NodeID
	rec *recorder
}

// Every simulation has an event budget (simBudget): a broken rule that makes
// the cores busy-loop (a check re-armed for the same instant, a message
// storm) fails the test with the seed and the step instead of hanging it,
// and the cluster fails the test at cleanup if the simulation recorded any
// error.
func newCluster(t testing.TB, seed int64, n int, cfg detector.Config, faults sim.Faults) *cluster {
	t.Helper()
	s, err := sim.New(sim.Config{Seed: seed, Faults: faults, MaxEvents: simBudget})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Err(); err != nil {
			t.Errorf("simulation: %v", err)
		}
	})
	c := &cluster{s: s, rec: &recorder{}}
	for i := range n {
		c.ids = append(c.ids, transport.NodeID(fmt.Sprintf("n%d", i+1)))
	}
	for _, id := range c.ids {
		err := s.AddNode(id, func() sim.Node {
			n := detectorsim.New(cfg, c.ids)
			n.OnEvent = func(by transport.NodeID, e detector.Event) { c.rec.events = append(c.rec.events, observed{by, e}) }
			n.OnReceiveError = func(err error) { c.rec.errs = append(c.rec.errs, err) }
			return n
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// core returns the running core of id, or nil while it is crashed.
func (c *cluster) core(id transport.NodeID) *detector.Membership {
	if n, ok := c.s.Node(id).(*detectorsim.Node); ok {
		return n.Core()
	}
	return nil
}

// statusOf returns what observer thinks of member.
func (c *cluster) statusOf(observer, member transport.NodeID) detector.Status {
	st, err := c.core(observer).Member(member, c.s.Now())
	if err != nil {
		return 0
	}
	return st.Status
}

// allAlive reports whether every running node sees every running node Alive.
func (c *cluster) allAlive() bool {
	for _, a := range c.ids {
		if c.core(a) == nil {
			continue
		}
		for _, b := range c.ids {
			if a != b && c.core(b) != nil && c.statusOf(a, b) != detector.Alive {
				return false
			}
		}
	}
	return true
}

// simBudget bounds the events of one simulated cluster: the longest run
// (TestSimNoFalseFailures under DISTKIT_SOAK=1, 8 nodes for 10,000 s) takes
// about 1.5 million events, so a budget of twice that only stops a runaway.
const simBudget = 3_000_000

// lossyNet is the network of the scenario: 1 % loss, 1-10 ms latency.
var lossyNet = sim.Faults{Drop: 0.01, MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond}

// scenarioConfig is the scenario: 1 s heartbeats with ±20 % jitter.
func scenarioConfig() detector.Config {
	cfg := detector.DefaultConfig()
	cfg.Jitter = 0.2
	return cfg
}

// TestSimNoFalseFailures runs 8 nodes over a lossy network with no crash:
// at threshold 8 with indirect probes, no node may ever be declared Failed.
//
// The default run covers 1,000 simulated seconds (about 450 suspicions,
// each of which must be refuted, so the probe and refutation paths are
// exercised hundreds of times); DISTKIT_SOAK=1 runs the full 10,000
// seconds (about 4,600 suspicions) over many seeds.
func TestSimNoFalseFailures(t *testing.T) {
	length := 1_000 * time.Second
	if os.Getenv(sim.EnvSoak) == "1" {
		length = 10_000 * time.Second
	}
	sim.Seeds(t, 1, func(t *testing.T, seed int64) {
		c := newCluster(t, seed, 8, scenarioConfig(), lossyNet)
		start := c.s.Now()
		c.s.Run(length)
		suspicions := 0
		for _, e := range c.rec.events {
			switch e.Kind {
			case detector.EventFailed:
				t.Errorf("%s declared %v at %v with no crash", e.by, e.Event, e.At.Sub(start))
			case detector.EventSuspect:
				suspicions++
			}
		}
		if len(c.rec.errs) > 0 {
			t.Errorf("receive errors: %v", c.rec.errs)
		}
		// A lost heartbeat may leave someone Suspect at this very instant;
		// it must clear within a few seconds.
		if !c.s.RunUntil(c.allAlive, 5*time.Second) {
			t.Errorf("not every node sees every other Alive at the end")
		}
		if suspicions < 100 {
			t.Errorf("only %d suspicions in %v: the run exercises too little of the refutation path", suspicions, length)
		}
		t.Logf("seed %d: %d suspicions, all refuted; sim stats %+v", seed, suspicions, c.s.Stats())
	})
}

// TestSimCrashDetected crashes one node after the detectors have warmed up:
// every live node must declare it Failed within 10 simulated seconds. Then
// the node restarts with a new incarnation and every node reports it
// Recovered.
func TestSimCrashDetected(t *testing.T) {
	sim.Seeds(t, 3, func(t *testing.T, seed int64) {
		c := newCluster(t, seed, 8, scenarioConfig(), lossyNet)
		c.s.Run(300 * time.Second)
		victim := c.ids[int(seed)%len(c.ids)]
		oldInc := c.core(victim).Incarnation()
		crashAt := c.s.Now()
		c.s.Crash(victim)
		c.rec.events = nil
		c.s.Run(10 * time.Second)
		failed := map[transport.NodeID]time.Duration{}
		for _, e := range c.rec.events {
			if e.Member == victim && e.Kind == detector.EventFailed {
				failed[e.by] = e.At.Sub(crashAt)
			}
			if e.Member != victim && e.Kind == detector.EventFailed {
				t.Errorf("%s falsely declared %v", e.by, e.Event)
			}
		}
		for _, id := range c.ids {
			if _, ok := failed[id]; id != victim && !ok {
				t.Errorf("%s did not declare %s Failed within 10 s of its crash", id, victim)
			}
		}
		t.Logf("detection latencies: %v", failed)

		c.rec.events = nil
		c.s.Restart(victim)
		if !c.s.RunUntil(c.allAlive, 10*time.Second) {
			t.Fatalf("10 s after %s restarted, not every node sees every other Alive", victim)
		}
		recovered := 0
		for _, e := range c.rec.events {
			if e.Member == victim && e.Kind == detector.EventRecovered {
				recovered++
				if e.Incarnation <= oldInc {
					t.Errorf("%s: recovered with incarnation %d; want > %d", e.by, e.Incarnation, oldInc)
				}
			}
		}
		if recovered != len(c.ids)-1 {
			t.Errorf("%d nodes reported %s Recovered; want %d", recovered, victim, len(c.ids)-1)
		}
	})
}

// TestSimPartitionHeals cuts the cluster in two: each side declares the
// other Failed and keeps its own side Alive; after the partition heals,
// every node returns to Alive.
func TestSimPartitionHeals(t *testing.T) {
	sim.Seeds(t, 3, func(t *testing.T, seed int64) {
		c := newCluster(t, seed, 8, scenarioConfig(), lossyNet)
		c.s.Run(100 * time.Second)
		left, right := c.ids[:4], c.ids[4:]
		c.s.Partition(left, right)
		c.s.Run(15 * time.Second)
		side := func(id transport.NodeID) bool { return slices.Contains(left, id) }
		for _, a := range c.ids {
			for _, b := range c.ids {
				if a == b {
					continue
				}
				// Across the cut: Failed. On the same side: anything but
				// Failed (a lost heartbeat may make it Suspect for a moment).
				got := c.statusOf(a, b)
				if (side(a) != side(b)) != (got == detector.Failed) {
					t.Errorf("during the partition %s sees %s %v; want failed iff they are on different sides", a, b, got)
				}
			}
		}
		c.s.Heal()
		if !c.s.RunUntil(c.allAlive, 10*time.Second) {
			t.Fatalf("10 s after the partition healed, not every node sees every other Alive")
		}
	})
}

// TestSimRumourRefuted cuts one link in one direction: n1 stops hearing n2
// directly. With indirect probes n1 must never declare n2 Failed, and n2
// must have refuted the suspicion by raising its incarnation.
func TestSimRumourRefuted(t *testing.T) {
	sim.Seeds(t, 3, func(t *testing.T, seed int64) {
		c := newCluster(t, seed, 5, scenarioConfig(), lossyNet)
		c.s.Run(30 * time.Second)
		before := c.core("n2").Incarnation()
		c.s.Cut("n2", "n1")
		c.s.Run(60 * time.Second)
		for _, e := range c.rec.events {
			if e.Kind == detector.EventFailed {
				t.Errorf("%s declared %v though only one link was cut", e.by, e.Event)
			}
		}
		if got := c.core("n2").Incarnation(); got <= before {
			t.Errorf("n2 incarnation = %d after being suspected; want > %d", got, before)
		}
		if got := c.statusOf("n1", "n2"); got == detector.Failed {
			t.Errorf("n1 sees n2 %v; want alive or suspect", got)
		}
	})
}

// TestSimRandomFaults throws a seeded schedule of crashes, restarts,
// partitions, one-way cuts and heals at 6 nodes on a network that also
// duplicates and reorders, then heals everything and restarts the crashed:
// within 15 s every node must see every other Alive again.
func TestSimRandomFaults(t *testing.T) {
	sim.Seeds(t, 5, func(t *testing.T, seed int64) {
		faults := sim.Faults{Drop: 0.02, Duplicate: 0.05, Reorder: 0.05, ReorderDelay: 50 * time.Millisecond,
			MinDelay: time.Millisecond, MaxDelay: 20 * time.Millisecond}
		c := newCluster(t, seed, 6, scenarioConfig(), faults)
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		c.s.Run(30 * time.Second)
		down := map[transport.NodeID]bool{}
		for range 40 {
			id := c.ids[rng.IntN(len(c.ids))]
			switch rng.IntN(5) {
			case 0:
				c.s.Crash(id)
				down[id] = true
			case 1:
				if down[id] {
					c.s.Restart(id)
					down[id] = false
				}
			case 2:
				perm := rng.Perm(len(c.ids))
				cut := 1 + rng.IntN(len(c.ids)-1)
				var a, b []transport.NodeID
				for i, p := range perm {
					if i < cut {
						a = append(a, c.ids[p])
					} else {
						b = append(b, c.ids[p])
					}
				}
				c.s.Partition(a, b)
			case 3:
				c.s.Cut(id, c.ids[rng.IntN(len(c.ids))])
			case 4:
				c.s.Heal()
			}
			c.s.Run(time.Duration(1+rng.IntN(20)) * time.Second)
		}
		c.s.Heal()
		for id, d := range down {
			if d {
				c.s.Restart(id)
			}
		}
		if !c.s.RunUntil(c.allAlive, 15*time.Second) {
			for _, a := range c.ids {
				t.Logf("%s sees %+v", a, c.core(a).Members(c.s.Now()))
			}
			t.Fatalf("15 s after healing everything, not every node sees every other Alive")
		}
		if len(c.rec.errs) > 0 {
			t.Fatalf("receive errors: %v", c.rec.errs)
		}
		if err := c.s.Err(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestSimOneWayCutRecovers isolates n2 until everyone declares it Failed,
// then heals all but the direction n2 -> n1. n1 never hears n2 directly
// again, but its periodic probes through the others must find n2 and take
// it back.
func TestSimOneWayCutRecovers(t *testing.T) {
	sim.Seeds(t, 3, func(t *testing.T, seed int64) {
		c := newCluster(t, seed, 4, scenarioConfig(), lossyNet)
		c.s.Run(30 * time.Second)
		c.s.Isolate("n2")
		c.s.Run(10 * time.Second)
		if got := c.statusOf("n1", "n2"); got != detector.Failed {
			t.Fatalf("n1 sees the isolated n2 %v; want failed", got)
		}
		c.s.Heal()
		c.s.Cut("n2", "n1")
		c.rec.events = nil
		back := func() bool {
			for _, e := range c.rec.events {
				if e.by == "n1" && e.Member == "n2" && e.Kind == detector.EventRecovered {
					return true
				}
			}
			return false
		}
		if !c.s.RunUntil(back, 15*time.Second) {
			t.Fatalf("n1 did not take n2 back through the others within 15 s")
		}
	})
}
