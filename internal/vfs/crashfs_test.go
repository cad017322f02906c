package vfs_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"slices"
	"testing"

	"github.com/distkit/distkit/internal/vfs"
)

func write(t *testing.T, fsys vfs.FS, name string, flag int, data []byte, sync bool) vfs.File {
	t.Helper()
	f, err := fsys.OpenFile(name, flag, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func readFile(t *testing.T, fsys vfs.FS, name string) ([]byte, bool) {
	t.Helper()
	b, err := vfs.ReadFile(fsys, name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return b, true
}

// TestCrashFSKeepsSyncedAndTearsTheRest: synced data survives every
// crash; unsynced data is lost, kept or torn, only at sector granularity,
// and the size lands between the synced and the written one.
func TestCrashFSKeepsSyncedAndTearsTheRest(t *testing.T) {
	old := bytes.Repeat([]byte{'o'}, 3*vfs.SectorSize+100)
	add := bytes.Repeat([]byte{'n'}, 4*vfs.SectorSize)
	kinds := map[string]bool{}
	for seed := uint64(1); seed <= 200; seed++ {
		fsys := vfs.NewCrashFS(seed)
		if err := vfs.MkdirAllDurable(fsys, "/d"); err != nil {
			t.Fatal(err)
		}
		f := write(t, fsys, "/d/f", os.O_RDWR|os.O_CREATE, old, true)
		if err := fsys.SyncDir("/d"); err != nil {
			t.Fatal(err)
		}
		// Overwrite the last sector partly and append four more, unsynced.
		if _, err := f.Seek(int64(len(old))-50, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(add); err != nil {
			t.Fatal(err)
		}
		after := fsys.Crash()
		got, ok := readFile(t, after, "/d/f")
		if !ok {
			t.Fatalf("seed %d: a synced file in a synced directory vanished", seed)
		}
		if !bytes.Equal(got[:len(old)-50], old[:len(old)-50]) {
			t.Fatalf("seed %d: synced bytes changed", seed)
		}
		newLen := len(old) - 50 + len(add)
		if len(got) < len(old) || len(got) > newLen || (len(got) != len(old) && len(got) != newLen && len(got)%vfs.SectorSize != 0) {
			t.Fatalf("seed %d: size %d; want %d, %d or a sector boundary between", seed, len(got), len(old), newLen)
		}
		// Each sector is all old or all new (beyond the old end, zero or new).
		want := append(append([]byte(nil), old[:len(old)-50]...), add...)
		for s := 0; s < len(got); s += vfs.SectorSize {
			e := min(s+vfs.SectorSize, len(got))
			oldSec := make([]byte, e-s)
			copy(oldSec, old[min(s, len(old)):min(e, len(old))])
			if !bytes.Equal(got[s:e], oldSec) && !bytes.Equal(got[s:e], want[s:e]) {
				t.Fatalf("seed %d: sector at %d is neither old nor new", seed, s)
			}
		}
		switch {
		case bytes.Equal(got, old):
			kinds["lost"] = true
		case bytes.Equal(got, want):
			kinds["kept"] = true
		default:
			kinds["torn"] = true
		}
		if _, err := f.Write([]byte("x")); !errors.Is(err, vfs.ErrCrashed) {
			t.Fatalf("write to a file of a crashed FS = %v; want ErrCrashed", err)
		}
	}
	if len(kinds) != 3 {
		t.Fatalf("outcomes over 200 seeds: %v; want lost, kept and torn", kinds)
	}
}

// TestCrashFSDirectoryEntriesNeedDirSync: a created, renamed or removed
// name survives a crash only if its directory was synced afterwards.
func TestCrashFSDirectoryEntriesNeedDirSync(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		fsys := vfs.NewCrashFS(seed)
		if err := vfs.MkdirAllDurable(fsys, "/d"); err != nil {
			t.Fatal(err)
		}
		write(t, fsys, "/d/synced", os.O_RDWR|os.O_CREATE, []byte("a"), true)
		if err := fsys.SyncDir("/d"); err != nil {
			t.Fatal(err)
		}
		write(t, fsys, "/d/unsynced", os.O_RDWR|os.O_CREATE, []byte("b"), true)
		if err := fsys.Rename("/d/synced", "/d/renamed"); err != nil {
			t.Fatal(err)
		}
		if err := fsys.MkdirAll("/e/f", 0o755); err != nil {
			t.Fatal(err)
		}
		after := fsys.Crash()
		if _, ok := readFile(t, after, "/d/unsynced"); ok {
			t.Fatalf("seed %d: a file whose directory was never synced survived", seed)
		}
		if b, ok := readFile(t, after, "/d/synced"); !ok || string(b) != "a" {
			t.Fatalf("seed %d: an unsynced rename was durable (old name %q, %v)", seed, b, ok)
		}
		if _, ok := readFile(t, after, "/d/renamed"); ok {
			t.Fatalf("seed %d: an unsynced rename's new name survived", seed)
		}
		if _, err := after.ReadDir("/e"); err == nil {
			t.Fatalf("seed %d: a directory made without syncing its parent survived", seed)
		}
	}
}

// TestCrashFSInjectedFaults: a failing sync, a torn write and flipped
// reads, on demand.
func TestCrashFSInjectedFaults(t *testing.T) {
	fsys := vfs.NewCrashFS(3)
	f := write(t, fsys, "/f", os.O_RDWR|os.O_CREATE, bytes.Repeat([]byte{1}, 100), true)
	fsys.InjectSyncError(2)
	if err := f.Sync(); err != nil {
		t.Fatalf("first Sync = %v; want nil (the second fails)", err)
	}
	if err := f.Sync(); !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("second Sync = %v; want ErrInjected", err)
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("third Sync = %v; want nil", err)
	}
	if err := fsys.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	fsys.InjectSyncError(1)
	if err := fsys.SyncDir("/d"); !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("SyncDir = %v; want ErrInjected", err)
	}
	if got, want := fsys.FailedSyncs(), []string{"/f", "/d"}; !slices.Equal(got, want) {
		t.Fatalf("FailedSyncs() = %q; want %q (the injected failures only, in order)", got, want)
	}
	fsys.InjectWriteError(1)
	n, err := f.Write(bytes.Repeat([]byte{2}, 2000))
	if !errors.Is(err, vfs.ErrInjected) || (100+n)%vfs.SectorSize != 0 && n != 0 {
		t.Fatalf("torn Write = %d, %v; want a prefix ending on a sector boundary and ErrInjected", n, err)
	}
	fsys.FlipBitsOnRead("/f", 1)
	a, _ := vfs.ReadFile(fsys, "/f")
	b, _ := vfs.ReadFile(fsys, "/f")
	diff := 0
	for i := range a {
		for x := a[i] ^ b[i]; x != 0; x &= x - 1 {
			diff++
		}
	}
	if diff != 1 {
		t.Fatalf("a flipped read differs from a clean one in %d bits; want 1", diff)
	}
}

// TestCrashFSIsDeterministic: the same operations on the same seed crash
// the same way.
func TestCrashFSIsDeterministic(t *testing.T) {
	run := func(seed uint64) []byte {
		fsys := vfs.NewCrashFS(seed)
		write(t, fsys, "/f", os.O_RDWR|os.O_CREATE, bytes.Repeat([]byte{1}, 5000), true)
		fsys.SyncDir("/")
		f := write(t, fsys, "/f", os.O_RDWR, bytes.Repeat([]byte{2}, 4000), false)
		f.Write(bytes.Repeat([]byte{3}, 3000))
		b, _ := vfs.ReadFile(fsys.Crash(), "/f")
		return b
	}
	for seed := uint64(1); seed <= 20; seed++ {
		if a, b := run(seed), run(seed); !bytes.Equal(a, b) {
			t.Fatalf("seed %d: two runs crashed differently", seed)
		}
	}
}

// TestCrashFSLock: Lock is exclusive until closed, and a crash releases
// every lock.
func TestCrashFSLock(t *testing.T) {
	fsys := vfs.NewCrashFS(1)
	l, err := fsys.Lock("/LOCK")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fsys.Lock("/LOCK"); !errors.Is(err, vfs.ErrLocked) {
		t.Fatalf("second Lock = %v; want ErrLocked", err)
	}
	l.Close()
	l, err = fsys.Lock("/LOCK")
	if err != nil {
		t.Fatalf("Lock after Close = %v", err)
	}
	after := fsys.Crash()
	if l2, err := after.Lock("/LOCK"); err != nil {
		t.Fatalf("Lock after a crash = %v", err)
	} else {
		l2.Close()
	}
	l.Close()
}
