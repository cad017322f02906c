package saga_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sync"
	"testing"

	"github.com/distkit/distkit/internal/vfs"
	"github.com/distkit/distkit/txn/saga"
)

// blockingSaga: step 0 succeeds; step 1 blocks until release is closed,
// then fails for good when fail is set (turning back) or succeeds;
// compensating step 0 blocks until release too. entered is signalled each
// time a blocking call starts.
func blockingSaga(name string, release <-chan struct{}, entered chan<- string) saga.Saga {
	wait := func(ctx context.Context, id string) error {
		entered <- id
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return saga.Saga{Name: name, Steps: []saga.Step{
		{Name: "a", Action: func(context.Context, string) error { return nil },
			Compensate: func(ctx context.Context, id string) error { return wait(ctx, id) }},
		{Name: "b", Action: func(ctx context.Context, id string) error {
			if name == "back" {
				return saga.Permanent(errors.New("no room"))
			}
			return wait(ctx, id)
		}},
	}}
}

// TestRunnerCompactsEndedSagas: every CompactEvery ended sagas the runner
// replaces the log by the events of the sagas still running, going
// forward or compensating, exactly as they were logged, and forgets the
// ended ones; a runner reopened on the compacted log finishes the running
// ones.
func TestRunnerCompactsEndedSagas(t *testing.T) {
	log := saga.NewMemoryLog()
	cfg := fastConfig()
	cfg.CompactEvery = 4
	r, err := saga.NewRunner(log, cfg)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	entered := make(chan string, 2)
	for _, name := range []string{"fwd", "back"} {
		if err := r.Register(blockingSaga(name, release, entered)); err != nil {
			t.Fatal(err)
		}
	}
	done := saga.Saga{Name: "quick", Steps: []saga.Step{{Name: "x", Action: func(context.Context, string) error { return nil }}}}
	if err := r.Register(done); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, name := range []string{"fwd", "back"} {
		wg.Go(func() { r.Run(ctx, name, name+"-1") })
		<-entered // blocked forward in step 1, or compensating step 0
	}
	before, _ := log.Load()
	var want []saga.Event // by saga ID, each in the order logged
	for _, id := range []string{"back-1", "fwd-1"} {
		for _, e := range before {
			if e.ID == id {
				want = append(want, e)
			}
		}
	}
	for i := range 4 {
		if o, err := r.Run(context.Background(), "quick", fmt.Sprint("q", i)); err != nil || o != saga.Done {
			t.Fatalf("Run(quick) = %v, %v", o, err)
		}
	}
	got, _ := log.Load()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("log after compaction:\n%+v\nwant the running sagas' events:\n%+v", got, want)
	}
	if _, known := r.Status("q0"); known {
		t.Error("an ended saga is still known after compaction")
	}
	cancel() // the runs stop where they are; the log keeps them
	wg.Wait()

	r2, err := saga.NewRunner(log, fastConfig())
	if err != nil {
		t.Fatalf("NewRunner on the compacted log: %v", err)
	}
	close(release)
	go func() {
		for range entered {
		}
	}()
	for _, name := range []string{"fwd", "back"} {
		if err := r2.Register(blockingSaga(name, release, entered)); err != nil {
			t.Fatal(err)
		}
	}
	out, err := r2.Resume(context.Background())
	close(entered)
	if err != nil || out["fwd-1"] != saga.Done || out["back-1"] != saga.Compensated {
		t.Fatalf("Resume() = %v, %v; want fwd-1 done, back-1 compensated", out, err)
	}
}

// TestFileLogCompactionPowerLoss cuts the power before every fsync of a
// FileLog's compaction (and after the last), reopens the log on what the
// crash left and requires Load to return either every event logged
// before (the compaction did not happen) or exactly the live events (it
// did), followed in both cases by nothing: never a mixture, never an
// error. Then it appends after a compaction and cuts again: the events
// appended are kept after the live ones. Small segments make the
// compaction remove several.
func TestFileLogCompactionPowerLoss(t *testing.T) {
	dir := "/srv/saga"
	var all, live []saga.Event
	for i := range 12 {
		id := fmt.Sprint("s", i)
		evs := []saga.Event{{Kind: saga.EvStart, ID: id, Name: "trip"}, {Kind: saga.EvStepDone, ID: id, Step: 0}}
		if i%3 == 0 {
			live = append(live, evs...)
		} else {
			evs = append(evs, saga.Event{Kind: saga.EvEnd, ID: id, Outcome: saga.Done})
		}
		all = append(all, evs...)
	}
	fill := func(fs *vfs.CrashFS) *saga.FileLog {
		t.Helper()
		l, err := saga.OpenFileLogWith(dir, saga.FileLogOptions{FS: fs, SegmentSize: 128})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range all {
			if err := l.Append(e); err != nil {
				t.Fatal(err)
			}
		}
		return l
	}
	// How many fsyncs a compaction makes.
	fs := vfs.NewCrashFS(1)
	l := fill(fs)
	n0 := fs.Syncs()
	if err := l.Compact(live); err != nil {
		t.Fatal(err)
	}
	syncs := fs.Syncs() - n0
	l.Close()
	if syncs < 2 {
		t.Fatalf("a compaction made %d fsyncs; want at least 2 (checkpoint, directory)", syncs)
	}
	for k := 1; k <= syncs+1; k++ {
		t.Run(fmt.Sprint("before-fsync-", k), func(t *testing.T) {
			for seed := uint64(1); seed <= 8; seed++ {
				fs := vfs.NewCrashFS(seed)
				l := fill(fs)
				var after *vfs.CrashFS
				left := k
				fs.SetSyncHook(func(string) {
					if left--; left == 0 {
						after = fs.Crash()
					}
				})
				err := l.Compact(live)
				if after == nil {
					if err != nil {
						t.Fatalf("Compact() = %v", err)
					}
					after = fs.Crash()
				}
				l.Close()
				l2, err := saga.OpenFileLogWith(dir, saga.FileLogOptions{FS: after, SegmentSize: 128})
				if err != nil {
					t.Fatalf("seed %d: reopen after the power cut: %v", seed, err)
				}
				got, err := l2.Load()
				if err != nil {
					t.Fatalf("seed %d: Load after the power cut: %v", seed, err)
				}
				if !reflect.DeepEqual(got, all) && !reflect.DeepEqual(got, live) {
					t.Fatalf("seed %d: Load after a power cut before fsync %d of the compaction = %d events; want the %d before or the %d live ones", seed, k, len(got), len(all), len(live))
				}
				if k == syncs+1 && !reflect.DeepEqual(got, live) {
					t.Fatalf("seed %d: a completed compaction was lost", seed)
				}
				// Appends after a compaction follow the live events.
				more := saga.Event{Kind: saga.EvStart, ID: "late", Name: "trip"}
				if err := l2.Append(more); err != nil {
					t.Fatal(err)
				}
				if err := l2.Compact(live); err != nil {
					t.Fatal(err)
				}
				if err := l2.Append(more); err != nil {
					t.Fatal(err)
				}
				l2.Close()
				final := after.Crash()
				l3, err := saga.OpenFileLogWith(dir, saga.FileLogOptions{FS: final, SegmentSize: 128})
				if err != nil {
					t.Fatal(err)
				}
				got, err = l3.Load()
				l3.Close()
				if want := append(append([]saga.Event(nil), live...), more); err != nil || !reflect.DeepEqual(got, want) {
					t.Fatalf("seed %d: after compacting and appending: %d events, %v; want %d", seed, len(got), err, len(want))
				}
			}
		})
	}
}

// TestFileLogRefusesDamagedCheckpoint: a checkpoint with a flipped bit is
// refused with ErrMalformed, never skipped (skipping it would lose the
// running sagas it holds).
func TestFileLogRefusesDamagedCheckpoint(t *testing.T) {
	fs := vfs.NewCrashFS(1)
	l, err := saga.OpenFileLogWith("/srv/saga", saga.FileLogOptions{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	live := []saga.Event{{Kind: saga.EvStart, ID: "s1", Name: "trip"}}
	if err := l.Compact(live); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if err := fs.Corrupt("/srv/saga/saga.checkpoint", 20, 0x04); err != nil {
		t.Fatal(err)
	}
	if _, err := saga.OpenFileLogWith("/srv/saga", saga.FileLogOptions{FS: fs}); !errors.Is(err, saga.ErrMalformed) {
		t.Fatalf("OpenFileLogWith(damaged checkpoint) = %v; want ErrMalformed", err)
	}
}

// TestFileLogZeroValue: a FileLog not made by OpenFileLog returns
// ErrInvalid from every method instead of panicking.
func TestFileLogZeroValue(t *testing.T) {
	for _, l := range []*saga.FileLog{nil, {}} {
		_, err := l.Load()
		for _, e := range []error{err, l.Append(saga.Event{Kind: saga.EvStart, ID: "x"}), l.Compact(nil), l.Close()} {
			if !errors.Is(e, saga.ErrInvalid) {
				t.Errorf("zero FileLog: %v; want ErrInvalid", e)
			}
		}
	}
}

// FuzzFileLogCheckpoint: whatever bytes the checkpoint file holds, opening
// the log either refuses them with ErrMalformed or accepts them, and then
// Load succeeds; never a panic.
func FuzzFileLogCheckpoint(f *testing.F) {
	// A valid checkpoint, as Compact writes it.
	fs := vfs.NewCrashFS(1)
	l, err := saga.OpenFileLogWith("/srv/saga", saga.FileLogOptions{FS: fs})
	if err != nil {
		f.Fatal(err)
	}
	if err := l.Compact([]saga.Event{{Kind: saga.EvStart, ID: "s1", Name: "trip"}, {Kind: saga.EvStepDone, ID: "s1"}}); err != nil {
		f.Fatal(err)
	}
	l.Close()
	valid, err := vfs.ReadFile(fs, "/srv/saga/saga.checkpoint")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(valid[:len(valid)-1])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		fs := vfs.NewCrashFS(1)
		if err := fs.MkdirAll("/srv/saga", 0o755); err != nil {
			t.Fatal(err)
		}
		file, err := fs.OpenFile("/srv/saga/saga.checkpoint", os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := file.Write(data); err != nil {
			t.Fatal(err)
		}
		file.Close()
		l, err := saga.OpenFileLogWith("/srv/saga", saga.FileLogOptions{FS: fs})
		if err != nil {
			if !errors.Is(err, saga.ErrMalformed) {
				t.Fatalf("OpenFileLogWith = %v; want nil or ErrMalformed", err)
			}
			return
		}
		defer l.Close()
		if _, err := l.Load(); err != nil {
			t.Fatalf("Load after an accepted open = %v", err)
		}
	})
}
