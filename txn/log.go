package txn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"

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
	dir string
	w   *wal.Log
	// mu guards base (the last index the checkpoint covers) against
	// concurrent Replace and Load.
	mu   sync.Mutex
	base uint64
}

var _ Log = (*FileLog)(nil)

const checkpointFile = "checkpoint"

// OpenFileLog opens (creating if needed) the log in dir.
func OpenFileLog(dir string) (*FileLog, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: empty log directory", ErrInvalid)
	}
	w, err := wal.Open(filepath.Join(dir, "wal"), wal.Options{SegmentSize: 4 << 20})
	if err != nil {
		return nil, fmt.Errorf("txn: open log: %w", err)
	}
	l := &FileLog{dir: dir, w: w}
	if _, l.base, err = l.readCheckpoint(); err != nil {
		w.Close()
		return nil, err
	}
	return l, nil
}

// readCheckpoint returns the checkpoint's records and the index it covers.
func (l *FileLog) readCheckpoint() ([]Record, uint64, error) {
	b, err := os.ReadFile(filepath.Join(l.dir, checkpointFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("txn: read checkpoint: %w", err)
	}
	if len(b) < 8 {
		return nil, 0, fmt.Errorf("%w: checkpoint of %d bytes", ErrMalformed, len(b))
	}
	base := binary.BigEndian.Uint64(b)
	recs, rest, err := DecodeFramed(b[8:])
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
	err := wal.WriteFileAtomic(filepath.Join(l.dir, checkpointFile), func(w io.Writer) error {
		var hdr [8]byte
		binary.BigEndian.PutUint64(hdr[:], last)
		if _, err := w.Write(hdr[:]); err != nil {
			return err
		}
		b, err := AppendFramed(nil, recs...)
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

// Close implements Log.
func (l *FileLog) Close() error { return l.w.Close() }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// AppendFramed appends records to dst as frames (uvarint length, CRC32C of
// the record, the record), the format of checkpoint files and of simple
// append-only logs.
func AppendFramed(dst []byte, recs ...Record) ([]byte, error) {
	for _, r := range recs {
		b, err := r.MarshalBinary()
		if err != nil {
			return nil, err
		}
		dst = binary.AppendUvarint(dst, uint64(len(b)))
		dst = binary.BigEndian.AppendUint32(dst, crc32.Checksum(b, castagnoli))
		dst = append(dst, b...)
	}
	return dst, nil
}

// DecodeFramed decodes frames from b until the end or the first frame that
// is incomplete or fails its checksum, and returns the records and the
// undecoded rest (a torn tail after a crash). A frame that passes its
// checksum but does not decode is an error. The records alias b.
func DecodeFramed(b []byte) (recs []Record, rest []byte, err error) {
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)) || uint64(len(b)-k) < 4+n {
			return recs, b, nil
		}
		sum := binary.BigEndian.Uint32(b[k:])
		body := b[k+4 : k+4+int(n)]
		if crc32.Checksum(body, castagnoli) != sum {
			return recs, b, nil
		}
		r, err := UnmarshalRecord(body)
		if err != nil {
			return recs, b, err
		}
		recs = append(recs, r)
		b = b[k+4+int(n):]
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
