package idempotency

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func benchRunner(b *testing.B) *Runner[[]byte] {
	b.Helper()
	store, err := NewMemoryStore(DefaultMemoryConfig())
	if err != nil {
		b.Fatal(err)
	}
	r, err := NewRunner[[]byte](store, BytesCodec{}, DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	return r
}

// BenchmarkDoReplay measures the hot path of a retry: a completed key is
// looked up and its stored result decoded, from all Ps at once.
// Target: ≤ 200 ns/op.
func BenchmarkDoReplay(b *testing.B) {
	for _, size := range []int{16, 1024} {
		for _, keys := range []int{1, 1024} {
			b.Run(fmt.Sprintf("result=%dB/keys=%d", size, keys), func(b *testing.B) {
				r := benchRunner(b)
				ctx := context.Background()
				result := make([]byte, size)
				names := make([]string, keys)
				for i := range names {
					names[i] = fmt.Sprintf("payment-%08d", i)
					if _, err := r.Do(ctx, names[i], "fp", func(context.Context) ([]byte, error) { return result, nil }); err != nil {
						b.Fatal(err)
					}
				}
				fn := func(context.Context) ([]byte, error) { panic("replay ran fn") }
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					i := 0
					for pb.Next() {
						if _, err := r.Do(ctx, names[i%keys], "fp", fn); err != nil {
							b.Error(err)
							return
						}
						i++
					}
				})
			})
		}
	}
}

// BenchmarkDoNew measures a first call: claim the key, run fn, store the
// result, on the memory store. With WaitForResult fn runs in a singleflight
// goroutine (so duplicates can wait with their own context); with
// RejectInProgress it runs in the caller's goroutine.
func BenchmarkDoNew(b *testing.B) {
	policies := []struct {
		name   string
		policy InProgressPolicy
	}{{"wait", WaitForResult}, {"reject", RejectInProgress}}
	for _, p := range policies {
		for _, size := range []int{16, 1024} {
			b.Run(fmt.Sprintf("policy=%s/result=%dB", p.name, size), func(b *testing.B) {
				benchDoNew(b, p.policy, size)
			})
		}
	}
}

func benchDoNew(b *testing.B, policy InProgressPolicy, size int) {
	store, err := NewMemoryStore(DefaultMemoryConfig())
	if err != nil {
		b.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.OnInProgress = policy
	r, err := NewRunner[[]byte](store, BytesCodec{}, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	result := make([]byte, size)
	fn := func(context.Context) ([]byte, error) { return result, nil }
	keys := make([]string, b.N)
	for i := range keys {
		keys[i] = fmt.Sprintf("new-%010d", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := r.Do(ctx, keys[i], "fp", fn); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFileStoreDo runs new operations through a Runner on a FileStore
// from 64 concurrent callers (and from 1, for comparison), so that group commit
// shares each fsync between many records. It reports ops/s and the records
// per fsync; without group commit ops/s would be about 1/(2·fsync latency).
func BenchmarkFileStoreDo(b *testing.B) {
	for _, callers := range []int{1, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			s, err := OpenFileStore(filepath.Join(b.TempDir(), "log"), DefaultFileConfig())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			r, err := NewRunner[[]byte](s, BytesCodec{}, DefaultConfig())
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			ctx := context.Background()
			result := []byte(`{"charge":"ch_1","status":"succeeded"}`)
			fn := func(context.Context) ([]byte, error) { return result, nil }
			var next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						if _, err := r.Do(ctx, fmt.Sprint("op-", i), "fp", fn); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			st := s.Stats()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
			if st.Syncs > 0 {
				b.ReportMetric(float64(st.FramesWritten)/float64(st.Syncs), "frames/fsync")
			}
		})
	}
}

// BenchmarkMemoryStoreBegin measures Begin and Complete of fresh keys on a
// MemoryStore below its bound and at it, where every new key first evicts
// the store's oldest completed record (one short lock per shard).
func BenchmarkMemoryStoreBegin(b *testing.B) {
	for _, full := range []bool{false, true} {
		b.Run(fmt.Sprintf("full=%t", full), func(b *testing.B) {
			cfg := DefaultMemoryConfig()
			cfg.MaxEntries = 1 << 30
			if full {
				cfg.MaxEntries = 4096
			}
			s, err := NewMemoryStore(cfg)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			now := time.Now()
			begin := func(i int) {
				p := Record{Key: fmt.Sprintf("k-%010d", i), Status: StatusInProgress, Token: 1, Created: now, Expires: now.Add(time.Hour)}
				if _, _, err := s.Begin(ctx, p); err != nil {
					b.Fatal(err)
				}
				p.Status = StatusCompleted
				if err := s.Complete(ctx, p); err != nil {
					b.Fatal(err)
				}
			}
			for i := range 4096 { // fill to the bound (or part of the way)
				begin(-1 - i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				begin(i)
			}
			if full && s.Len() != 4096 {
				b.Fatalf("Len() = %d; want 4096", s.Len())
			}
		})
	}
}
