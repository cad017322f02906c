package idempotency

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/distkit/distkit/clock"
	"github.com/distkit/distkit/internal/vfs"
)

// TestStoreBeginClaimsOnce calls Store.Begin directly (not through the
// Runner's singleflight, which would hide a race) from many goroutines at
// once for the same key, for both stores: exactly one call must create the
// record, and every other one must get that record back. A store that
// checks for a live record and stores its own under separate lock holds
// lets two callers both win: the operation would run twice.
func TestStoreBeginClaimsOnce(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewManual(epoch)
	stores := map[string]func(t *testing.T) Store{
		"MemoryStore": func(t *testing.T) Store {
			cfg := DefaultMemoryConfig()
			cfg.Shards, cfg.Clock = 2, clk
			return mustMemoryStore(t, cfg)
		},
		"FileStore": func(t *testing.T) Store {
			s := mustFileStore(t, "/log", FileConfig{Clock: clk, CompactMinFrames: 1 << 20, FS: vfs.NewCrashFS(1)})
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
	const callers, keys = 16, 150
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			for k := range keys {
				key := fmt.Sprint("key-", k)
				start := make(chan struct{})
				type result struct {
					rec     Record
					created bool
					err     error
				}
				results := make([]result, callers)
				var wg sync.WaitGroup
				for c := range callers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						p := inProgress(key, "fp", uint64(c+1), clk.Now(), time.Hour)
						results[c].rec, results[c].created, results[c].err = s.Begin(ctx, p)
					}()
				}
				close(start)
				wg.Wait()
				winners := 0
				var token uint64
				for _, r := range results {
					if r.err != nil {
						t.Fatalf("Begin(%q) = %v", key, r.err)
					}
					if r.created {
						winners++
						token = r.rec.Token
					}
				}
				if winners != 1 {
					t.Fatalf("Begin(%q) from %d goroutines: %d created the record; want exactly 1", key, callers, winners)
				}
				for c, r := range results {
					if r.rec.Token != token {
						t.Fatalf("Begin(%q) caller %d got token %d; want the winner's %d", key, c, r.rec.Token, token)
					}
				}
				if got, ok, _ := s.Get(ctx, key); !ok || got.Token != token {
					t.Fatalf("Get(%q) = token %d, %v; want the winner's %d", key, got.Token, ok, token)
				}
			}
		})
	}
}
