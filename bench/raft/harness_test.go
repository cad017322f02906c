package raft

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// proposeFunc commits one command and returns when it is applied.
type proposeFunc func(ctx context.Context, cmd []byte) error

// runProposers commits b.N 128-byte commands from the given number of
// goroutines and reports throughput and latency percentiles.
func runProposers(b *testing.B, propose proposeFunc, proposers int) {
	cmd := make([]byte, 128)
	ctx := context.Background()
	lat := make([][]time.Duration, proposers)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for p := range proposers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := propose(ctx, cmd); err != nil {
					b.Error(err)
					return
				}
				lat[p] = append(lat[p], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	pct := func(q float64) float64 { return float64(all[int(q*float64(len(all)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "ops/s")
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

// BenchmarkRaftCompare runs the same workload on both libraries, side by
// side.
func BenchmarkRaftCompare(b *testing.B) {
	b.Run("distkit-mem", func(b *testing.B) {
		propose, cleanup := distkitCluster(b, false)
		defer cleanup()
		runProposers(b, propose, 64)
	})
	b.Run("hashicorp-mem", func(b *testing.B) {
		propose, cleanup := hashicorpCluster(b, false)
		defer cleanup()
		runProposers(b, propose, 64)
	})
	b.Run("distkit-wal", func(b *testing.B) {
		propose, cleanup := distkitCluster(b, true)
		defer cleanup()
		runProposers(b, propose, 64)
	})
	b.Run("hashicorp-bolt", func(b *testing.B) {
		propose, cleanup := hashicorpCluster(b, true)
		defer cleanup()
		runProposers(b, propose, 64)
	})
}
