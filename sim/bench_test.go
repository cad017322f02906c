package sim_test

import (
	"testing"
	"time"

	"github.com/distkit/distkit/sim"
)

// BenchmarkSimEvents measures the event loop on a five-node gossip cluster
// where every node sends a message every 10ms of virtual time, over a
// perfect and a lossy network. One op is one Step (one event).
func BenchmarkSimEvents(b *testing.B) {
	nets := []struct {
		name   string
		faults sim.Faults
	}{
		{"perfect", sim.Faults{MinDelay: time.Millisecond, MaxDelay: 3 * time.Millisecond}},
		{"lossy", lossy},
	}
	for _, n := range nets {
		b.Run(n.name, func(b *testing.B) {
			b.ReportAllocs()
			s, _ := newCluster(b, 1, n.faults)
			s.Run(time.Second) // warm up the agenda and the disks
			startEvents, startTime := s.Stats().Events, s.Elapsed()
			for b.Loop() {
				s.Step()
			}
			secs := b.Elapsed().Seconds()
			b.ReportMetric(float64(s.Stats().Events-startEvents)/secs, "events/s")
			b.ReportMetric((s.Elapsed()-startTime).Seconds()/secs, "virtual-s/s")
		})
	}
}
