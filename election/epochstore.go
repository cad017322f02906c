package election

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"path/filepath"
	"sync"

	"github.com/distkit/distkit/internal/vfs"
	"github.com/distkit/distkit/internal/wal"
)

// EpochStore keeps a node's State (its highest epoch) across restarts. The
// runtime Node loads it once at start and saves every State a core's Ready
// reports before sending that Ready's messages, so a restarted node never
// campaigns with, announces or reports an epoch lower than one it used
// before the crash.
//
// The Node calls it from one goroutine; implementations in this package
// are also safe for concurrent use.
type EpochStore interface {
	// Load returns the last saved epoch, or 0 and no error when nothing
	// was ever saved. A damaged record is an error (wrapping
	// ErrCorruptEpoch), never a silent 0: a node that forgot its epoch
	// could reuse one.
	Load() (uint64, error)
	// Save durably records epoch (never lower than the last one saved)
	// and returns only once it would survive a crash.
	Save(epoch uint64) error
}

// ErrCorruptEpoch is wrapped by the errors of DecodeEpoch and of the
// stores' Load for a record that fails its checksum or has the wrong shape.
var ErrCorruptEpoch = errors.New("election: corrupt epoch record")

// ErrStore is wrapped by the error a Node stops with when its EpochStore
// fails to save: a node that cannot make its epoch durable must not send
// it, so it stops taking part (the others see it as crashed).
var ErrStore = errors.New("election: epoch store failed")

// epochRecordLen is the size of an epoch record: magic, epoch, CRC-32C.
const epochRecordLen = 4 + 8 + 4

var (
	epochMagic = [4]byte{'E', 'P', 'C', '1'}
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// EncodeEpoch returns the 16-byte record FileEpochStore writes: a magic
// "EPC1", the epoch (big-endian) and a CRC-32C of both. Stores on other
// media (electionsim keeps it on a sim.Disk) use it with DecodeEpoch.
func EncodeEpoch(epoch uint64) []byte {
	b := make([]byte, 0, epochRecordLen)
	b = append(b, epochMagic[:]...)
	b = binary.BigEndian.AppendUint64(b, epoch)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// DecodeEpoch parses a record made by EncodeEpoch. Any other input,
// including a torn or bit-flipped record, is an error wrapping
// ErrCorruptEpoch. It never panics.
func DecodeEpoch(b []byte) (uint64, error) {
	switch {
	case len(b) != epochRecordLen:
		return 0, fmt.Errorf("%w: %d bytes; want %d", ErrCorruptEpoch, len(b), epochRecordLen)
	case [4]byte(b[:4]) != epochMagic:
		return 0, fmt.Errorf("%w: bad magic %q", ErrCorruptEpoch, b[:4])
	}
	if got, want := binary.BigEndian.Uint32(b[12:]), crc32.Checksum(b[:12], castagnoli); got != want {
		return 0, fmt.Errorf("%w: checksum %08x; want %08x", ErrCorruptEpoch, got, want)
	}
	return binary.BigEndian.Uint64(b[4:12]), nil
}

// FileEpochStore is an EpochStore in one small file. Save replaces the file
// atomically (write a temporary file, fsync it, rename it over the old one,
// fsync the directory), so a crash leaves either the old epoch or the new
// one, never a torn record.
//
// A store made by OpenFileEpochStore holds an exclusive lock on
// path+".lock" until Close, so two nodes never share an epoch file.
type FileEpochStore struct {
	fs   vfs.FS
	path string
	mu   sync.Mutex // serializes Save and Close, so the last Save to return is the one on disk
	lock io.Closer  // nil for a store made by NewFileEpochStore, or once closed
}

var _ EpochStore = (*FileEpochStore)(nil)

// ErrLocked is returned by OpenFileEpochStore when another store, in this
// process or another, holds the epoch file. The error names the holder's
// pid when it is known.
var ErrLocked = errors.New("election: epoch file is in use")

// EpochStoreOptions configure OpenFileEpochStore. The zero value is the
// default.
type EpochStoreOptions struct {
	// FS is the file system the file lives on. Nil is the operating
	// system's (vfs.OS); tests pass a vfs.CrashFS to simulate power loss.
	FS vfs.FS
}

// lockSuffix names the lock file next to the epoch file.
const lockSuffix = ".lock"

// OpenFileEpochStore returns a store that keeps the epoch in the file at
// path, locked against every other opener (in this process or another,
// ErrLocked) until Close. The file need not exist (a first boot); its
// directory must. Temporary files an interrupted Save left are removed.
func OpenFileEpochStore(path string, opts EpochStoreOptions) (*FileEpochStore, error) {
	s, err := newFileEpochStore(path, vfs.Or(opts.FS))
	if err != nil {
		return nil, err
	}
	lock, err := s.fs.Lock(path + lockSuffix)
	if err != nil {
		if errors.Is(err, vfs.ErrLocked) {
			return nil, fmt.Errorf("%w: %s: %w", ErrLocked, path, err)
		}
		return nil, fmt.Errorf("election: open epoch store: lock: %w", err)
	}
	if err := wal.RemoveTempFilesOfFS(s.fs, path); err != nil {
		lock.Close()
		return nil, fmt.Errorf("election: open epoch store: %w", err)
	}
	s.lock = lock
	return s, nil
}

// NewFileEpochStore returns a store that keeps the epoch in the file at
// path. The file need not exist (a first boot); its directory must. It
// takes no lock: prefer OpenFileEpochStore, which refuses a second opener.
func NewFileEpochStore(path string) (*FileEpochStore, error) {
	return newFileEpochStore(path, vfs.OS)
}

func newFileEpochStore(path string, fsys vfs.FS) (*FileEpochStore, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: epoch store path is empty", ErrInvalidConfig)
	}
	dir := filepath.Dir(path)
	if _, err := fsys.ReadDir(dir); err != nil {
		return nil, fmt.Errorf("%w: epoch store directory: %w", ErrInvalidConfig, err)
	}
	return &FileEpochStore{fs: fsys, path: path}, nil
}

// Close releases the lock OpenFileEpochStore took. The store must not be
// used afterwards. Close of a store made by NewFileEpochStore does nothing.
func (s *FileEpochStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close()
	s.lock = nil
	if err != nil {
		return fmt.Errorf("election: close epoch store: %w", err)
	}
	return nil
}

// Load implements EpochStore.
func (s *FileEpochStore) Load() (uint64, error) {
	b, err := vfs.ReadFile(vfs.Or(s.fs), s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("election: load epoch: %w", err)
	}
	e, err := DecodeEpoch(b)
	if err != nil {
		return 0, fmt.Errorf("%w (file %s)", err, s.path)
	}
	return e, nil
}

// Save implements EpochStore. The file is replaced atomically (temporary
// file, fsync, rename, fsync of the directory), so a crash leaves either the
// old epoch or the new one, never a torn record.
func (s *FileEpochStore) Save(epoch uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := wal.WriteFileAtomicFS(vfs.Or(s.fs), s.path, func(w io.Writer) error {
		_, err := w.Write(EncodeEpoch(epoch))
		return err
	})
	if err != nil {
		return fmt.Errorf("election: save epoch: %w", err)
	}
	return nil
}

// MemoryEpochStore is an EpochStore in memory: it survives a Node being
// closed and rebuilt in one process (tests), not a process restart. The
// zero value is ready to use.
type MemoryEpochStore struct {
	mu    sync.Mutex // guards epoch
	epoch uint64
}

var _ EpochStore = (*MemoryEpochStore)(nil)

// Load implements EpochStore.
func (s *MemoryEpochStore) Load() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch, nil
}

// Save implements EpochStore.
func (s *MemoryEpochStore) Save(epoch uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.epoch = epoch
	return nil
}
