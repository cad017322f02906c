package idempotency

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestFileStoreLocks: a second OpenFileStore of the same log, even in the
// same process, fails with ErrLocked naming the holder's pid until the
// first store is closed.
func TestFileStoreLocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	s := mustFileStore(t, path, DefaultFileConfig())
	_, err := OpenFileStore(path, DefaultFileConfig())
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), strconv.Itoa(os.Getpid())) {
		t.Fatalf("second OpenFileStore = %v; want ErrLocked naming pid %d", err, os.Getpid())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustFileStore(t, path, DefaultFileConfig())
	s.Close()
}
