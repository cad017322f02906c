package idempotency

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distkit/distkit/clock"
	"github.com/distkit/distkit/internal/vfs"
)

func powerLossSeeds(n uint64) uint64 {
	if os.Getenv("DISTKIT_SOAK") != "" {
		return 20 * n
	}
	return n
}

// TestFileStorePowerLoss runs a FileStore on a CrashFS through Begin,
// Complete and Abort calls and compactions, ends with a call whose fsync
// fails (after which the store must refuse every call: ErrStoreFailed),
// cuts the power and reopens: every acknowledged change must be there (a
// begun record in progress, a completed one with its result, an aborted
// one gone), and the open must not refuse what a crash left.
func TestFileStorePowerLoss(t *testing.T) {
	for seed := uint64(1); seed <= powerLossSeeds(80); seed++ {
		if !fileStorePowerLossTrial(t, seed) {
			t.Fatalf("failed with seed %d (replay: the same seed gives the same run)", seed)
		}
	}
}

func fileStorePowerLossTrial(t *testing.T, seed uint64) bool {
	t.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 5))
	clk := clock.NewManual(epoch)
	fsys := vfs.NewCrashFS(seed)
	if err := vfs.MkdirAllDurable(fsys, "/srv/idem"); err != nil {
		t.Fatal(err)
	}
	path := "/srv/idem/log"
	cfg := FileConfig{Clock: clk, CompactMinFrames: 4 + rng.IntN(40), FS: fsys}
	s, err := OpenFileStore(path, cfg)
	if err != nil {
		t.Errorf("seed %d: OpenFileStore = %v", seed, err)
		return false
	}
	model := map[string]*Record{} // nil: aborted
	var open []string             // keys in progress
	for i := range rng.IntN(80) {
		switch op := rng.IntN(3); {
		case op == 0 || len(open) == 0:
			key := fmt.Sprint("k", i)
			p := inProgress(key, "fp", rng.Uint64(), clk.Now(), time.Hour)
			if _, created, err := s.Begin(ctx, p); !created || err != nil {
				t.Errorf("seed %d: Begin(%q) = %v, %v", seed, key, created, err)
				return false
			}
			model[key] = &p
			open = append(open, key)
		default:
			j := rng.IntN(len(open))
			key := open[j]
			open = append(open[:j], open[j+1:]...)
			p := model[key]
			if rng.IntN(3) == 0 {
				if err := s.Abort(ctx, key, p.Token); err != nil {
					t.Errorf("seed %d: Abort(%q) = %v", seed, key, err)
					return false
				}
				model[key] = nil
				continue
			}
			done := completed(*p, fmt.Sprint("result-", key, "-", rng.IntN(1e6)), clk.Now(), 2*time.Hour)
			if err := s.Complete(ctx, done); err != nil {
				t.Errorf("seed %d: Complete(%q) = %v", seed, key, err)
				return false
			}
			model[key] = &done
		}
	}
	fsys.InjectSyncError(1)
	doomed := inProgress("doomed", "fp", 1, clk.Now(), time.Hour)
	if _, _, err := s.Begin(ctx, doomed); err == nil {
		t.Errorf("seed %d: Begin with a failing fsync succeeded", seed)
		return false
	}
	if _, _, err := s.Begin(ctx, inProgress("later", "fp", 2, clk.Now(), time.Hour)); !errors.Is(err, ErrStoreFailed) {
		t.Errorf("seed %d: Begin after a failed fsync = %v; want ErrStoreFailed (fsyncgate)", seed, err)
		return false
	}
	after := fsys.Crash()
	s.Close()
	cfg.FS = after
	s2, err := OpenFileStore(path, cfg)
	if err != nil {
		t.Errorf("seed %d: OpenFileStore after the crash = %v", seed, err)
		return false
	}
	defer s2.Close()
	for key, want := range model {
		got, ok, err := s2.Get(ctx, key)
		switch {
		case err != nil:
			t.Errorf("seed %d: Get(%q) = %v", seed, key, err)
			return false
		case want == nil && ok:
			t.Errorf("seed %d: Get(%q) = %+v; its Abort was acknowledged", seed, key, got)
			return false
		case want != nil && (!ok || !sameRecord(got, *want)):
			t.Errorf("seed %d: Get(%q) = %+v, %v; want the acknowledged %+v", seed, key, got, ok, *want)
			return false
		}
	}
	if got, ok, _ := s2.Get(ctx, "later"); ok {
		t.Errorf("seed %d: a Begin refused after the failed fsync is on disk: %+v", seed, got)
		return false
	}
	return true
}

// TestFileStorePowerLossTornBatch tears a group-commit batch: one fsync is
// held until many writers have queued behind it, and the next one, which
// covers their batch of frames, fails; then the power goes. The crash
// keeps any subset of that batch's sectors, so frames of the batch can
// survive after a damaged one: the store must cut the batch off as a torn
// tail (its frames carry the continuation flag), not refuse it as
// corruption, and keep every acknowledged record.
func TestFileStorePowerLossTornBatch(t *testing.T) {
	ctx := context.Background()
	for seed := uint64(1); seed <= powerLossSeeds(40); seed++ {
		rng := rand.New(rand.NewPCG(seed, 11))
		clk := clock.NewManual(epoch)
		fsys := vfs.NewCrashFS(seed)
		cfg := FileConfig{Clock: clk, CompactMinFrames: 1 << 20, FS: fsys}
		s := mustFileStore(t, "/log", cfg)
		acked := map[string]Record{}
		for i := range rng.IntN(10) {
			p := inProgress(fmt.Sprint("warm", i), "fp", 1, clk.Now(), time.Hour)
			if _, _, err := s.Begin(ctx, p); err != nil {
				t.Fatal(err)
			}
			acked[p.Key] = p
		}
		const writers = 12
		queued := holdFirstSync(fsys, writers)
		fsys.InjectSyncError(2)
		var mu sync.Mutex
		var wg sync.WaitGroup
		for g := range writers {
			fp := string(bytes.Repeat([]byte{'f'}, 50+rng.IntN(400)))
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := inProgress(fmt.Sprint("g", g), fp, uint64(g+1), clk.Now(), time.Hour)
				queued.Add(1)
				if _, _, err := s.Begin(ctx, p); err == nil {
					mu.Lock()
					acked[p.Key] = p
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		after := fsys.Crash()
		s.Close()
		cfg.FS = after
		s2, err := OpenFileStore("/log", cfg)
		if err != nil {
			t.Fatalf("seed %d: OpenFileStore after the crash = %v", seed, err)
		}
		for key, want := range acked {
			if got, ok, _ := s2.Get(ctx, key); !ok || !sameRecord(got, want) {
				t.Fatalf("seed %d: Get(%q) = %+v, %v; want the acknowledged %+v", seed, key, got, ok, want)
			}
		}
		s2.Close()
	}
}

// TestFileStoreStopsAfterFailedFsync: once an fsync failed, no write that
// queued behind it may be acknowledged, even one whose own batch would
// sync fine: the failed batch's pages may be gone (fsyncgate), and a later
// batch on top of the hole would be refused as corruption at the next open
// or lose the failed batch's records silently.
func TestFileStoreStopsAfterFailedFsync(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewManual(epoch)
	fsys := vfs.NewCrashFS(1)
	s := mustFileStore(t, "/log", FileConfig{Clock: clk, CompactMinFrames: 1 << 20, FS: fsys})
	defer s.Close()
	const writers = 16
	// The first Begin's fsync waits until the other writers have queued
	// behind it, then fails.
	queued := holdFirstSync(fsys, writers)
	fsys.InjectSyncError(1)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var succeeded []string
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprint("k", g)
			queued.Add(1)
			if _, _, err := s.Begin(ctx, inProgress(key, "fp", 1, clk.Now(), time.Hour)); err == nil {
				mu.Lock()
				succeeded = append(succeeded, key)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(succeeded) > 0 {
		t.Fatalf("%d Begins acknowledged after the first fsync failed (%v); want none", len(succeeded), succeeded)
	}
}

// holdFirstSync makes the next fsync of fsys wait until n writers have
// counted themselves in the returned counter, and a little longer so that
// they reach the store's queue. Later fsyncs are not held.
func holdFirstSync(fsys *vfs.CrashFS, n int64) *atomic.Int64 {
	var count atomic.Int64
	var once sync.Once
	fsys.SetSyncHook(func(string) {
		once.Do(func() {
			for count.Load() < n {
				runtime.Gosched()
			}
			for range 200 {
				runtime.Gosched()
			}
		})
	})
	return &count
}
