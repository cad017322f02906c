package election_test

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/distkit/distkit/election"
	"github.com/distkit/distkit/internal/vfs"
)

func TestFileEpochStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "epoch")
	s, err := election.NewFileEpochStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Load(); got != 0 || err != nil {
		t.Fatalf("Load() of a missing file = %d, %v; want 0, nil (a first boot)", got, err)
	}
	for _, e := range []uint64{1, 7, 1 << 63} {
		if err := s.Save(e); err != nil {
			t.Fatalf("Save(%d): %v", e, err)
		}
		// A new store on the same file sees it, as a restarted process would.
		again, err := election.NewFileEpochStore(path)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := again.Load(); got != e || err != nil {
			t.Fatalf("Load() after Save(%d) = %d, %v", e, got, err)
		}
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != filepath.Base(path) {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %q after the saves; want only %q (a temporary file was left behind)", names, filepath.Base(path))
	}
}

func TestFileEpochStoreRejectsDamage(t *testing.T) {
	good := election.EncodeEpoch(42)
	flipped := append([]byte(nil), good...)
	flipped[7] ^= 0x10
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"torn", good[:10]},
		{"bit flip", flipped},
		{"bad magic", append([]byte("XXXX"), good[4:]...)},
		{"trailing bytes", append(append([]byte(nil), good...), 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "epoch")
			if err := os.WriteFile(path, tt.data, 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := election.NewFileEpochStore(path)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := s.Load(); !errors.Is(err, election.ErrCorruptEpoch) {
				t.Errorf("Load() = %d, %v; want ErrCorruptEpoch", got, err)
			}
		})
	}
}

func TestNewFileEpochStoreRejectsBadPath(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, path string }{
		{"empty", ""},
		{"missing directory", filepath.Join(t.TempDir(), "no", "such", "epoch")},
		{"directory is a file", filepath.Join(file, "epoch")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := election.NewFileEpochStore(tt.path); !errors.Is(err, election.ErrInvalidConfig) {
				t.Errorf("NewFileEpochStore(%q) error = %v; want ErrInvalidConfig", tt.path, err)
			}
		})
	}
}

func TestMemoryEpochStore(t *testing.T) {
	var s election.MemoryEpochStore
	if got, err := s.Load(); got != 0 || err != nil {
		t.Fatalf("zero store Load() = %d, %v; want 0, nil", got, err)
	}
	if err := s.Save(5); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Load(); got != 5 || err != nil {
		t.Fatalf("Load() after Save(5) = %d, %v", got, err)
	}
}

// FuzzDecodeEpoch: DecodeEpoch never panics; whatever it accepts
// re-encodes to the same bytes, and anything else is ErrCorruptEpoch.
func FuzzDecodeEpoch(f *testing.F) {
	f.Add(election.EncodeEpoch(0))
	f.Add(election.EncodeEpoch(1 << 40))
	f.Add([]byte("EPC1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := election.DecodeEpoch(b)
		if err != nil {
			if !errors.Is(err, election.ErrCorruptEpoch) {
				t.Fatalf("DecodeEpoch(%x) error %v; want ErrCorruptEpoch", b, err)
			}
			return
		}
		if got := election.EncodeEpoch(e); string(got) != string(b) {
			t.Fatalf("EncodeEpoch(DecodeEpoch(%x)) = %x", b, got)
		}
	})
}

// TestOpenFileEpochStoreLocks: a second OpenFileEpochStore of the same
// file, even in the same process, fails with ErrLocked naming the holder's
// pid until the first store is closed.
func TestOpenFileEpochStoreLocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "epoch")
	s, err := election.OpenFileEpochStore(path, election.EpochStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(7); err != nil {
		t.Fatal(err)
	}
	_, err = election.OpenFileEpochStore(path, election.EpochStoreOptions{})
	if !errors.Is(err, election.ErrLocked) || !strings.Contains(err.Error(), strconv.Itoa(os.Getpid())) {
		t.Fatalf("second OpenFileEpochStore = %v; want ErrLocked naming pid %d", err, os.Getpid())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = election.OpenFileEpochStore(path, election.EpochStoreOptions{})
	if err != nil {
		t.Fatalf("OpenFileEpochStore after Close = %v", err)
	}
	defer s.Close()
	if e, err := s.Load(); e != 7 || err != nil {
		t.Fatalf("Load = %d, %v; want 7", e, err)
	}
}

// TestFileEpochStorePowerLoss saves rising epochs on a CrashFS, fails the
// fsync of one more Save, cuts the power and reopens: Load must return at
// least the last acknowledged epoch (a node that forgot it could reuse an
// epoch) and never an error for what a crash left.
func TestFileEpochStorePowerLoss(t *testing.T) {
	for seed := uint64(1); seed <= 100; seed++ {
		rng := rand.New(rand.NewPCG(seed, 1))
		fsys := vfs.NewCrashFS(seed)
		if err := vfs.MkdirAllDurable(fsys, "/var/lib/app"); err != nil {
			t.Fatal(err)
		}
		path := "/var/lib/app/election.epoch"
		s, err := election.OpenFileEpochStore(path, election.EpochStoreOptions{FS: fsys})
		if err != nil {
			t.Fatal(err)
		}
		var acked uint64
		for range rng.IntN(10) {
			acked += 1 + uint64(rng.IntN(3))
			if err := s.Save(acked); err != nil {
				t.Fatalf("seed %d: Save(%d) = %v", seed, acked, err)
			}
		}
		fsys.InjectSyncError(1 + rng.IntN(2)) // the file's or the directory's fsync
		if err := s.Save(acked + 1); err == nil {
			t.Fatalf("seed %d: Save with a failing fsync succeeded", seed)
		}
		after := fsys.Crash()
		s.Close()
		s2, err := election.OpenFileEpochStore(path, election.EpochStoreOptions{FS: after})
		if err != nil {
			t.Fatalf("seed %d: OpenFileEpochStore after the crash = %v", seed, err)
		}
		got, err := s2.Load()
		if err != nil || got < acked || got > acked+1 {
			t.Fatalf("seed %d: Load after the crash = %d, %v; want %d (or %d)", seed, got, err, acked, acked+1)
		}
		s2.Close()
	}
}
