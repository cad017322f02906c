package consensus

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distkit/distkit/internal/vfs"
)

// TestDiskStorageLocksDataDir: a second DiskStorage on the same directory,
// even in the same process, fails with ErrLocked naming the holder's pid
// until the first one is closed (issue 13: two processes could run on one
// data directory).
func TestDiskStorageLocksDataDir(t *testing.T) {
	dir := t.TempDir()
	s := openDisk(t, dir)
	_, err := OpenDiskStorage(dir, DiskOptions{})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprint(os.Getpid())) {
		t.Fatalf("second OpenDiskStorage = %v; want ErrLocked naming pid %d", err, os.Getpid())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openDisk(t, dir)
	s.Close()
}

// TestNewLocksBeforeWritingIdentity: a node started on a data directory
// that another process holds (here: its lock taken, before that process
// wrote anything) fails with ErrLocked and leaves the directory alone; in
// particular it does not record its own cluster identity there, which
// would make the holder's next start refuse the directory (issue 13: two
// processes on one data directory).
func TestNewLocksBeforeWritingIdentity(t *testing.T) {
	dir := t.TempDir()
	lock, err := lockDir(vfs.Or(nil), dir)
	if err != nil {
		t.Fatal(err)
	}
	tr := aloneTransport(t)
	cfg := testConfig("n1", three)
	cfg.DataDir = dir
	if n, err := New(cfg, tr, &countSM{}); !errors.Is(err, ErrLocked) {
		if err == nil {
			n.Close()
		}
		t.Fatalf("New on a locked directory = %v; want ErrLocked", err)
	}
	if _, err := os.Stat(filepath.Join(dir, identityFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the refused node left a cluster identity in the directory (stat: %v)", err)
	}
	if err := lock.Close(); err != nil {
		t.Fatal(err)
	}
	n, err := New(cfg, tr, &countSM{})
	if err != nil {
		t.Fatalf("New once the directory is free = %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
}
