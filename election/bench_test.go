package election_test

import (
	"fmt"
	"testing"
	"time"
)

// benchElection runs one full election per op, the "all start at once"
// scenario of TestMessageComplexity (the same measure function, so
// messages/op is what the table in doc.go reports): a fresh group in the
// simulator (1-5 ms latency, no loss) boots, every node campaigns at once,
// and the election ends when every node names the highest. messages/op
// counts election messages (not heartbeats), including any still sent
// after agreement; sim-µs/op is the simulated time to agreement. ns/op is
// the whole op: building the group's cores (and their failure detectors),
// which a cold start pays too, their boot, the election and the last
// messages after agreement.
func benchElection(b *testing.B, name string) {
	sc := scenarioNamed(b, name)
	for _, n := range []int{3, 5, 9} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			var msgs uint64
			var simTime time.Duration
			for i := 0; b.Loop(); i++ {
				m, d := measure(b, int64(i+1), n, sc)
				msgs += m
				simTime += d
			}
			b.ReportMetric(float64(msgs)/float64(b.N), "messages/op")
			b.ReportMetric(float64(simTime.Microseconds())/float64(b.N), "sim-µs/op")
		})
	}
}

func scenarioNamed(b *testing.B, name string) scenario {
	for _, sc := range scenarios {
		if sc.name == name {
			return sc
		}
	}
	b.Fatalf("no scenario %q", name)
	return scenario{}
}

func BenchmarkBullyElection(b *testing.B) { benchElection(b, "bully, all start at once") }

func BenchmarkRingElection(b *testing.B) { benchElection(b, "ring, all start at once") }
