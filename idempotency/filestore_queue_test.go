package idempotency

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/distkit/distkit/clock"
	"github.com/distkit/distkit/internal/vfs"
)

// queueHarness runs a FileStore on a CrashFS inside a synctest bubble and
// holds its next fsync, so that a test can queue Complete and Begin calls
// behind it in the order it chooses.
type queueHarness struct {
	t    *testing.T
	clk  *clock.Manual
	fsys *vfs.CrashFS
	cfg  FileConfig
	s    *FileStore
}

const queuePath = "/idem/log"

func newQueueHarness(t *testing.T, compactMinFrames int) *queueHarness {
	t.Helper()
	clk := clock.NewManual(epoch)
	fsys := vfs.NewCrashFS(1)
	if err := vfs.MkdirAllDurable(fsys, "/idem"); err != nil {
		t.Fatal(err)
	}
	cfg := FileConfig{Clock: clk, CompactMinFrames: compactMinFrames, FS: fsys}
	return &queueHarness{t: t, clk: clk, fsys: fsys, cfg: cfg, s: mustFileStore(t, queuePath, cfg)}
}

// holdNextSync makes the next fsync wait until the returned function is
// called.
func (h *queueHarness) holdNextSync() (release func()) {
	held := make(chan struct{})
	var once sync.Once
	h.fsys.SetSyncHook(func(string) { once.Do(func() { <-held }) })
	return func() { close(held) }
}

// async runs f in a goroutine and returns its error through the channel.
func async(f func() error) <-chan error {
	done := make(chan error, 1) // one result
	go func() { done <- f() }()
	return done
}

func (h *queueHarness) begin(p Record) error {
	_, created, err := h.s.Begin(context.Background(), p)
	if err == nil && !created {
		return errors.New("not created")
	}
	return err
}

// reopen closes the store and opens it again from the file.
func (h *queueHarness) reopen() {
	h.t.Helper()
	h.fsys.SetSyncHook(nil)
	if err := h.s.Close(); err != nil {
		h.t.Fatalf("Close = %v", err)
	}
	h.s = mustFileStore(h.t, queuePath, h.cfg)
}

// TestFileStoreQueuedCompleteLosesToTakeover: a Complete queued behind an
// fsync, whose record expires and is taken over by a Begin before the
// Complete's batch is synced, gets ErrNotOwner and leaves the new owner's
// record, in memory and after reopening (replay applies the same rule).
func TestFileStoreQueuedCompleteLosesToTakeover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newQueueHarness(t, 1<<20)
		defer func() { h.s.Close() }()
		first := inProgress("k", "fp", 1, h.clk.Now(), time.Minute)
		if err := h.begin(first); err != nil {
			t.Fatalf("Begin(first) = %v", err)
		}
		release := h.holdNextSync()
		other := async(func() error { return h.begin(inProgress("other", "fp", 9, h.clk.Now(), time.Hour)) })
		synctest.Wait() // other's batch is being synced
		late := async(func() error {
			return h.s.Complete(context.Background(), completed(first, "late", h.clk.Now(), time.Hour))
		})
		synctest.Wait() // the first owner's Complete is queued
		h.clk.Advance(2 * time.Minute)
		second := inProgress("k", "fp", 2, h.clk.Now(), time.Minute)
		takeover := async(func() error { return h.begin(second) })
		synctest.Wait() // the takeover is queued behind it
		release()
		if err := <-other; err != nil {
			t.Fatalf("Begin(other) = %v", err)
		}
		if err := <-late; !errors.Is(err, ErrNotOwner) {
			t.Errorf("Complete by the owner whose record was taken over while it queued = %v; want ErrNotOwner", err)
		}
		if err := <-takeover; err != nil {
			t.Fatalf("Begin(takeover) = %v; want created", err)
		}
		if rec, ok, _ := h.s.Get(context.Background(), "k"); !ok || !sameRecord(rec, second) {
			t.Errorf("Get(k) = %+v, %v; want the new owner's in-progress record", rec, ok)
		}
		h.reopen()
		if rec, ok, _ := h.s.Get(context.Background(), "k"); !ok || !sameRecord(rec, second) {
			t.Errorf("after reopen Get(k) = %+v, %v; want the new owner's in-progress record", rec, ok)
		}
	})
}

// TestFileStoreQueuedCompleteOfCompactedRecord: a Complete queued behind an
// fsync whose record expired and was dropped by the compaction that
// followed that fsync gets ErrNotOwner, and the key stays free after
// reopening: replaying the logged Complete finds no record to complete.
func TestFileStoreQueuedCompleteOfCompactedRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The third frame triggers a compaction, which keeps two records;
		// the Complete's frame then makes three, short of twice two, so
		// no second compaction rewrites it away.
		h := newQueueHarness(t, 3)
		defer func() { h.s.Close() }()
		first := inProgress("k", "fp", 1, h.clk.Now(), time.Minute)
		if err := h.begin(first); err != nil {
			t.Fatalf("Begin(first) = %v", err)
		}
		if err := h.begin(inProgress("kept", "fp", 8, h.clk.Now(), time.Hour)); err != nil {
			t.Fatalf("Begin(kept) = %v", err)
		}
		release := h.holdNextSync()
		other := async(func() error { return h.begin(inProgress("other", "fp", 9, h.clk.Now(), time.Hour)) })
		synctest.Wait() // other's batch is being synced
		late := async(func() error {
			return h.s.Complete(context.Background(), completed(first, "late", h.clk.Now(), time.Hour))
		})
		synctest.Wait()                // the Complete is queued
		h.clk.Advance(2 * time.Minute) // first expires before the compaction
		release()
		if err := <-other; err != nil {
			t.Fatalf("Begin(other) = %v", err)
		}
		if err := <-late; !errors.Is(err, ErrNotOwner) {
			t.Errorf("Complete of a record compacted away while it queued = %v; want ErrNotOwner", err)
		}
		if st := h.s.Stats(); st.Compactions != 1 {
			t.Fatalf("Stats().Compactions = %d; want 1 (the test needs the compaction)", st.Compactions)
		}
		if rec, ok, _ := h.s.Get(context.Background(), "k"); ok {
			t.Errorf("Get(k) = %+v; want no record", rec)
		}
		h.reopen()
		if rec, ok, _ := h.s.Get(context.Background(), "k"); ok {
			t.Errorf("after reopen Get(k) = %+v; want no record (the Complete was refused)", rec)
		}
	})
}
