package wal_test

import (
	"bytes"
	"errors"
	"os"
	"path"
	"testing"

	"github.com/distkit/distkit/internal/vfs"
	"github.com/distkit/distkit/internal/wal"
)

// damagedLog is the log FuzzOpenDamaged damages: records in batches of
// varied sizes over several small segments.
type damagedLog struct {
	files   []string // segment names, in order
	data    [][]byte // their contents
	recs    [][]byte // payload of record i+1
	seg     []int    // segment of record i+1
	off     []int    // offset of record i+1 in its segment
	batch   []int    // batch number of record i+1
	segSize int64
}

func buildDamagedLog(t testing.TB) *damagedLog {
	fsys := vfs.NewCrashFS(0)
	d := &damagedLog{segSize: 700}
	l, err := wal.Open("/w", wal.Options{SegmentSize: d.segSize, FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	sizes := []int{1, 3, 1, 2, 5, 1, 1, 4, 2, 1, 3, 1}
	for b, n := range sizes {
		var batch [][]byte
		for range n {
			i := len(d.recs) + 1
			p := payload(uint64(i * 7))
			batch = append(batch, p)
			d.recs = append(d.recs, p)
			d.batch = append(d.batch, b)
		}
		if _, err := l.Append(batch...); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	des, err := fsys.ReadDir("/w")
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		b, err := vfs.ReadFile(fsys, path.Join("/w", de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		d.files = append(d.files, de.Name())
		d.data = append(d.data, b)
	}
	// Locate every record.
	for s, b := range d.data {
		for off := 0; off < len(b); {
			idx, _, n, err := wal.DecodeRecord(b[off:])
			if err != nil {
				t.Fatal(err)
			}
			for len(d.seg) < int(idx) {
				d.seg, d.off = append(d.seg, 0), append(d.off, 0)
			}
			d.seg[idx-1], d.off[idx-1] = s, off
			off += n
		}
	}
	return d
}

// FuzzOpenDamaged damages a log written with known records (byte flips and
// truncations anywhere in its segments) and opens it. Open must either
// refuse with ErrCorrupt or open with every record it holds intact; and if
// it holds fewer records than were written, the loss must be a torn tail:
// the first damaged record is in the last segment, and no undamaged record
// of a later write batch follows it. Never garbage, never a silent loss of
// records a crash could not have taken.
func FuzzOpenDamaged(f *testing.F) {
	d := buildDamagedLog(f)
	f.Add([]byte{0, 0, 40, 1})                  // flip in the first segment
	f.Add([]byte{1, 0xff, 0xf0, 0})             // cut near the end
	f.Add([]byte{0, 0xff, 0xf0, 0x80})          // flip near the end
	f.Add([]byte{0, 0x10, 0, 4, 1, 0x20, 0, 0}) // flip then cut
	f.Add([]byte{2, 0, 0, 0})                   // garbage after the end
	{
		// The same flip twice leaves record 10 intact; a cut of the last
		// byte then tears the tail. Only real damage counts.
		total := 0
		for _, b := range d.data {
			total += len(b)
		}
		p, c := d.off[9]+3, total-1
		f.Add([]byte{0, byte(p >> 8), byte(p), 0x5a, 0, byte(p >> 8), byte(p), 0x5a, 1, byte(c >> 8), byte(c), 0})
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		data := make([][]byte, len(d.data))
		for i := range d.data {
			data[i] = bytes.Clone(d.data[i])
		}
		total := 0
		for _, b := range d.data {
			total += len(b)
		}
		for len(ops) >= 4 {
			kind, pos, mask := ops[0]%3, (int(ops[1])<<8|int(ops[2]))%total, ops[3]
			ops = ops[4:]
			s := 0
			for pos >= len(d.data[s]) {
				pos -= len(d.data[s])
				s++
			}
			switch kind {
			case 0:
				if mask == 0 || pos >= len(data[s]) {
					continue
				}
				data[s][pos] ^= mask
			case 1:
				if pos >= len(data[s]) {
					continue
				}
				data[s] = data[s][:pos]
			case 2:
				last := len(data) - 1
				data[last] = append(data[last], bytes.Repeat([]byte{mask}, int(ops4(pos)))...)
			}
		}
		// A record is damaged if its bytes now differ or were cut: two
		// flips of the same byte with the same mask cancel out.
		damaged := make([]bool, len(d.recs))
		for i := range d.recs {
			s, lo, hi := d.seg[i], d.off[i], d.off[i]+wal.RecordSize(len(d.recs[i]))
			damaged[i] = len(data[s]) < hi || !bytes.Equal(data[s][lo:hi], d.data[s][lo:hi])
		}
		fsys := vfs.NewCrashFS(0)
		if err := fsys.MkdirAll("/w", 0o755); err != nil {
			t.Fatal(err)
		}
		for i, name := range d.files {
			f, err := fsys.OpenFile(path.Join("/w", name), os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			f.Write(data[i])
			f.Close()
		}
		l, err := wal.Open("/w", wal.Options{SegmentSize: d.segSize, FS: fsys})
		if err != nil {
			if !errors.Is(err, wal.ErrCorrupt) {
				t.Fatalf("Open = %v; want success or ErrCorrupt", err)
			}
			return
		}
		defer l.Close()
		first := len(d.recs) // first damaged record (0-based), or len if none
		for i, bad := range damaged {
			if bad {
				first = i
				break
			}
		}
		last := int(l.LastIndex())
		if l.FirstIndex() != 1 {
			t.Fatalf("FirstIndex = %d; want 1", l.FirstIndex())
		}
		for i := 1; i <= last; i++ {
			got, err := l.Read(uint64(i))
			if err != nil || !bytes.Equal(got, d.recs[i-1]) {
				t.Fatalf("record %d = %q, %v; want %q (garbage accepted)", i, got, err, d.recs[i-1])
			}
		}
		if last == len(d.recs) {
			return
		}
		if last < first {
			t.Fatalf("opened with %d records; the first damaged one is %d: undamaged records lost", last, first+1)
		}
		if d.seg[first] != len(d.files)-1 {
			t.Fatalf("opened with %d of %d records after damage to record %d in sealed segment %s", last, len(d.recs), first+1, d.files[d.seg[first]])
		}
		for i := first + 1; i < len(d.recs); i++ {
			if d.batch[i] != d.batch[first] && d.batch[i] != d.batch[i-1] && !damaged[i] {
				t.Fatalf("opened with %d of %d records, but record %d of a later batch than damaged record %d is intact: corruption passed for a torn tail", last, len(d.recs), i+1, first+1)
			}
		}
	})
}

// ops4 turns a position into a small garbage length.
func ops4(pos int) int { return 1 + pos%600 }
