package idempotency

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distkit/distkit/clock"
	"github.com/distkit/distkit/internal/wal"
)

// written is what the crash test remembers of each record it wrote.
type written struct {
	begun    Record
	done     Record // zero unless Complete was acknowledged
	aborted  bool
	ackBytes int64 // log size when the last acknowledged change was synced
}

// TestFileStoreCrash writes records, then "crashes" at a random point: it
// copies the log as it is on disk without closing the store, cuts the copy
// at a random offset (a torn write) and sometimes appends garbage or flips
// a byte after the cut. Reopening the copy must show every acknowledged
// record that lies before the cut, intact, and nothing that was not written
// in full.
func TestFileStoreCrash(t *testing.T) {
	forSeeds(t, 40, 1000, crashTrial)
}

func crashTrial(t *testing.T, seed uint64) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 2))
	dir := t.TempDir()
	clk := clock.NewManual(epoch)
	// The crash below is a process crash (the file keeps what was written,
	// then is cut at a random offset), which fsync cannot influence.
	cfg := FileConfig{Clock: clk, CompactMinFrames: 8 + rng.IntN(64), skipFsync: true}
	s := mustFileStore(t, filepath.Join(dir, "log"), cfg)
	defer s.Close()

	recs := map[string]*written{}
	compactions := uint64(0)
	steps := 10 + rng.IntN(120)
	for i := range steps {
		key := fmt.Sprint("key-", i)
		now := clk.Now()
		p := inProgress(key, fmt.Sprint("fp-", i), rng.Uint64(), now, time.Hour)
		if _, created, err := s.Begin(ctx, p); !created || err != nil {
			t.Fatalf("Begin(%q) = %v, %v", key, created, err)
		}
		w := &written{begun: p, ackBytes: s.Stats().LogBytes}
		recs[key] = w
		switch rng.IntN(4) {
		case 0: // left in progress, as by a crash mid-operation
		case 1:
			if err := s.Abort(ctx, key, p.Token); err != nil {
				t.Fatalf("Abort(%q) = %v", key, err)
			}
			w.aborted = true
		default:
			result := bytes.Repeat([]byte{byte(i)}, rng.IntN(300))
			done := completed(p, string(result), now, 24*time.Hour)
			if err := s.Complete(ctx, done); err != nil {
				t.Fatalf("Complete(%q) = %v", key, err)
			}
			w.done = done
		}
		st := s.Stats()
		w.ackBytes = st.LogBytes
		if st.Compactions != compactions {
			// Just compacted (after applying this step's change): records
			// were rewritten in no particular order into a log of this size.
			compactions = st.Compactions
			for _, o := range recs {
				o.ackBytes = st.LogBytes
			}
		}
	}

	// Crash: take the log as it is, without Close.
	data, err := os.ReadFile(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	cut := int64(rng.IntN(len(data) + 1))
	crashed := append([]byte(nil), data[:cut]...)
	switch rng.IntN(3) {
	case 0: // clean cut
	case 1:
		garbage := make([]byte, 1+rng.IntN(40))
		for i := range garbage {
			garbage[i] = byte(rng.Uint32())
		}
		crashed = append(crashed, garbage...)
	case 2:
		if cut > int64(len(logMagic)) { // a torn sector inside the last frame
			crashed[cut-1-int64(rng.IntN(int(cut)-len(logMagic)))%8] ^= 0xff
			cut = 0 // anything may be lost now; only check that nothing false appears
		}
	}
	path2 := filepath.Join(dir, "crashed")
	if err := os.WriteFile(path2, crashed, 0o644); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenFileStore(path2, cfg)
	if err != nil {
		if len(crashed) < len(logMagic) {
			// Garbage after a short header prefix is not an idempotency log.
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("OpenFileStore(garbage) = %v; want ErrCorrupt", err)
			}
			return
		}
		t.Fatalf("OpenFileStore(crashed) = %v", err)
	}
	defer s2.Close()

	for key, w := range recs {
		got, ok, err := s2.Get(ctx, key)
		if err != nil {
			t.Fatalf("Get(%q) = %v", key, err)
		}
		switch {
		case ok && !(sameRecord(got, w.begun) || sameRecord(got, w.done)):
			t.Fatalf("Get(%q) = %+v; not a record that was written (partial or corrupt)", key, got)
		case ok && w.aborted && w.ackBytes <= cut:
			t.Fatalf("Get(%q) = %+v; its Abort was acknowledged before the cut", key, got)
		case w.done.Status == StatusCompleted && w.ackBytes <= cut && (!ok || !sameRecord(got, w.done)):
			t.Fatalf("Get(%q) = %+v, %v; want the completed record acknowledged at %d ≤ cut %d", key, got, ok, w.ackBytes, cut)
		}
	}
	// The recovered store accepts writes and keeps them.
	p := inProgress("after-crash", "fp", 1, clk.Now(), time.Hour)
	if _, created, err := s2.Begin(ctx, p); !created || err != nil {
		t.Fatalf("Begin after recovery = %v, %v", created, err)
	}
	if err := s2.Complete(ctx, completed(p, "ok", clk.Now(), time.Hour)); err != nil {
		t.Fatalf("Complete after recovery = %v", err)
	}
	s2.Close()
	s3 := mustFileStore(t, path2, cfg)
	defer s3.Close()
	if got, ok, _ := s3.Get(ctx, "after-crash"); !ok || string(got.Result) != "ok" {
		t.Fatalf("record written after recovery = %+v, %v; want it kept", got, ok)
	}
	if st := s3.Stats(); st.TruncatedBytes != 0 {
		t.Errorf("second reopen truncated %d bytes; want 0", st.TruncatedBytes)
	}
}

// TestFileStoreGroupCommit runs concurrent writers and checks that they
// shared fsyncs and that every acknowledged record survives a crash.
func TestFileStoreGroupCommit(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := DefaultFileConfig()
	cfg.CompactMinFrames = 200 // compact under concurrency too
	s := mustFileStore(t, filepath.Join(dir, "log"), cfg)
	defer s.Close()
	const writers, each = 32, 20
	var wg sync.WaitGroup
	var mu sync.Mutex // guards acked
	acked := map[string]Record{}
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				now := time.Now()
				p := inProgress(fmt.Sprintf("w%d-%d", w, i), "fp", rand.Uint64(), now, time.Hour)
				if _, _, err := s.Begin(ctx, p); err != nil {
					t.Errorf("Begin: %v", err)
					return
				}
				done := completed(p, fmt.Sprint(w, i), now, time.Hour)
				if err := s.Complete(ctx, done); err != nil {
					t.Errorf("Complete: %v", err)
					return
				}
				mu.Lock()
				acked[p.Key] = done
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	st := s.Stats()
	if st.FramesWritten != 2*writers*each {
		t.Errorf("FramesWritten = %d; want %d", st.FramesWritten, 2*writers*each)
	}
	if st.Syncs >= st.FramesWritten {
		t.Errorf("Syncs = %d for %d frames; want fewer (group commit)", st.Syncs, st.FramesWritten)
	}
	t.Logf("stats: %+v (%.1f frames per fsync)", st, float64(st.FramesWritten)/float64(st.Syncs))

	data, err := os.ReadFile(filepath.Join(dir, "log")) // crash: no Close
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "copy"), data, 0o644)
	s2 := mustFileStore(t, filepath.Join(dir, "copy"), cfg)
	defer s2.Close()
	for k, want := range acked {
		if got, ok, _ := s2.Get(ctx, k); !ok || !sameRecord(got, want) {
			t.Fatalf("after crash Get(%q) = %+v, %v; want %+v", k, got, ok, want)
		}
	}
}

func TestFileStoreCompactionBoundsTheLog(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewManual(epoch)
	path := filepath.Join(t.TempDir(), "log")
	cfg := FileConfig{Clock: clk, CompactMinFrames: 50}
	s := mustFileStore(t, path, cfg)
	for i := range 1000 {
		p := inProgress(fmt.Sprint("k", i), "fp", 7, clk.Now(), time.Minute)
		s.Begin(ctx, p)
		if err := s.Complete(ctx, completed(p, "r", clk.Now(), 10*time.Minute)); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
	}
	st := s.Stats()
	// Only the last ~600 records (10 minutes at one per second) are live.
	if st.Compactions == 0 || st.Frames > 4*600 || st.Records > 2*600 {
		t.Errorf("Stats() = %+v; want compactions keeping the log near the live set", st)
	}
	s.Close()
	s = mustFileStore(t, path, cfg)
	defer s.Close()
	for i := 999; i > 999-590; i-- {
		if _, ok, _ := s.Get(ctx, fmt.Sprint("k", i)); !ok {
			t.Fatalf("live record k%d lost across compaction and reopen", i)
		}
	}
	if entries, err := os.ReadDir(filepath.Dir(path)); err != nil || len(entries) != 2 {
		t.Errorf("directory after compactions holds %v (%v); want only the log and its lock (no temporary file left behind)", entries, err)
	}
}

func TestFileStoreOpenErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content []byte
		wantErr error
	}{
		{"not a log", []byte("hello, world, this is text"), ErrCorrupt},
		{"short garbage", []byte("xy"), ErrCorrupt},
		{"older format", []byte("DKIDEMP1\x05\x00\x00\x00"), ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name)
			os.WriteFile(path, tt.content, 0o644)
			if s, err := OpenFileStore(path, DefaultFileConfig()); !errors.Is(err, tt.wantErr) {
				if s != nil {
					s.Close()
				}
				t.Errorf("OpenFileStore(%s) = %v; want %v", tt.name, err, tt.wantErr)
			}
		})
	}
	// A header torn during creation is repaired: nothing was acknowledged.
	path := filepath.Join(dir, "torn-header")
	os.WriteFile(path, []byte(logMagic[:3]), 0o644)
	s, err := OpenFileStore(path, DefaultFileConfig())
	if err != nil {
		t.Fatalf("OpenFileStore(torn header) = %v; want it repaired", err)
	}
	s.Close()
	if _, err := OpenFileStore("", DefaultFileConfig()); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("OpenFileStore(\"\") = %v; want ErrInvalidConfig", err)
	}
	if _, err := OpenFileStore(filepath.Join(dir, "x"), FileConfig{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("OpenFileStore(zero config) = %v; want ErrInvalidConfig", err)
	}
	if _, err := OpenFileStore(filepath.Join(dir, "no-such-dir", "x"), DefaultFileConfig()); err == nil {
		t.Errorf("OpenFileStore in a missing directory succeeded")
	}
}

func TestFileStoreClosed(t *testing.T) {
	ctx := context.Background()
	s := mustFileStore(t, filepath.Join(t.TempDir(), "log"), DefaultFileConfig())
	s.Close()
	p := inProgress("k", "fp", 1, time.Now(), time.Minute)
	if _, _, err := s.Begin(ctx, p); !errors.Is(err, ErrClosed) {
		t.Errorf("Begin after Close = %v; want ErrClosed", err)
	}
	if _, _, err := s.Get(ctx, "k"); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close = %v; want ErrClosed", err)
	}
	if err := s.Complete(ctx, completed(p, "", time.Now(), time.Minute)); !errors.Is(err, ErrClosed) {
		t.Errorf("Complete after Close = %v; want ErrClosed", err)
	}
	if err := s.Abort(ctx, "k", 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Abort after Close = %v; want ErrClosed", err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close = %v; want ErrClosed", err)
	}
}

// TestDoSurvivesRestart runs an operation through a Runner on a FileStore,
// restarts both, and checks that the retry is a replay.
func TestDoSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "log")
	var runs atomic.Int64
	for attempt := range 3 {
		s := mustFileStore(t, path, DefaultFileConfig())
		r, err := NewRunner[int](s, JSONCodec[int]{}, DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		v, out, err := r.DoOutcome(ctx, "charge-1", "fp", counter(&runs))
		want := Replayed
		if attempt == 0 {
			want = Executed
		}
		if v != 1 || out != want || err != nil {
			t.Fatalf("attempt %d: DoOutcome = %d, %v, %v; want 1, %v, nil", attempt, v, out, err, want)
		}
		r.Close()
		s.Close()
	}
}

// TestFileStoreFailsAfterWriteError checks that a failed write or fsync
// makes the store refuse everything after it: the file's state is unknown.
func TestFileStoreFailsAfterWriteError(t *testing.T) {
	ctx := context.Background()
	s := mustFileStore(t, filepath.Join(t.TempDir(), "log"), DefaultFileConfig())
	s.mu.Lock()
	s.f.Close() // the next write fails, as on a dead disk
	s.mu.Unlock()
	p := inProgress("k", "fp", 1, time.Now(), time.Minute)
	if _, _, err := s.Begin(ctx, p); !errors.Is(err, ErrStoreFailed) {
		t.Fatalf("Begin on a failed disk = %v; want ErrStoreFailed", err)
	}
	if _, _, err := s.Get(ctx, "k"); !errors.Is(err, ErrStoreFailed) {
		t.Errorf("Get after failure = %v; want ErrStoreFailed", err)
	}
	if err := s.Complete(ctx, completed(p, "r", time.Now(), time.Hour)); !errors.Is(err, ErrStoreFailed) {
		t.Errorf("Complete after failure = %v; want ErrStoreFailed", err)
	}
	s.Close()
}

// TestFileStoreRemovesStaleCompactionFile: a crash during compaction leaves
// the temporary file; opening the store deletes it and nothing else.
func TestFileStoreRemovesStaleCompactionFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "log")
	s := mustFileStore(t, path, DefaultFileConfig())
	s.Close()
	for _, name := range []string{".log.12345.tmp", "other"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s = mustFileStore(t, path, DefaultFileConfig())
	defer s.Close()
	var got []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if want := []string{"log", "log.lock", "other"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("directory after OpenFileStore holds %v; want %v", got, want)
	}
}

// TestFileStoreOversizeResultIsOmitted: a result too large for one log frame
// is stored as omitted, and the records logged after it survive a reopen.
func TestFileStoreOversizeResultIsOmitted(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewManual(epoch)
	path := filepath.Join(t.TempDir(), "log")
	cfg := FileConfig{Clock: clk, CompactMinFrames: 4096}
	s := mustFileStore(t, path, cfg)
	big := inProgress("big", "fp", 1, clk.Now(), time.Minute)
	s.Begin(ctx, big)
	rec := completed(big, "", clk.Now(), time.Hour)
	rec.Result = make([]byte, wal.MaxFrameSize)
	if err := s.Complete(ctx, rec); err != nil {
		t.Fatal(err)
	}
	after := inProgress("after", "fp", 2, clk.Now(), time.Minute)
	if _, ok, err := s.Begin(ctx, after); !ok || err != nil {
		t.Fatalf("Begin(after) = %v, %v; want true, nil", ok, err)
	}
	s.Close()
	s = mustFileStore(t, path, cfg)
	defer s.Close()
	got, ok, _ := s.Get(ctx, "big")
	if !ok || !got.Omitted || got.Result != nil || got.Status != StatusCompleted {
		t.Fatalf("Get(big) = %+v, %v; want a completed record with its result omitted", got, ok)
	}
	if _, ok, _ := s.Get(ctx, "after"); !ok {
		t.Fatal("record logged after the oversize one lost on reopen")
	}
}
