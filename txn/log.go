package txn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/distkit/distkit/internal/vfs"
	"github.com/distkit/distkit/internal/wal"
)

// Log is the durable log a Coordinator or Participant keeps its records
// in. Implementations: MemoryLog (tests, benchmarks) and FileLog.
type Log interface {
	// Load returns every record, oldest first: the last checkpoint's
	// records followed by those appended since. The records are the
	// caller's.
	Load() ([]Record, error)
	// Append adds records durably: when it returns they survive a crash.
	Append(recs []Record) error
	// Replace atomically and durably replaces the whole log with recs (a
	// checkpoint): after a crash the log is either the old one or recs.
	Replace(recs []Record) error
	// Close releases the log.
	Close() error
}

// MemoryLog is a Log in memory, for tests and benchmarks: it survives a
// restart of the Coordinator or Participant that uses it, not of the
// process. It is safe for concurrent use.
type MemoryLog struct {
	// mu guards recs.
	mu   sync.Mutex
	recs []Record
}

var _ Log = (*MemoryLog)(nil)

// NewMemoryLog returns an empty MemoryLog.
func NewMemoryLog() *MemoryLog { return &MemoryLog{} }

// Load implements Log.
func (l *MemoryLog) Load() ([]Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Record(nil), l.recs...), nil
}

// Append implements Log.
func (l *MemoryLog) Append(recs []Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, recs...)
	return nil
}

// Replace implements Log.
func (l *MemoryLog) Replace(recs []Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append([]Record(nil), recs...)
	return nil
}

// Close implements Log.
func (l *MemoryLog) Close() error { return nil }

// Len returns the number of records held.
func (l *MemoryLog) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.recs)
}

// FileLog is a Log in a directory: records in a write-ahead log (package
// internal/wal: checksummed, fsynced, concurrent appends share an fsync)
// and checkpoints in a file replaced atomically. A checkpoint records the
// index of the last record it covers; the log segments it covers are then
// deleted.
type FileLog struct {
	fs   vfs.FS
	lock io.Closer // the exclusive lock on dir, released by Close
	dir  string
	w    *wal.Log
	// mu guards base (the last index the checkpoint covers) against
	// concurrent Replace and Load.
	mu   sync.Mutex
	base uint64
}

var _ Log = (*FileLog)(nil)

const (
	checkpointFile = "checkpoint"
	lockFileName   = "LOCK"
)

// ErrLogLocked is returned by OpenFileLog when another FileLog, in this
// process or another, holds the directory. The error names the holder's
// pid when it is known.
var ErrLogLocked = errors.New("txn: log directory is in use")

// FileLogOptions configure a FileLog. The zero value is the default.
type FileLogOptions struct {
	// FS is the file system the log lives on. Nil is the operating
	// system's (vfs.OS); tests pass a vfs.CrashFS to simulate power loss.
	FS vfs.FS
	// Logger receives recovery notices (a torn tail cut off, at WARN).
	// Nil is silent.
	Logger *slog.Logger
}

// OpenFileLog opens (creating if needed) the log in dir, with the default
// options. See OpenFileLogWith.
func OpenFileLog(dir string) (*FileLog, error) {
	return OpenFileLogWith(dir, FileLogOptions{})
}

// OpenFileLogWith opens (creating if needed) the log in dir and takes an
// exclusive lock on it for as long as it is open: a second opener, in this
// process or another, gets ErrLogLocked. A torn tail of the log (the last
// write batch, damaged by a crash, with nothing written after it) is cut
// off; any other damage fails with an error wrapping ErrMalformed (and
// wal.ErrCorrupt, naming the file and offset), because cutting it off
// would lose acknowledged records.
func OpenFileLogWith(dir string, opts FileLogOptions) (*FileLog, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: empty log directory", ErrInvalid)
	}
	fsys := vfs.Or(opts.FS)
	if err := vfs.MkdirAllDurable(fsys, dir); err != nil {
		return nil, fmt.Errorf("txn: open log: %w", err)
	}
	lock, err := fsys.Lock(filepath.Join(dir, lockFileName))
	if err != nil {
		if errors.Is(err, vfs.ErrLocked) {
			return nil, fmt.Errorf("%w: %s: %w", ErrLogLocked, dir, err)
		}
		return nil, fmt.Errorf("txn: open log: lock: %w", err)
	}
	if err := wal.RemoveTempFilesFS(fsys, dir); err != nil {
		lock.Close()
		return nil, fmt.Errorf("txn: open log: %w", err)
	}
	w, err := wal.Open(filepath.Join(dir, "wal"), wal.Options{SegmentSize: 4 << 20, FS: fsys, Logger: opts.Logger})
	if err != nil {
		lock.Close()
		if errors.Is(err, wal.ErrCorrupt) {
			return nil, fmt.Errorf("txn: open log: %w: %w", ErrMalformed, err)
		}
		return nil, fmt.Errorf("txn: open log: %w", err)
	}
	l := &FileLog{fs: fsys, lock: lock, dir: dir, w: w}
	if _, l.base, err = l.readCheckpoint(); err != nil {
		w.Close()
		lock.Close()
		return nil, err
	}
	return l, nil
}

// readCheckpoint returns the checkpoint's records and the index it covers.
func (l *FileLog) readCheckpoint() ([]Record, uint64, error) {
	b, err := vfs.ReadFile(l.fs, filepath.Join(l.dir, checkpointFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("txn: read checkpoint: %w", err)
	}
	// The first frame holds the index the checkpoint covers, so it is
	// checksummed like the records.
	hdr, n, err := wal.DecodeFrame(b)
	if err == nil && len(hdr) != 8 {
		err = fmt.Errorf("header of %d bytes, want 8", len(hdr))
	}
	if err != nil {
		return nil, 0, fmt.Errorf("%w: checkpoint header: %w", ErrMalformed, err)
	}
	base := binary.BigEndian.Uint64(hdr)
	recs, rest, err := DecodeFramed(b[n:])
	if err == nil && len(rest) != 0 {
		err = fmt.Errorf("%w: checkpoint has %d bytes of garbage", ErrMalformed, len(rest))
	}
	if err != nil {
		return nil, 0, fmt.Errorf("txn: read checkpoint: %w", err)
	}
	return recs, base, nil
}

// Load implements Log.
func (l *FileLog) Load() ([]Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	recs, base, err := l.readCheckpoint()
	if err != nil {
		return nil, err
	}
	err = l.w.Replay(base+1, func(_ uint64, payload []byte) error {
		r, err := UnmarshalRecord(payload)
		if err != nil {
			return err
		}
		r.Participants = cloneIDs(r.Participants)
		r.Data = cloneBytes(r.Data)
		recs = append(recs, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("txn: load log: %w", err)
	}
	return recs, nil
}

// Append implements Log.
func (l *FileLog) Append(recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	payloads := make([][]byte, len(recs))
	for i, r := range recs {
		b, err := r.MarshalBinary()
		if err != nil {
			return err
		}
		payloads[i] = b
	}
	if _, err := l.w.Append(payloads...); err != nil {
		return fmt.Errorf("txn: append: %w", err)
	}
	return nil
}

// Replace implements Log: it writes the checkpoint file atomically, then
// deletes the log segments the checkpoint covers.
func (l *FileLog) Replace(recs []Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	last := l.w.LastIndex()
	err := wal.WriteFileAtomicFS(l.fs, filepath.Join(l.dir, checkpointFile), func(w io.Writer) error {
		b := wal.AppendFrame(nil, binary.BigEndian.AppendUint64(nil, last))
		b, err := AppendFramed(b, recs...)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	})
	if err != nil {
		return fmt.Errorf("txn: checkpoint: %w", err)
	}
	l.base = last
	if err := l.w.DeleteBefore(last + 1); err != nil {
		return fmt.Errorf("txn: checkpoint: %w", err)
	}
	return nil
}

// Close implements Log. It closes the log and releases the directory's
// lock.
func (l *FileLog) Close() error {
	err := l.w.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lock != nil {
		if lerr := l.lock.Close(); err == nil && lerr != nil {
			err = fmt.Errorf("txn: unlock log: %w", lerr)
		}
		l.lock = nil
	}
	return err
}

// AppendFramed appends records to dst as checksummed frames (see
// wal.AppendFrame: CRC32C, length, the encoded record), the format of
// checkpoint files and of simple append-only logs. A record whose encoding
// exceeds wal.MaxFrameSize is refused with ErrInvalid: DecodeFramed could
// not read it back.
func AppendFramed(dst []byte, recs ...Record) ([]byte, error) {
	for _, r := range recs {
		b, err := r.MarshalBinary()
		if err != nil {
			return nil, err
		}
		if len(b) > wal.MaxFrameSize {
			return nil, fmt.Errorf("%w: record of %d bytes exceeds %d", ErrInvalid, len(b), wal.MaxFrameSize)
		}
		dst = wal.AppendFrame(dst, b)
	}
	return dst, nil
}

// DecodeFramed decodes frames from b until the end or the first frame that
// is incomplete or fails its checksum, and returns the records and the
// undecoded rest (a torn tail after a crash). A frame that passes its
// checksum but does not decode is an error. The records alias b.
func DecodeFramed(b []byte) (recs []Record, rest []byte, err error) {
	for len(b) > 0 {
		body, n, err := wal.DecodeFrame(b)
		if err != nil {
			// Torn (wal.ErrTruncated) or damaged (wal.ErrCorrupt): either
			// way nothing from here on can be trusted; the caller decides
			// whether a rest is a torn tail to cut or an error.
			return recs, b, nil
		}
		r, err := UnmarshalRecord(body)
		if err != nil {
			return recs, b, err
		}
		recs = append(recs, r)
		b = b[n:]
	}
	return recs, nil, nil
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

func cloneIDs[S ~[]E, E any](s S) S {
	if s == nil {
		return nil
	}
	return append(S(nil), s...)
}
