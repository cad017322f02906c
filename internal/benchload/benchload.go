// Package benchload runs a benchmark's operations from many goroutines at
// once and reports throughput and latency percentiles, so the closed-loop
// benchmarks of consensus, txn, lock and the comparison module measure the
// same way.
package benchload

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Op performs one operation for the given worker (0 ≤ worker < workers).
type Op func(ctx context.Context, worker int) error

// Run performs b.N operations from workers goroutines, each taking the next
// operation as soon as its previous one returns (a closed loop), and reports
// unit (for example "ops/s" or "txn/s"), "p50-µs" and "p99-µs" with
// b.ReportMetric, and, where the platform tells, "cpu-µs/op": the CPU time
// the whole process used during the run (every goroutine: the clients, the
// nodes, the transport, the garbage collector) per operation. On a machine
// whose speed drifts, or with fewer cores than the work could use, the CPU
// per operation varies much less than the throughput, and says what a
// change costs. The first failing operation stops its worker and fails the
// benchmark; the other workers finish the remaining operations.
func Run(b *testing.B, workers int, unit string, op Op) {
	if workers < 1 {
		b.Fatalf("benchload: %d workers; want at least 1", workers)
	}
	ctx := context.Background()
	lat := make([][]time.Duration, workers)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, cpuOK := processCPU()
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := op(ctx, w); err != nil {
					b.Error(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, cpuOK1 := processCPU()
	b.StopTimer()

	all := slices.Concat(lat...)
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	pct := func(q float64) float64 { return float64(all[int(q*float64(len(all)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), unit)
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	if cpuOK && cpuOK1 {
		b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/1e3/float64(len(all)), "cpu-µs/op")
	}
	if testing.Verbose() {
		b.Logf("n=%d p50=%.1fµs p90=%.1fµs p99=%.1fµs p999=%.1fµs max=%v",
			len(all), pct(0.5), pct(0.9), pct(0.99), pct(0.999), all[len(all)-1])
	}
}
