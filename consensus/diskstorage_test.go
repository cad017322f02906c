package consensus

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
)

func ents(term uint64, lo, hi uint64) []raft.Entry {
	var out []raft.Entry
	for i := lo; i <= hi; i++ {
		out = append(out, raft.Entry{Index: i, Term: term, Data: []byte(fmt.Sprintf("t%d-i%d", term, i))})
	}
	return out
}

func openDisk(t *testing.T, dir string) *DiskStorage {
	t.Helper()
	s, err := OpenDiskStorage(dir, DiskOptions{SegmentSize: 512, RetainEntries: 2})
	if err != nil {
		t.Fatalf("OpenDiskStorage = %v", err)
	}
	return s
}

// checkLog compares the storage's log with want (consecutive entries).
func checkLog(t *testing.T, s *DiskStorage, want []raft.Entry) {
	t.Helper()
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if first != want[0].Index || last != want[len(want)-1].Index {
		t.Fatalf("log spans [%d, %d]; want [%d, %d]", first, last, want[0].Index, want[len(want)-1].Index)
	}
	got, err := s.Entries(first, last+1, 1<<30)
	if err != nil {
		t.Fatalf("Entries = %v", err)
	}
	for i := range want {
		if got[i].Index != want[i].Index || got[i].Term != want[i].Term || !bytes.Equal(got[i].Data, want[i].Data) {
			t.Fatalf("entry %d = %+v; want %+v", want[i].Index, got[i], want[i])
		}
	}
}

func TestDiskStorageRestart(t *testing.T) {
	dir := t.TempDir()
	s := openDisk(t, dir)
	if err := s.Save(raft.HardState{Term: 1, Vote: "a", Commit: 0}, ents(1, 1, 10)); err != nil {
		t.Fatal(err)
	}
	// A new leader overwrites 6.. with its own entries (§5.3).
	if err := s.Save(raft.HardState{Term: 2, Vote: "b", Commit: 5}, ents(2, 6, 12)); err != nil {
		t.Fatal(err)
	}
	// Commit moves without a term change: no fsync, persisted lazily.
	if err := s.Save(raft.HardState{Term: 2, Vote: "b", Commit: 12}, nil); err != nil {
		t.Fatal(err)
	}
	want := append(ents(1, 1, 5), ents(2, 6, 12)...)
	checkLog(t, s, want)
	s.Close()

	s = openDisk(t, dir)
	defer s.Close()
	checkLog(t, s, want)
	hs, _, _ := s.InitialState()
	if hs.Term != 2 || hs.Vote != "b" || hs.Commit != 5 {
		t.Fatalf("restarted hard state = %+v; want term 2, vote b, commit 5 (the durable one)", hs)
	}
}

func TestDiskStorageSnapshots(t *testing.T) {
	dir := t.TempDir()
	s := openDisk(t, dir)
	if err := s.Save(raft.HardState{Term: 1, Vote: "a"}, ents(1, 1, 40)); err != nil {
		t.Fatal(err)
	}
	m := voters("a", "b", "c")
	if _, err := s.CreateSnapshot(30, m, []byte("state@30")); err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, ents(1, 29, 40)) // RetainEntries 2: compacted through 28
	s.Close()

	s = openDisk(t, dir)
	checkLog(t, s, ents(1, 31, 40))
	snap, _ := s.Snapshot()
	if snap.Meta.Index != 30 || snap.Meta.Term != 1 || snap.Data != nil || !snap.Meta.Membership.Equal(m) {
		t.Fatalf("restarted snapshot = %+v; want index 30 term 1, no data in memory", snap)
	}
	r, err := s.openSnapshotData(snap.Meta)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(r)
	r.Close()
	if err != nil || string(data) != "state@30" {
		t.Fatalf("snapshot data = %q, %v; want state@30", data, err)
	}
	_, gotM, _ := s.InitialState()
	if !gotM.Equal(m) {
		t.Fatalf("InitialState membership = %v; want %v", gotM, m)
	}
	// A snapshot from the leader beyond the log replaces it.
	leaderSnap := raft.Snapshot{Meta: raft.SnapshotMeta{Index: 100, Term: 3, Membership: m}, Data: []byte("state@100")}
	if err := s.ApplySnapshot(leaderSnap); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplySnapshot(leaderSnap); !errors.Is(err, raft.ErrSnapshotOutOfDate) {
		t.Fatalf("ApplySnapshot twice err = %v; want ErrSnapshotOutOfDate", err)
	}
	if err := s.Save(raft.HardState{Term: 3, Commit: 100}, ents(3, 101, 103)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openDisk(t, dir)
	defer s.Close()
	checkLog(t, s, ents(3, 101, 103))
	if term, err := s.Term(100); err != nil || term != 3 {
		t.Fatalf("Term(100) = (%d, %v); want 3", term, err)
	}
}

func voters(ids ...transport.NodeID) raft.Membership { return raft.Membership{Voters: ids} }

// TestDiskStorageCrashAfterSnapshotFile simulates a crash between writing
// a leader's snapshot file and resetting the log: the stale log is
// discarded on open.
func TestDiskStorageCrashAfterSnapshotFile(t *testing.T) {
	dir := t.TempDir()
	s := openDisk(t, dir)
	if err := s.Save(raft.HardState{Term: 1}, ents(1, 1, 10)); err != nil {
		t.Fatal(err)
	}
	snap := raft.Snapshot{Meta: raft.SnapshotMeta{Index: 8, Term: 2, Membership: voters("a")}, Data: []byte("x")}
	if err := s.writeSnapshot(snap); err != nil { // the first half of ApplySnapshot
		t.Fatal(err)
	}
	s.Close()
	s = openDisk(t, dir)
	defer s.Close()
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if first != 9 || last != 8 {
		t.Fatalf("after the crash the log spans [%d, %d]; want empty after the snapshot [9, 8]", first, last)
	}
}

func TestDiskStorageCorruptFiles(t *testing.T) {
	tests := []struct {
		name string
		file string
	}{
		{"hard state", hardStateFile},
		{"snapshot", snapshotFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openDisk(t, dir)
			if err := s.Save(raft.HardState{Term: 1, Vote: "a"}, ents(1, 1, 5)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.CreateSnapshot(5, voters("a"), []byte("s")); err != nil {
				t.Fatal(err)
			}
			s.Close()
			path := filepath.Join(dir, tt.file)
			b, _ := os.ReadFile(path)
			b[len(b)-1] ^= 0xff
			os.WriteFile(path, b, 0o644)
			if _, err := OpenDiskStorage(dir, DiskOptions{}); !errors.Is(err, errFormat) {
				t.Fatalf("OpenDiskStorage with a damaged %s err = %v; want a format error", tt.file, err)
			}
		})
	}
}

func FuzzDecodeHardState(f *testing.F) {
	f.Add(encodeHardState(raft.HardState{Term: 3, Vote: "n1", Commit: 9}))
	f.Add([]byte("DKHS"))
	f.Fuzz(func(t *testing.T, b []byte) {
		hs, err := decodeHardState(b)
		if err != nil {
			return
		}
		if again := encodeHardState(hs); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding %+v differs", hs)
		}
	})
}

func FuzzDecodeSnapshot(f *testing.F) {
	f.Add(encodeSnapshot(raft.Snapshot{Meta: raft.SnapshotMeta{Index: 4, Term: 2, Membership: voters("a", "b")}, Data: []byte("data")}))
	f.Add([]byte("DKSN\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeSnapshot(b)
		if err != nil {
			return
		}
		if again := encodeSnapshot(s); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding %+v differs", s.Meta)
		}
	})
}

func FuzzDecodeEntryRecord(f *testing.F) {
	f.Add(appendEntryRecord(nil, &raft.Entry{Term: 7, Type: raft.EntryNormal, Data: []byte("cmd")}))
	f.Add([]byte{9, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEntryRecord(5, b)
		if err != nil {
			return
		}
		if e.Index != 5 || e.Type > maxEntryType {
			t.Fatalf("decoded %+v", e)
		}
	})
}

// TestDiskStorageCrashBeforeEntries simulates a crash inside Save after the
// hard state file was replaced but before the entries reached the WAL: the
// first append of a new leader carries its term, a commit index covering
// its entries, and entries that overwrite a stale suffix. After the crash
// the log still holds the stale suffix, so the durable commit index must
// not cover it: a restarted node would apply entries that were never
// committed (§5.4: only committed entries may be applied).
func TestDiskStorageCrashBeforeEntries(t *testing.T) {
	dir := t.TempDir()
	s := openDisk(t, dir)
	if err := s.Save(raft.HardState{Term: 1, Vote: "a", Commit: 3}, ents(1, 1, 8)); err != nil {
		t.Fatal(err)
	}
	walDir := filepath.Join(dir, walDirName)
	before := readDir(t, walDir)
	if err := s.Save(raft.HardState{Term: 2, Commit: 8}, ents(2, 6, 8)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	writeDir(t, walDir, before) // the crash: the WAL as it was before Save

	s = openDisk(t, dir)
	defer s.Close()
	checkLog(t, s, ents(1, 1, 8))
	hs, _, _ := s.InitialState()
	if hs.Term != 2 || hs.Commit > 5 {
		t.Fatalf("hard state after the crash = %+v; want term 2 and commit <= 5 (entries 6-8 of term 1 were never committed)", hs)
	}
}

// readDir returns the contents of every file in dir.
func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := make(map[string][]byte)
	for _, de := range des {
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[de.Name()] = b
	}
	return files
}

// writeDir makes dir hold exactly files.
func writeDir(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
