//go:build unix

package vfs_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/distkit/distkit/internal/vfs"
)

// TestOSLockIsExclusive: a second Lock of the same file fails with a
// *LockedError naming this process, even from the same process (flock
// locks belong to the open file description), until the first is closed.
func TestOSLockIsExclusive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "LOCK")
	first, err := vfs.OS.Lock(path)
	if err != nil {
		t.Fatalf("Lock = %v", err)
	}
	_, err = vfs.OS.Lock(path)
	var le *vfs.LockedError
	if !errors.Is(err, vfs.ErrLocked) || !errors.As(err, &le) || le.PID != os.Getpid() || le.Path != path {
		t.Fatalf("second Lock = %v; want a *LockedError for %s naming pid %d", err, path, os.Getpid())
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := vfs.OS.Lock(path)
	if err != nil {
		t.Fatalf("Lock after the holder closed = %v", err)
	}
	again.Close()
}
