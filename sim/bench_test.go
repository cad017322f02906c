package sim_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
)

// ticker is the lightest useful node: every 10ms it sends one message to a
// random peer. It keeps the benchmark about the simulator, not the node.
type ticker struct{ peers []transport.NodeID }

func (n *ticker) Start(env sim.Env)                  { env.SetTimer(10*time.Millisecond, "tick") }
func (n *ticker) Receive(sim.Env, transport.Message) {}
func (n *ticker) Timer(env sim.Env, _ sim.TimerID, _ string) {
	env.Send(n.peers[env.Rand().IntN(len(n.peers))], "tick", nil)
	env.SetTimer(10*time.Millisecond, "tick")
}

// BenchmarkSimEvents measures the event loop: clusters of 5 and 50 nodes,
// each sending a message every 10ms of virtual time, over a perfect and a
// lossy network. One op is one Step (one event: a timer or a delivery).
func BenchmarkSimEvents(b *testing.B) {
	nets := []struct {
		name   string
		faults sim.Faults
	}{
		{"perfect", sim.Faults{MinDelay: time.Millisecond, MaxDelay: 3 * time.Millisecond}},
		{"lossy", lossy},
	}
	for _, size := range []int{5, 50} {
		for _, n := range nets {
			b.Run(fmt.Sprintf("nodes=%d/%s", size, n.name), func(b *testing.B) {
				s, err := sim.New(sim.Config{Seed: 1, Faults: n.faults})
				if err != nil {
					b.Fatal(err)
				}
				ids := make([]transport.NodeID, size)
				for i := range ids {
					ids[i] = transport.NodeID(fmt.Sprintf("n%d", i))
				}
				for _, id := range ids {
					if err := s.AddNode(id, func() sim.Node { return &ticker{peers: ids} }); err != nil {
						b.Fatal(err)
					}
				}
				s.Run(time.Second) // warm up the agenda and the link tables
				startEvents, startTime := s.Stats().Events, s.Elapsed()
				b.ReportAllocs()
				for b.Loop() {
					s.Step()
				}
				secs := b.Elapsed().Seconds()
				b.ReportMetric(float64(s.Stats().Events-startEvents)/secs, "events/s")
				b.ReportMetric((s.Elapsed()-startTime).Seconds()/secs, "virtual-s/s")
			})
		}
	}
}
