package wal_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/distkit/distkit/internal/wal"
	"pgregory.net/rapid"
)

func payload(i uint64) []byte {
	return []byte(fmt.Sprintf("record-%d-%s", i, bytes.Repeat([]byte{'x'}, int(i%13))))
}

func mustOpen(t *testing.T, dir string, segSize int64) *wal.Log {
	t.Helper()
	l, err := wal.Open(dir, wal.Options{SegmentSize: segSize})
	if err != nil {
		t.Fatalf("Open(%s) = %v", dir, err)
	}
	return l
}

// readAll returns every record in the log through Replay.
func readAll(t *testing.T, l *wal.Log) map[uint64][]byte {
	t.Helper()
	got := map[uint64][]byte{}
	if err := l.Replay(0, func(i uint64, p []byte) error {
		got[i] = bytes.Clone(p)
		return nil
	}); err != nil {
		t.Fatalf("Replay = %v", err)
	}
	return got
}

func TestAppendReadReopen(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, 256)
	if first, last := l.FirstIndex(), l.LastIndex(); first != 1 || last != 0 {
		t.Fatalf("empty log: First, Last = %d, %d; want 1, 0", first, last)
	}
	for i := uint64(1); i <= 40; i += 4 {
		last, err := l.Append(payload(i), payload(i+1), payload(i+2), payload(i+3))
		if err != nil || last != i+3 {
			t.Fatalf("Append = (%d, %v); want (%d, nil)", last, err, i+3)
		}
	}
	check := func(l *wal.Log) {
		t.Helper()
		for i := uint64(1); i <= 40; i++ {
			got, err := l.Read(i)
			if err != nil || !bytes.Equal(got, payload(i)) {
				t.Fatalf("Read(%d) = (%q, %v); want %q", i, got, err, payload(i))
			}
		}
		if _, err := l.Read(41); !errors.Is(err, wal.ErrNotFound) {
			t.Fatalf("Read(41) err = %v; want ErrNotFound", err)
		}
	}
	check(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append([]byte("x")); !errors.Is(err, wal.ErrClosed) {
		t.Fatalf("Append after Close err = %v; want ErrClosed", err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	if len(segs) < 3 {
		t.Fatalf("%d segments with SegmentSize 256; want several", len(segs))
	}
	l = mustOpen(t, dir, 256)
	defer l.Close()
	if l.LastIndex() != 40 {
		t.Fatalf("after reopen LastIndex = %d; want 40", l.LastIndex())
	}
	check(l)
	if got := readAll(t, l); len(got) != 40 {
		t.Fatalf("Replay saw %d records; want 40", len(got))
	}
}

func TestTruncateBackDeleteBeforeReset(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, 200)
	defer l.Close()
	for i := uint64(1); i <= 30; i++ {
		if _, err := l.Append(payload(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.TruncateBack(12); err != nil {
		t.Fatalf("TruncateBack(12) = %v", err)
	}
	if got := l.LastIndex(); got != 12 {
		t.Fatalf("LastIndex after TruncateBack(12) = %d; want 12", got)
	}
	last, err := l.Append([]byte("new-13"))
	if err != nil || last != 13 {
		t.Fatalf("Append after truncation = (%d, %v); want (13, nil)", last, err)
	}
	if err := l.DeleteBefore(10); err != nil {
		t.Fatalf("DeleteBefore(10) = %v", err)
	}
	if first := l.FirstIndex(); first > 10 || first == 1 {
		t.Fatalf("FirstIndex after DeleteBefore(10) = %d; want in (1, 10]", first)
	}
	if err := l.TruncateBack(100); !errors.Is(err, wal.ErrInvalidArgument) {
		t.Fatalf("TruncateBack(100) err = %v; want ErrInvalidArgument", err)
	}
	l.Close()

	l = mustOpen(t, dir, 200)
	got, err := l.Read(13)
	if err != nil || string(got) != "new-13" {
		t.Fatalf("Read(13) after reopen = (%q, %v); want new-13", got, err)
	}
	if err := l.Reset(500); err != nil {
		t.Fatalf("Reset(500) = %v", err)
	}
	if first, last := l.FirstIndex(), l.LastIndex(); first != 500 || last != 499 {
		t.Fatalf("after Reset(500): First, Last = %d, %d; want 500, 499", first, last)
	}
	if last, err := l.Append([]byte("a")); err != nil || last != 500 {
		t.Fatalf("Append after Reset = (%d, %v); want (500, nil)", last, err)
	}
	l.Close()
	l = mustOpen(t, dir, 200)
	defer l.Close()
	if first, last := l.FirstIndex(), l.LastIndex(); first != 500 || last != 500 {
		t.Fatalf("reopened after Reset: First, Last = %d, %d; want 500, 500", first, last)
	}
}

func TestConcurrentAppendersGroupCommit(t *testing.T) {
	l := mustOpen(t, t.TempDir(), 4096)
	defer l.Close()
	const writers, each = 16, 20
	var (
		mu   sync.Mutex // guards seen
		seen = map[uint64][]byte{}
		wg   sync.WaitGroup
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				p := []byte(fmt.Sprintf("w%d-%d", w, i))
				idx, err := l.Append(p)
				if err != nil {
					t.Errorf("Append = %v", err)
					return
				}
				mu.Lock()
				seen[idx] = p
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != writers*each {
		t.Fatalf("%d distinct indices; want %d", len(seen), writers*each)
	}
	for idx, p := range seen {
		got, err := l.Read(idx)
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("Read(%d) = (%q, %v); want %q", idx, got, err, p)
		}
	}
}

// TestCrashTornTail damages the last segment at random offsets (cutting it
// short or flipping a byte, as a crash mid-write or a bad sector would) and
// checks that Open keeps exactly the records before the damage.
func TestCorruptSealedSegmentFailsOpen(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, 100)
	for i := uint64(1); i <= 20; i++ {
		if _, err := l.Append(payload(i)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	first := filepath.Join(dir, "00000000000000000001.wal")
	data, _ := os.ReadFile(first)
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(first, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := wal.Open(dir, wal.Options{SegmentSize: 100}); !errors.Is(err, wal.ErrCorrupt) {
		t.Fatalf("Open with a damaged sealed segment err = %v; want ErrCorrupt", err)
	}
}

func TestOpenRejectsBadOptions(t *testing.T) {
	if _, err := wal.Open(t.TempDir(), wal.Options{SegmentSize: -1}); !errors.Is(err, wal.ErrInvalidArgument) {
		t.Fatalf("Open with SegmentSize -1 err = %v; want ErrInvalidArgument", err)
	}
}

// TestLogMatchesReference drives random operations, with reopenings in
// between, against a slice of records.
func TestLogMatchesReference(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		dir, err := os.MkdirTemp("", "waltest")
		if err != nil {
			rt.Fatal(err)
		}
		defer os.RemoveAll(dir)
		l, err := wal.Open(dir, wal.Options{SegmentSize: 64})
		if err != nil {
			rt.Fatal(err)
		}
		defer func() { l.Close() }()
		first := uint64(1)
		var model [][]byte // model[i] is record first+i
		for range rapid.IntRange(1, 25).Draw(rt, "ops") {
			switch rapid.IntRange(0, 5).Draw(rt, "op") {
			case 0, 1:
				recs := rapid.SliceOfN(rapid.SliceOfN(rapid.Byte(), 0, 40), 1, 4).Draw(rt, "recs")
				last, err := l.Append(recs...)
				if err != nil {
					rt.Fatalf("Append = %v", err)
				}
				model = append(model, recs...)
				if want := first + uint64(len(model)) - 1; last != want {
					rt.Fatalf("Append = %d; want %d", last, want)
				}
			case 2:
				keep := rapid.IntRange(0, len(model)).Draw(rt, "keep")
				if err := l.TruncateBack(first + uint64(keep) - 1); err != nil {
					rt.Fatalf("TruncateBack = %v", err)
				}
				model = model[:keep]
			case 3:
				cut := rapid.IntRange(0, len(model)).Draw(rt, "cut")
				if err := l.DeleteBefore(first + uint64(cut)); err != nil {
					rt.Fatalf("DeleteBefore = %v", err)
				}
				// Only whole segments go; the model learns the new start.
				newFirst := l.FirstIndex()
				if newFirst > first+uint64(cut) || newFirst < first {
					rt.Fatalf("FirstIndex after DeleteBefore(%d) = %d (was %d)", first+uint64(cut), newFirst, first)
				}
				model = model[newFirst-first:]
				first = newFirst
			case 4:
				next := first + uint64(rapid.IntRange(0, 50).Draw(rt, "skip"))
				if err := l.Reset(next); err != nil {
					rt.Fatalf("Reset = %v", err)
				}
				first, model = next, nil
			case 5:
				l.Close()
				if l, err = wal.Open(dir, wal.Options{SegmentSize: 64}); err != nil {
					rt.Fatalf("reopen = %v", err)
				}
			}
			if got, want := l.FirstIndex(), first; got != want {
				rt.Fatalf("FirstIndex = %d; want %d", got, want)
			}
			if got, want := l.LastIndex(), first+uint64(len(model))-1; got != want {
				rt.Fatalf("LastIndex = %d; want %d", got, want)
			}
			for i, want := range model {
				got, err := l.Read(first + uint64(i))
				if err != nil || !bytes.Equal(got, want) {
					rt.Fatalf("Read(%d) = (%x, %v); want %x", first+uint64(i), got, err, want)
				}
			}
		}
	})
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "snap")
	write := func(s string) func(io.Writer) error {
		return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
	}
	if err := wal.WriteFileAtomic(path, write("one")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := wal.WriteFileAtomic(path, func(w io.Writer) error {
		io.WriteString(w, "partial")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("WriteFileAtomic err = %v; want boom", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "one" {
		t.Fatalf("after a failed write the file holds %q; want one", got)
	}
	// A temp file left by a crash is cleaned up.
	if err := os.WriteFile(filepath.Join(dir, ".snap.123.tmp"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := wal.RemoveTempFiles(dir); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "snap" {
		t.Fatalf("directory after RemoveTempFiles holds %v; want only snap", entries)
	}
}

func TestRemoveTempFilesOf(t *testing.T) {
	dir := t.TempDir()
	files := []string{"log", ".log.123.tmp", ".log.9.tmp", ".other.1.tmp", ".log.tmp", "log.1.tmp"}
	for _, name := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := wal.RemoveTempFilesOf(filepath.Join(dir, "log")); err != nil {
		t.Fatal(err)
	}
	var got []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		got = append(got, e.Name())
	}
	want := []string{".log.tmp", ".other.1.tmp", "log", "log.1.tmp"} // only log's own temp files go
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("directory after RemoveTempFilesOf holds %v; want %v", got, want)
	}
}
