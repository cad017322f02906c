package consensus

import (
	"bytes"
	"errors"
	"os"
	"path"
	"testing"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/internal/vfs"
)

// damagedDir is the data directory FuzzOpenDamaged damages.
type damagedDir struct {
	names  []string // files (hard state, snapshot, segments), sorted
	data   [][]byte
	hs     raft.HardState // as saved (Commit as persisted)
	snap   raft.Snapshot
	ents   map[uint64]raft.Entry
	last   uint64
	segLen int64
}

const fuzzDir = "/data/n1"

func buildDamagedDir(t testing.TB) *damagedDir {
	fsys := vfs.NewCrashFS(0)
	d := &damagedDir{ents: map[uint64]raft.Entry{}, segLen: 400}
	s, err := OpenDiskStorage(fuzzDir, DiskOptions{SegmentSize: d.segLen, RetainEntries: 100, FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	save := func(hs raft.HardState, es []raft.Entry) {
		if err := s.Save(hs, es); err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			d.ents[e.Index] = e
			d.last = e.Index
		}
	}
	save(raft.HardState{Term: 1, Vote: "n1"}, ents(1, 1, 6))
	save(raft.HardState{Term: 1, Vote: "n1", Commit: 6}, ents(1, 7, 9))
	// A new term persists the commit index (covering the durable 1..9).
	save(raft.HardState{Term: 2, Vote: "n2", Commit: 9}, ents(2, 10, 12))
	for i := uint64(13); i <= 24; i += 3 {
		save(raft.HardState{Term: 2, Vote: "n2", Commit: 9}, ents(2, i, i+2))
	}
	snap, err := s.CreateSnapshot(5, voters("n1", "n2", "n3"), []byte("state@5"))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	d.hs = raft.HardState{Term: 2, Vote: "n2", Commit: 9}
	d.snap = snap
	for _, dir := range []string{fuzzDir, path.Join(fuzzDir, walDirName)} {
		des, err := fsys.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, de := range des {
			if de.IsDir() || de.Name() == lockFileName {
				continue
			}
			p := path.Join(dir, de.Name())
			b, err := vfs.ReadFile(fsys, p)
			if err != nil {
				t.Fatal(err)
			}
			d.names = append(d.names, p)
			d.data = append(d.data, b)
		}
	}
	return d
}

// FuzzOpenDamaged damages a data directory written with known entries,
// hard state and snapshot (byte flips and truncations in any of its
// files) and opens it. OpenDiskStorage must either refuse with ErrCorrupt
// or open with the hard state's term and vote, the snapshot, and every
// entry it holds intact, no fewer entries than the saved commit index
// covers, and fewer than were written only if the last WAL segment was
// damaged (a torn tail). Never garbage, never a silent loss.
func FuzzOpenDamaged(f *testing.F) {
	d := buildDamagedDir(f)
	f.Add([]byte{0, 0, 3, 1})
	f.Add([]byte{1, 0xff, 0xff, 0})
	f.Add([]byte{0, 0x01, 0x00, 0x20, 0, 0x02, 0x00, 0x08})
	f.Add([]byte{1, 0x00, 0x30, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		data := make([][]byte, len(d.data))
		total := 0
		for i := range d.data {
			data[i] = bytes.Clone(d.data[i])
			total += len(d.data[i])
		}
		lastSeg := -1
		for i, n := range d.names {
			if path.Ext(n) == ".wal" {
				lastSeg = i // names are sorted: the last .wal is the last segment
			}
		}
		lastSegDamaged := false
		for len(ops) >= 4 {
			kind, pos, mask := ops[0]%2, (int(ops[1])<<8|int(ops[2]))%total, ops[3]
			ops = ops[4:]
			s := 0
			for pos >= len(d.data[s]) {
				pos -= len(d.data[s])
				s++
			}
			if pos >= len(data[s]) || kind == 0 && mask == 0 {
				continue
			}
			if kind == 0 {
				data[s][pos] ^= mask
			} else {
				data[s] = data[s][:pos]
			}
			if s == lastSeg {
				lastSegDamaged = true
			}
		}
		fsys := vfs.NewCrashFS(0)
		for i, name := range d.names {
			if err := fsys.MkdirAll(path.Dir(name), 0o755); err != nil {
				t.Fatal(err)
			}
			f, err := fsys.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			f.Write(data[i])
			f.Close()
		}
		s, err := OpenDiskStorage(fuzzDir, DiskOptions{SegmentSize: d.segLen, RetainEntries: 100, FS: fsys})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("OpenDiskStorage = %v; want success or ErrCorrupt", err)
			}
			return
		}
		defer s.Close()
		hs, _, _ := s.InitialState()
		if hs.Term != d.hs.Term || hs.Vote != d.hs.Vote {
			t.Fatalf("hard state = %+v; want term and vote of %+v", hs, d.hs)
		}
		snap, _ := s.Snapshot()
		if snap.Meta.Index != d.snap.Meta.Index || snap.Meta.Term != d.snap.Meta.Term || !bytes.Equal(snap.Data, d.snap.Data) {
			t.Fatalf("snapshot = %+v; want %+v", snap.Meta, d.snap.Meta)
		}
		first, _ := s.FirstIndex()
		last, _ := s.LastIndex()
		if first > d.snap.Meta.Index+1 {
			t.Fatalf("log starts at %d after a snapshot at %d", first, d.snap.Meta.Index)
		}
		if last < d.hs.Commit {
			t.Fatalf("opened with entries up to %d; the saved commit index is %d", last, d.hs.Commit)
		}
		if last < d.last && !lastSegDamaged {
			t.Fatalf("opened with entries up to %d of %d, but the last segment is intact", last, d.last)
		}
		got, err := s.Entries(first, last+1, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range got {
			want := d.ents[e.Index]
			if e.Term != want.Term || !bytes.Equal(e.Data, want.Data) {
				t.Fatalf("entry %d = %+v; want %+v (garbage accepted)", e.Index, e, want)
			}
		}
	})
}
