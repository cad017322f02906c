package election_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/distkit/distkit/election"
	"github.com/distkit/distkit/election/electionsim"
)

// benchElection runs one full election per op: a fresh group in the
// simulator (1-5 ms latency, no loss) boots, every node campaigns at its
// first tick (no BootDelay), and the op ends when every node names the
// highest. The op includes building the group's cores (and their failure
// detectors), which a cold start pays too.
func benchElection(b *testing.B, node func(election.Config) *electionsim.Node) {
	for _, n := range []int{3, 5, 9} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			var msgs uint64
			var simTime time.Duration
			for i := 0; b.Loop(); i++ {
				c := newCluster(b, int64(i), n, node, quietNet, func(cfg *election.Config) { cfg.BootDelay = 0 })
				start := c.s.Now()
				live := c.live()
				if !c.s.RunUntil(func() bool { _, ok := c.agreed(live); return ok }, convergeBound) {
					b.Fatalf("no leader:%s", c.views())
				}
				simTime += c.s.Now().Sub(start)
				msgs += c.electionMessages()
			}
			b.ReportMetric(float64(msgs)/float64(b.N), "messages/op")
			b.ReportMetric(float64(simTime.Microseconds())/float64(b.N), "sim-µs/op")
		})
	}
}

func BenchmarkBullyElection(b *testing.B) { benchElection(b, electionsim.NewBully) }

func BenchmarkRingElection(b *testing.B) { benchElection(b, electionsim.NewRing) }
