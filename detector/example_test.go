package detector_test

import (
	"context"
	"fmt"
	"time"

	"github.com/distkit/distkit/detector"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// A peer heartbeats every second; φ stays low while it is on time and
// climbs steeply once it is late.
func ExamplePhiAccrual() {
	d, err := detector.NewPhiAccrual(detector.DefaultPhiConfig())
	if err != nil {
		panic(err)
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 10 {
		d.Heartbeat(start.Add(time.Duration(i) * time.Second))
	}
	last := start.Add(9 * time.Second)
	for _, ms := range []int{500, 1000, 1500, 2000, 2500} {
		now := last.Add(time.Duration(ms) * time.Millisecond)
		fmt.Printf("%d ms after the last heartbeat: phi %6.2f suspect %v\n", ms, d.Phi(now), d.Suspect(now))
	}
	// Output:
	// 500 ms after the last heartbeat: phi   0.00 suspect false
	// 1000 ms after the last heartbeat: phi   0.30 suspect false
	// 1500 ms after the last heartbeat: phi   5.87 suspect false
	// 2000 ms after the last heartbeat: phi  20.49 suspect true
	// 2500 ms after the last heartbeat: phi  44.54 suspect true
}

// The fixed-timeout detector needs three missed probes before it gives up,
// and two heartbeats before it takes the peer back.
func ExampleFixedTimeout() {
	d, err := detector.NewFixedTimeout(detector.DefaultTimeoutConfig())
	if err != nil {
		panic(err)
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return start.Add(time.Duration(s) * time.Second) }
	d.Heartbeat(at(0))
	for s := 1; s <= 6; s++ {
		fmt.Printf("probe at %ds: %v\n", s, d.Probe(at(s)))
	}
	d.Heartbeat(at(7))
	fmt.Println("after one heartbeat:", d.Status())
	d.Heartbeat(at(8))
	fmt.Println("after two heartbeats:", d.Status())
	// Output:
	// probe at 1s: alive
	// probe at 2s: alive
	// probe at 3s: alive
	// probe at 4s: suspect
	// probe at 5s: suspect
	// probe at 6s: failed
	// after one heartbeat: failed
	// after two heartbeats: alive
}

// A Membership is driven by hand: feed it time and messages, send what
// Ready returns. Here node a monitors b, which never answers.
func ExampleMembership() {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m, err := detector.NewMembership("a", detector.DefaultConfig(), 1, start)
	if err != nil {
		panic(err)
	}
	if err := m.AddMember("b", start); err != nil {
		panic(err)
	}
	for now := start; now.Before(start.Add(10 * time.Second)); now = m.NextTick() {
		m.Tick(now)
		for _, e := range m.Ready().Events {
			fmt.Printf("%.1fs %s %s\n", e.At.Sub(start).Seconds(), e.Member, e.Kind)
		}
	}
	// Output:
	// 2.5s b suspect
	// 3.5s b failed
}

// A Monitor watches its peers over a transport, here the in-memory network
// with every interval shortened fifty-fold so the example runs quickly.
func ExampleMonitor() {
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		panic(err)
	}
	defer net.Close()
	cfg := detector.DefaultConfig()
	cfg.HeartbeatInterval = 20 * time.Millisecond
	cfg.CheckInterval = 5 * time.Millisecond
	cfg.ProbeTimeout = 40 * time.Millisecond
	cfg.Phi.MinStdDev = 5 * time.Millisecond
	cfg.Phi.AcceptablePause = 60 * time.Millisecond // absorbs scheduler hiccups

	ctx := context.Background()
	var mons []*detector.Monitor
	for _, id := range []transport.NodeID{"a", "b"} {
		tr, err := net.Join(id)
		if err != nil {
			panic(err)
		}
		m, err := detector.NewMonitor(tr, cfg, detector.MonitorOptions{})
		if err != nil {
			panic(err)
		}
		defer m.Close()
		mons = append(mons, m)
	}
	a, b := mons[0], mons[1]
	if err := a.AddMember(ctx, "b"); err != nil {
		panic(err)
	}
	if err := b.AddMember(ctx, "a"); err != nil {
		panic(err)
	}

	await := func(kind detector.EventKind) {
		for e := range a.Events() {
			if e.Member == "b" && e.Kind == kind {
				fmt.Println("a says b is", kind)
				return
			}
		}
	}
	_ = net.Crash("b")
	await(detector.EventFailed)
	_ = net.Restart("b")
	await(detector.EventRecovered)
	// Output:
	// a says b is failed
	// a says b is recovered
}
