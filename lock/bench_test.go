package lock_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distkit/distkit/lock"
	"github.com/distkit/distkit/transport"
)

// BenchmarkLockReplicated measures lock+unlock round trips against a
// three-member replicated service on memnet, from 16 clients each on its
// own lock. Each op is one Lock and one Unlock (two commits).
func BenchmarkLockReplicated(b *testing.B) {
	const clients = 16
	r, _ := newMemnetService(b, false)
	ctx := context.Background()
	sessions := make([]*lock.Session, clients)
	for i := range sessions {
		sessions[i] = newSession(b, r.client(transport.NodeID(fmt.Sprint("c", i))), 5*time.Second)
	}
	var next atomic.Int64
	lat := make([][]time.Duration, clients)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprint("lock-", i)
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				g, err := s.Lock(ctx, name)
				if err != nil {
					b.Error(err)
					return
				}
				if err := s.Unlock(ctx, g); err != nil {
					b.Error(err)
					return
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(len(all))/elapsed.Seconds(), "ops/s")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
		b.Logf("p50 %v p90 %v p99 %v max %v", all[len(all)/2], all[len(all)*9/10], all[len(all)*99/100], all[len(all)-1])
	}
}
