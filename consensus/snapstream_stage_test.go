package consensus

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
)

// TestStageSnapshotMemoryBounded stages a 64 MiB snapshot and restores
// from it, and checks the bytes allocated meanwhile stay far below its
// size (a generous 16 MiB: the bound is on the process's total
// allocation, so it holds under any load): neither the staging, nor the
// storage, nor the restore reader holds the data. The staged file is the
// same format as CreateSnapshot's (its data's length is a padded uvarint,
// which the decoder reads like the short one).
func TestStageSnapshotMemoryBounded(t *testing.T) {
	const size = 64 << 20
	dir := t.TempDir()
	s := openDisk(t, dir)
	if err := s.Save(raft.HardState{Term: 3, Vote: "a"}, ents(3, 1, 20)); err != nil {
		t.Fatal(err)
	}
	m := raft.Membership{Voters: []transport.NodeID{"a", "b", "c"}}
	block := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	commit, err := s.StageSnapshot(15, m, func(w io.Writer) error {
		for range size / len(block) {
			if _, err := w.Write(block); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := commit(); err != nil {
		t.Fatal(err)
	}
	snap, _ := s.Snapshot()
	r, err := s.openSnapshotData(snap.Meta)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(block))
	var n int
	for {
		k, err := io.ReadFull(r, buf)
		if err == io.EOF {
			break
		}
		if err != nil || !bytes.Equal(buf[:k], block[:k]) {
			t.Fatalf("restored data differs at %d (%v)", n, err)
		}
		n += k
	}
	r.Close()
	runtime.ReadMemStats(&after)
	if n != size || snap.Meta.Index != 15 || snap.Meta.Term != 3 || snap.Data != nil {
		t.Fatalf("snapshot %d/%d with %d bytes in memory restored %d bytes; want 15/3, none in memory, %d", snap.Meta.Index, snap.Meta.Term, len(snap.Data), n, size)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("staging and restoring %d MiB allocated %d KiB", size>>20, alloc>>10)
	if alloc > 16<<20 {
		t.Fatalf("staging and restoring a %d MiB snapshot allocated %d MiB; want far less than its size", size>>20, alloc>>20)
	}
	// The file reads back whole after a reopen too.
	s.Close()
	s = openDisk(t, dir)
	defer s.Close()
	if snap, _ := s.Snapshot(); snap.Meta.Index != 15 {
		t.Fatalf("reopened snapshot at %d; want 15", snap.Meta.Index)
	}
}

// TestSnapshotFileDamageRefused damages a snapshot file on disk (a bit
// flipped in its metadata or deep in its data, a truncation, bytes
// appended): the open, which verifies the file by streaming it, refuses it
// with ErrCorrupt rather than hand the state machine a partial or damaged
// snapshot.
func TestSnapshotFileDamageRefused(t *testing.T) {
	data := bytes.Repeat([]byte("state "), 50000) // 300 kB: more than one read of the verifying pass
	tests := []struct {
		name   string
		damage func(b []byte) []byte
	}{
		{"flip in metadata", func(b []byte) []byte { b[10] ^= 1; return b }},
		{"flip deep in data", func(b []byte) []byte { b[len(b)-1000] ^= 0x40; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }},
		{"appended", func(b []byte) []byte { return append(b, 0) }},
		{"header only", func(b []byte) []byte { return b[:8] }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openDisk(t, dir)
			if err := s.Save(raft.HardState{Term: 1, Vote: "a"}, ents(1, 1, 10)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.CreateSnapshot(8, raft.Membership{Voters: []transport.NodeID{"a", "b", "c"}}, data); err != nil {
				t.Fatal(err)
			}
			s.Close()
			path := filepath.Join(dir, snapshotFile)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tt.damage(b), 0o644); err != nil {
				t.Fatal(err)
			}
			if s, err := OpenDiskStorage(dir, DiskOptions{}); !errors.Is(err, ErrCorrupt) {
				if s != nil {
					s.Close()
				}
				t.Fatalf("OpenDiskStorage with a damaged snapshot file = %v; want ErrCorrupt", err)
			}
		})
	}
}
