package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/distkit/distkit/detector"
	"github.com/distkit/distkit/detector/detectorsim"
	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
)

func init() {
	register(chapter{order: 40, name: "detector", title: "Failure detection: phi accrual and indirect probes", run: runDetector})
}

func runDetector(ctx context.Context, t *tour) error {
	rng := rand.New(rand.NewPCG(uint64(t.seed), 40))

	// Part 1: one φ accrual detector, fed by hand.
	t.Detail("A peer heartbeats every second, give or take 20%%. The φ accrual detector")
	t.Detail("learns the mean and spread of the gaps and scores a silence by how unlikely")
	t.Detail("it is: φ = 8 means a one-in-10⁸ chance that the peer is merely late.")
	phi, err := detector.NewPhiAccrual(detector.DefaultPhiConfig())
	if err != nil {
		return err
	}
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for range 100 {
		phi.Heartbeat(at)
		at = at.Add(time.Duration((0.8 + 0.4*rng.Float64()) * float64(time.Second)))
	}
	st := phi.Stats()
	t.Say("after 100 heartbeats: mean gap %v, σ %v", st.Mean.Round(time.Millisecond), st.StdDev.Round(time.Millisecond))
	last := st.LastHeartbeat
	for _, ms := range []int{1000, 1250, 1500, 1750, 2000} {
		now := last.Add(time.Duration(ms) * time.Millisecond)
		t.Say("silent for %.2fs: φ = %6.2f, suspect: %v", float64(ms)/1000, phi.Phi(now), phi.Suspect(now))
	}

	// Part 2: five nodes in the simulator.
	t.Detail("Five nodes run the membership core in the simulator, on a network that")
	t.Detail("loses 1%% of messages. A suspect is probed directly and through 3 others")
	t.Detail("before it is declared failed, so a lost packet does not condemn a live node.")
	cfg := detector.DefaultConfig()
	cfg.Jitter = 0.2
	s, err := sim.New(sim.Config{Seed: t.seed, Faults: sim.Faults{Drop: 0.01, MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond}})
	if err != nil {
		return err
	}
	ids := []transport.NodeID{"n1", "n2", "n3", "n4", "n5"}
	var events []detectorSeen
	for _, id := range ids {
		err := s.AddNode(id, func() sim.Node {
			n := detectorsim.New(cfg, ids)
			n.OnEvent = func(by transport.NodeID, e detector.Event) { events = append(events, detectorSeen{by, e}) }
			return n
		})
		if err != nil {
			return err
		}
	}
	s.Run(5 * time.Minute)
	suspicions, failures := 0, 0
	for _, e := range events {
		switch e.Kind {
		case detector.EventSuspect:
			suspicions++
		case detector.EventFailed:
			failures++
		}
	}
	t.Say("5 simulated minutes, no crash: %d suspicions (lost heartbeats), all refuted; %d failed verdicts", suspicions, failures)
	if failures != 0 {
		return fmt.Errorf("%d false failed verdicts", failures)
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	crash := s.Now()
	s.Crash("n5")
	events = nil
	s.Run(10 * time.Second)
	var slowest time.Duration
	declared := 0
	for _, e := range events {
		if e.Member == "n5" && e.Kind == detector.EventFailed {
			declared++
			slowest = max(slowest, e.At.Sub(crash))
		}
	}
	t.Say("n5 crashes: %d of 4 live nodes declare it failed, the last after %.1fs", declared, slowest.Seconds())
	if declared != 4 {
		return fmt.Errorf("only %d nodes detected the crash", declared)
	}

	s.Restart("n5")
	s.Run(5 * time.Second)
	s.Partition(ids[:3], ids[3:])
	events = nil
	s.Run(10 * time.Second)
	left := map[transport.NodeID]bool{"n1": true, "n2": true, "n3": true}
	cross, same := 0, 0
	for _, e := range events {
		if e.Kind == detector.EventFailed {
			if left[e.by] != left[e.Member] {
				cross++
			} else {
				same++
			}
		}
	}
	t.Say("n5 restarts and is taken back; then the network splits {n1 n2 n3} | {n4 n5}:")
	t.Say("%d failed verdicts across the cut, %d within a side", cross, same)
	s.Heal()
	healed := s.Now()
	events = nil
	s.Run(5 * time.Second)
	recovered := 0
	var slowestBack time.Duration
	for _, e := range events {
		if e.Kind == detector.EventRecovered {
			recovered++
			slowestBack = max(slowestBack, e.At.Sub(healed))
		}
	}
	t.Say("the network heals: %d recovered verdicts, the last %.1fs after the heal", recovered, slowestBack.Seconds())
	if cross != 12 || same != 0 || recovered != 12 {
		return fmt.Errorf("partition: %d+%d failed and %d recovered verdicts; want 12+0 and 12", cross, same, recovered)
	}
	return s.Err()
}

// detectorSeen is an event and the node that reported it.
type detectorSeen struct {
	by transport.NodeID
	detector.Event
}
