package consensus

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
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
