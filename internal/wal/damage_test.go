package wal_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/distkit/distkit/internal/vfs"
	"github.com/distkit/distkit/internal/wal"
)

// segPath is the file of the segment whose first record is first.
func segPath(dir string, first uint64) string {
	return filepath.Join(dir, fmtSegment(first))
}

func fmtSegment(first uint64) string {
	b := []byte("00000000000000000000.wal")
	for i := 19; first > 0; i-- {
		b[i] = byte('0' + first%10)
		first /= 10
	}
	return string(b)
}

// writeBatches writes a log in dir, one Append per batch, and returns the
// byte offset at which each record starts in its segment and the segment
// each record is in (by first index).
func writeBatches(t *testing.T, dir string, segSize int64, batches [][]uint64) {
	t.Helper()
	l := mustOpen(t, dir, segSize)
	defer l.Close()
	for _, b := range batches {
		var recs [][]byte
		for _, i := range b {
			recs = append(recs, payload(i))
		}
		if _, err := l.Append(recs...); err != nil {
			t.Fatal(err)
		}
	}
}

// offsetOf returns the offset of record i in a single segment holding
// records 1..i written in order.
func offsetOf(i uint64) int64 {
	var off int64
	for j := uint64(1); j < i; j++ {
		off += int64(wal.RecordSize(len(payload(j))))
	}
	return off
}

// TestOpenTornTailVersusCorruption: the table of damage cases. A torn tail
// (the last write batch damaged with nothing of a later batch after it) is
// cut off; any other damage is refused with a *CorruptError naming the file
// and offset.
func TestOpenTornTailVersusCorruption(t *testing.T) {
	// Ten one-record batches, then one batch of records 11..15.
	single := [][]uint64{{1}, {2}, {3}, {4}, {5}, {6}, {7}, {8}, {9}, {10}, {11, 12, 13, 14, 15}}
	tests := []struct {
		name    string
		segSize int64
		damage  func(t *testing.T, dir string) // damages the files in dir
		want    uint64                         // LastIndex after a successful Open
		corrupt string                         // if set, Open must refuse naming this file
		offset  int64                          // and this offset
	}{
		{
			name:    "flip in the middle of the last segment with valid batches after",
			segSize: 1 << 20,
			damage:  flipAt(1, offsetOf(5)+20),
			corrupt: fmtSegment(1), offset: offsetOf(5),
		},
		{
			name:    "flip in a header in the middle of the last segment",
			segSize: 1 << 20,
			damage:  flipAt(1, offsetOf(3)+5),
			corrupt: fmtSegment(1), offset: offsetOf(3),
		},
		{
			name:    "flip in a sealed segment",
			segSize: 100,
			damage: func(t *testing.T, dir string) {
				flipAt(1, 20)(t, dir)
			},
			corrupt: fmtSegment(1), offset: 0,
		},
		{
			name:    "flip in the last record of a sealed segment",
			segSize: 100,
			damage: func(t *testing.T, dir string) {
				flipAt(1, lastRecordOffset(t, segPath(dir, 1))+17)(t, dir)
			},
			corrupt: fmtSegment(1), offset: -1, // checked below
		},
		{
			name:    "cut mid-record at the end",
			segSize: 1 << 20,
			damage:  cutAt(1, offsetOf(15)+7),
			want:    14,
		},
		{
			name:    "cut mid-header at the end",
			segSize: 1 << 20,
			damage:  cutAt(1, offsetOf(15)+3),
			want:    14,
		},
		{
			name:    "flip in the last record",
			segSize: 1 << 20,
			damage:  flipAt(1, offsetOf(15)+17),
			want:    14,
		},
		{
			name:    "torn last batch: a middle record bad, later ones of the batch intact",
			segSize: 1 << 20,
			damage:  flipAt(1, offsetOf(12)+18),
			want:    11,
		},
		{
			name:    "zeros appended after the last record",
			segSize: 1 << 20,
			damage:  appendBytes(1, make([]byte, 4096)),
			want:    15,
		},
		{
			name:    "garbage appended after the last record",
			segSize: 1 << 20,
			damage:  appendBytes(1, garbage(3000)),
			want:    15,
		},
		{
			name:    "first record of the last batch bad",
			segSize: 1 << 20,
			damage:  flipAt(1, offsetOf(11)+16),
			want:    10,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeBatches(t, dir, tt.segSize, single)
			tt.damage(t, dir)
			l, err := wal.Open(dir, wal.Options{SegmentSize: tt.segSize})
			if tt.corrupt != "" {
				if err == nil {
					defer l.Close()
				}
				var ce *wal.CorruptError
				if !errors.Is(err, wal.ErrCorrupt) || !errors.As(err, &ce) {
					t.Fatalf("Open = %v; want a *CorruptError matching ErrCorrupt", err)
				}
				if tt.offset < 0 {
					tt.offset = lastRecordOffset(t, ce.File)
				}
				if filepath.Base(ce.File) != tt.corrupt || ce.Offset != tt.offset {
					t.Fatalf("CorruptError names %s at %d; want %s at %d", ce.File, ce.Offset, tt.corrupt, tt.offset)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open = %v; want the torn tail cut off", err)
			}
			defer l.Close()
			if got := l.LastIndex(); got != tt.want {
				t.Fatalf("LastIndex = %d; want %d", got, tt.want)
			}
			for i := uint64(1); i <= tt.want; i++ {
				if got, err := l.Read(i); err != nil || !bytes.Equal(got, payload(i)) {
					t.Fatalf("Read(%d) = (%q, %v); want %q", i, got, err, payload(i))
				}
			}
		})
	}
}

// lastRecordOffset returns the offset of the last record of the segment
// file at path, found from the record lengths (checksums not checked).
func lastRecordOffset(t *testing.T, path string) int64 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var off, last int64
	for off+16 <= int64(len(data)) {
		last = off
		off += 16 + int64(uint32(data[off+4])|uint32(data[off+5])<<8|uint32(data[off+6])<<16)
	}
	return last
}

func flipAt(seg uint64, off int64) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		t.Helper()
		p := segPath(dir, seg)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		data[off] ^= 0x10
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func cutAt(seg uint64, off int64) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		t.Helper()
		if err := os.Truncate(segPath(dir, seg), off); err != nil {
			t.Fatal(err)
		}
	}
}

func appendBytes(seg uint64, b []byte) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		t.Helper()
		f, err := os.OpenFile(segPath(dir, seg), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.Write(b); err != nil {
			t.Fatal(err)
		}
	}
}

func garbage(n int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// TestOpenRefusesFlipAt100000: the case of issue 13. One flipped byte at
// offset 100000 of a ~135 KB segment used to cut off the 35 KB of valid
// records after it with only a warning; now Open refuses, naming the
// segment and the offset of the damaged record.
func TestOpenRefusesFlipAt100000(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, 64<<20)
	rec := bytes.Repeat([]byte("v"), 59) // 75-byte records, as a small kvstore PUT
	var starts []int64
	var off int64
	for off < 135_000 {
		if _, err := l.Append(rec); err != nil {
			t.Fatal(err)
		}
		starts = append(starts, off)
		off += int64(wal.RecordSize(len(rec)))
	}
	last := l.LastIndex()
	l.Close()
	flipAt(1, 100_000)(t, dir)
	l, err := wal.Open(dir, wal.Options{})
	if err == nil {
		t.Fatalf("Open after a flip at offset 100000 succeeded with LastIndex %d of %d; want ErrCorrupt", l.LastIndex(), last)
	}
	var ce *wal.CorruptError
	if !errors.As(err, &ce) || !errors.Is(err, wal.ErrCorrupt) {
		t.Fatalf("Open = %v; want a *CorruptError", err)
	}
	k := sort.Search(len(starts), func(i int) bool { return starts[i] > 100_000 }) - 1
	if ce.File != segPath(dir, 1) || ce.Offset != starts[k] {
		t.Fatalf("CorruptError names %s at %d; want %s at %d", ce.File, ce.Offset, segPath(dir, 1), starts[k])
	}
	t.Logf("refused: %v", err)
}

// TestCrashTornTail damages one single-record-batch segment at random
// places: a cut anywhere keeps exactly the records wholly before it; a flip
// in the last record is cut off with it; a flip anywhere else is refused.
func TestCrashTornTail(t *testing.T) {
	src := t.TempDir()
	l := mustOpen(t, src, 1<<20) // one segment
	const n = 50
	var ends []int64 // ends[i] = byte offset after record i+1
	var off int64
	for i := uint64(1); i <= n; i++ {
		if _, err := l.Append(payload(i)); err != nil {
			t.Fatal(err)
		}
		off += int64(wal.RecordSize(len(payload(i))))
		ends = append(ends, off)
	}
	l.Close()
	orig, err := os.ReadFile(segPath(src, 1))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for trial := range 60 {
		dir := t.TempDir()
		data := bytes.Clone(orig)
		at := rng.Int64N(int64(len(data)))
		cut := trial%2 == 0
		if cut {
			data = data[:at]
		} else {
			data[at] ^= byte(1 + rng.IntN(255))
		}
		if err := os.WriteFile(segPath(dir, 1), data, 0o644); err != nil {
			t.Fatal(err)
		}
		// The record holding the damaged byte, counted from 0.
		k := uint64(sort.Search(len(ends), func(i int) bool { return ends[i] > at }))
		l, err := wal.Open(dir, wal.Options{SegmentSize: 1 << 20})
		if !cut && k < n-1 {
			if !errors.Is(err, wal.ErrCorrupt) {
				t.Fatalf("trial %d: flip at %d in record %d of %d: Open = %v; want ErrCorrupt", trial, at, k+1, n, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("trial %d: damage at %d: Open = %v", trial, at, err)
		}
		if got := l.LastIndex(); got != k {
			t.Fatalf("trial %d: damage at %d: LastIndex = %d; want %d", trial, at, got, k)
		}
		for i := uint64(1); i <= k; i++ {
			if got, err := l.Read(i); err != nil || !bytes.Equal(got, payload(i)) {
				t.Fatalf("trial %d: Read(%d) = (%q, %v); want %q", trial, i, got, err, payload(i))
			}
		}
		// The log is writable again, and the cut was made durable.
		if last, err := l.Append([]byte("after")); err != nil || last != k+1 {
			t.Fatalf("trial %d: Append = (%d, %v); want (%d, nil)", trial, last, err, k+1)
		}
		l.Close()
		l = mustOpen(t, dir, 1<<20)
		if got, err := l.Read(k + 1); err != nil || string(got) != "after" {
			t.Fatalf("trial %d: reopened Read(%d) = (%q, %v); want after", trial, k+1, got, err)
		}
		l.Close()
	}
}

// TestOpenWithFlippedReads: a read that returns a flipped bit must not make
// Open cut acknowledged records off as a torn tail: it reads a segment
// again before truncating it and refuses if the two reads differ. Replay
// catches a flipped read by its checksum.
func TestOpenWithFlippedReads(t *testing.T) {
	for seed := uint64(1); seed <= 40; seed++ {
		fsys := vfs.NewCrashFS(seed)
		l, err := wal.Open("/w", wal.Options{FS: fsys})
		if err != nil {
			t.Fatal(err)
		}
		for i := uint64(1); i <= 20; i++ {
			if _, err := l.Append(payload(i)); err != nil {
				t.Fatal(err)
			}
		}
		l.Close()
		seg := segPath("/w", 1)
		if seed%2 == 0 {
			fsys.FlipBitsOnRead(seg, 1) // anywhere in the first read
		} else {
			// In the last record, where a bad record looks like a torn tail.
			fsys.FlipBitOnReadAt(seg, offsetOf(20)+int64(seed%20))
		}
		l, err = wal.Open("/w", wal.Options{FS: fsys})
		if err != nil {
			if !errors.Is(err, wal.ErrCorrupt) {
				t.Fatalf("seed %d: Open with a flipped read = %v; want success or ErrCorrupt", seed, err)
			}
			continue
		}
		if got := l.LastIndex(); got != 20 {
			t.Fatalf("seed %d: Open with a flipped read kept %d of 20 records", seed, got)
		}
		fsys.FlipBitsOnRead(seg, 1)
		if err := l.Replay(1, func(uint64, []byte) error { return nil }); !errors.Is(err, wal.ErrCorrupt) {
			t.Fatalf("seed %d: Replay with a flipped read = %v; want ErrCorrupt", seed, err)
		}
		l.Close()
	}
}
