package consensus

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/internal/wal"
)

// TestDiskStorageRefusesLostHardState: a data directory whose log holds
// entries but whose hard state is missing, empty or unreadable refuses to
// open (issue 13: a deleted hardstate used to start the node at term 0,
// having forgotten its vote).
func TestDiskStorageRefusesLostHardState(t *testing.T) {
	tests := []struct {
		name    string
		damage  func(path string) error
		wantErr error
	}{
		{"deleted", os.Remove, ErrMissingHardState},
		{"empty", func(p string) error { return os.WriteFile(p, nil, 0o644) }, ErrCorrupt},
		{"garbled", func(p string) error { return os.WriteFile(p, []byte("DKHS\x00\x00\x00\x00\x01\x02"), 0o644) }, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openDisk(t, dir)
			if err := s.Save(raft.HardState{Term: 3, Vote: "b", Commit: 2}, ents(3, 1, 4)); err != nil {
				t.Fatal(err)
			}
			s.Close()
			if err := tt.damage(filepath.Join(dir, hardStateFile)); err != nil {
				t.Fatal(err)
			}
			s, err := OpenDiskStorage(dir, DiskOptions{})
			if err == nil {
				hs, _, _ := s.InitialState()
				s.Close()
				t.Fatalf("OpenDiskStorage with the hard state %s succeeded (hard state %+v); want %v", tt.name, hs, tt.wantErr)
			}
			if !errors.Is(err, tt.wantErr) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("OpenDiskStorage with the hard state %s = %v; want %v (and ErrCorrupt)", tt.name, err, tt.wantErr)
			}
		})
	}
}

// TestDiskStorageFirstStartCrashPoints: every state a crash can leave
// during a new node's first start opens as a fresh directory, and after
// an open the hard state file exists before any entry can be saved.
func TestDiskStorageFirstStartCrashPoints(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
	}{
		{"nothing yet", func(t *testing.T, dir string) {}},
		{"empty WAL directory", func(t *testing.T, dir string) {
			if err := os.MkdirAll(filepath.Join(dir, walDirName), 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{"WAL with an empty segment", func(t *testing.T, dir string) {
			l, err := wal.Open(filepath.Join(dir, walDirName), wal.Options{})
			if err != nil {
				t.Fatal(err)
			}
			l.Close()
		}},
		{"hard state only", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, hardStateFile), encodeHardState(raft.HardState{}), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"leftover temporary hard state", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, ".hardstate.123.tmp"), []byte("DK"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			s := openDisk(t, dir)
			if hs, _, err := s.InitialState(); err != nil || !hs.IsZero() {
				t.Fatalf("InitialState = %+v, %v; want a zero hard state", hs, err)
			}
			if _, err := os.Stat(filepath.Join(dir, hardStateFile)); err != nil {
				t.Fatalf("after the first open the hard state file is missing: %v", err)
			}
			if err := s.Save(raft.HardState{Term: 1, Vote: "a"}, ents(1, 1, 2)); err != nil {
				t.Fatal(err)
			}
			s.Close()
			s = openDisk(t, dir)
			defer s.Close()
			checkLog(t, s, ents(1, 1, 2))
		})
	}
}

// TestDiskStorageRefusesCorruptLog: a record that went bad in the middle
// of the log (valid records after it) fails the open with ErrCorrupt and
// the wal's *CorruptError, instead of cutting off the entries after it.
func TestDiskStorageRefusesCorruptLog(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenDiskStorage(dir, DiskOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 20; i++ {
		if err := s.Save(raft.HardState{Term: 1, Vote: "a"}, ents(1, i, i)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	seg := filepath.Join(dir, walDirName, "00000000000000000001.wal")
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x04
	if err := os.WriteFile(seg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = OpenDiskStorage(dir, DiskOptions{})
	var ce *wal.CorruptError
	if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) || ce.File != seg {
		t.Fatalf("OpenDiskStorage with a flipped byte mid-log = %v; want ErrCorrupt naming %s", err, seg)
	}
}

// TestDiskStorageRefusesLostCommittedEntries: a log cut short before the
// commit index saved in the hard state has lost committed entries, which
// no crash explains (the saved commit index only covers entries that were
// durable when it was written): refuse, do not clamp the commit index.
func TestDiskStorageRefusesLostCommittedEntries(t *testing.T) {
	dir := t.TempDir()
	s := openDisk(t, dir)
	if err := s.Save(raft.HardState{Term: 1, Vote: "a"}, ents(1, 1, 10)); err != nil {
		t.Fatal(err)
	}
	// A new term persists the commit index, here 9, with the hard state.
	if err := s.Save(raft.HardState{Term: 2, Commit: 9}, nil); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Cut the log after entry 6, as a disk that lost data would.
	seg := filepath.Join(dir, walDirName, "00000000000000000001.wal")
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	off := 0
	for range 6 {
		_, _, n, err := wal.DecodeRecord(b[off:])
		if err != nil {
			t.Fatal(err)
		}
		off += n
	}
	if err := os.WriteFile(seg, b[:off], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = OpenDiskStorage(dir, DiskOptions{SegmentSize: 512})
	if err == nil || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("OpenDiskStorage with committed entries missing = %v; want ErrCorrupt", err)
	}
}
