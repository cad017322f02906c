package saga

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/distkit/distkit/internal/vfs"
	"github.com/distkit/distkit/internal/wal"
)

// EventKind says what an Event records.
type EventKind uint8

// Event kinds, in the order a saga logs them.
const (
	// EvStart: saga ID began, running the saga registered as Name.
	EvStart EventKind = 1 + iota
	// EvStepDone: the action of step Step succeeded.
	EvStepDone
	// EvTurnBack: the action of step Step failed for good (Reason): the
	// saga now compensates, from Step down to step 0.
	EvTurnBack
	// EvCompensated: the compensation of step Step succeeded.
	EvCompensated
	// EvEnd: the saga finished with Outcome.
	EvEnd
	maxEventKind = EvEnd
)

// Event is one record of the saga log.
type Event struct {
	Kind    EventKind
	ID      string // the saga instance
	Name    string // EvStart: the registered saga it runs
	Step    int    // EvStepDone, EvTurnBack, EvCompensated
	Reason  string // EvTurnBack: why the step failed
	Outcome Outcome
}

// Limits a decoder enforces.
const (
	maxID     = 256
	maxName   = 256
	maxReason = 1024
	maxSteps  = 1024
)

const eventVersion = 1

// MarshalBinary encodes e:
//
//	version (1) | kind (1) | outcome (1) | step (uvarint) | id | name | reason
//
// (strings as uvarint length and bytes).
func (e Event) MarshalBinary() ([]byte, error) {
	switch {
	case e.Kind == 0 || e.Kind > maxEventKind:
		return nil, fmt.Errorf("%w: event kind %d", ErrInvalid, e.Kind)
	case e.ID == "" || len(e.ID) > maxID:
		return nil, fmt.Errorf("%w: saga ID of %d bytes", ErrInvalid, len(e.ID))
	case len(e.Name) > maxName || e.Step < 0 || e.Step >= maxSteps || e.Outcome > Compensated:
		return nil, fmt.Errorf("%w: event %+v", ErrInvalid, e)
	}
	reason := e.Reason
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	b := []byte{eventVersion, byte(e.Kind), byte(e.Outcome)}
	b = binary.AppendUvarint(b, uint64(e.Step))
	for _, s := range []string{e.ID, e.Name, reason} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b, nil
}

// UnmarshalEvent decodes an event; errors wrap ErrMalformed.
func UnmarshalEvent(b []byte) (Event, error) {
	bad := func(what string) (Event, error) {
		return Event{}, fmt.Errorf("%w: event %s", ErrMalformed, what)
	}
	if len(b) < 3 {
		return bad("truncated")
	}
	if b[0] != eventVersion {
		return bad(fmt.Sprintf("version %d", b[0]))
	}
	e := Event{Kind: EventKind(b[1]), Outcome: Outcome(b[2])}
	if e.Kind == 0 || e.Kind > maxEventKind || e.Outcome > Compensated {
		return bad("kind or outcome")
	}
	b = b[3:]
	step, n := binary.Uvarint(b)
	if n <= 0 || step >= maxSteps {
		return bad("step")
	}
	e.Step, b = int(step), b[n:]
	var strs [3]string
	for i, limit := range []int{maxID, maxName, maxReason} {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(limit) || l > uint64(len(b)-n) {
			return bad("string length")
		}
		strs[i], b = string(b[n:n+int(l)]), b[n+int(l):]
	}
	if len(b) != 0 {
		return bad("trailing bytes")
	}
	e.ID, e.Name, e.Reason = strs[0], strs[1], strs[2]
	if e.ID == "" {
		return bad("with no saga ID")
	}
	return e, nil
}

// Log is the durable saga log a Runner writes before and after every step,
// so that a crashed runner resumes where it stopped.
type Log interface {
	// Load returns every event, oldest first.
	Load() ([]Event, error)
	// Append adds events durably: when it returns they survive a crash.
	Append(evs ...Event) error
	// Close releases the log.
	Close() error
}

// Compacter is a Log that can forget what is no longer needed. A Runner
// whose Log implements it compacts every Config.CompactEvery ended sagas:
// it calls Compact with the events of the sagas still running, which
// replace everything logged so far.
type Compacter interface {
	// Compact replaces every event logged so far by live, atomically: a
	// crash at any point leaves either the old events or live (each
	// followed by whatever was appended after Compact returned). The
	// caller appends nothing while Compact runs.
	Compact(live []Event) error
}

// MemoryLog is a Log in memory (tests; it survives a Runner, not the
// process). It is safe for concurrent use.
type MemoryLog struct {
	// mu guards evs.
	mu  sync.Mutex
	evs []Event
}

var _ Log = (*MemoryLog)(nil)

// NewMemoryLog returns an empty MemoryLog.
func NewMemoryLog() *MemoryLog { return &MemoryLog{} }

// Load implements Log.
func (l *MemoryLog) Load() ([]Event, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.evs...), nil
}

// Append implements Log.
func (l *MemoryLog) Append(evs ...Event) error {
	for _, e := range evs {
		if _, err := e.MarshalBinary(); err != nil {
			return err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evs = append(l.evs, evs...)
	return nil
}

// Compact implements Compacter.
func (l *MemoryLog) Compact(live []Event) error {
	for _, e := range live {
		if _, err := e.MarshalBinary(); err != nil {
			return err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evs = append([]Event(nil), live...)
	return nil
}

// Close implements Log.
func (l *MemoryLog) Close() error { return nil }

// FileLog is a Log in a directory: a write-ahead log (internal/wal:
// checksummed frames, fsynced, concurrent appends share an fsync; a torn
// tail is cut at open, corruption before it refused) and, once compacted,
// a checkpoint file holding the events of the sagas that were running and
// the log index it covers.
//
// Compaction is crash-safe: the checkpoint is written to a temporary
// file, fsynced, renamed over the old one and the directory fsynced
// before any log segment it covers is removed; Load reads the checkpoint
// and then only the log records after the index it covers. A crash before
// the rename leaves the old state, one after it the new, whatever
// segments are still there. A damaged checkpoint is refused
// (ErrMalformed), never skipped.
type FileLog struct {
	// mu serializes Compact with Load (appends go to w directly).
	mu  sync.Mutex
	fs  vfs.FS
	dir string
	w   *wal.Log
}

var _ Log = (*FileLog)(nil)
var _ Compacter = (*FileLog)(nil)

// checkpointFile is the name of the compaction checkpoint in the log's
// directory.
const checkpointFile = "saga.checkpoint"

// FileLogOptions configures OpenFileLogWith.
type FileLogOptions struct {
	// FS is the file system the log lives on. Nil is the operating
	// system's; tests pass a vfs.CrashFS to simulate power loss.
	FS vfs.FS
	// SegmentSize is the size past which the log starts a new segment
	// file (the unit compaction removes). 0 means 4 MiB.
	SegmentSize int64
}

// OpenFileLog opens (creating if needed) the saga log in dir.
func OpenFileLog(dir string) (*FileLog, error) {
	return OpenFileLogWith(dir, FileLogOptions{})
}

// OpenFileLogWith opens (creating if needed) the saga log in dir with
// opts.
func OpenFileLogWith(dir string, opts FileLogOptions) (*FileLog, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: empty log directory", ErrInvalid)
	}
	if opts.SegmentSize < 0 {
		return nil, fmt.Errorf("%w: SegmentSize %d", ErrInvalid, opts.SegmentSize)
	}
	if opts.SegmentSize == 0 {
		opts.SegmentSize = 4 << 20
	}
	fsys := vfs.Or(opts.FS)
	w, err := wal.Open(dir, wal.Options{SegmentSize: opts.SegmentSize, FS: fsys})
	if err != nil {
		return nil, fmt.Errorf("saga: open log: %w", err)
	}
	if err := wal.RemoveTempFilesOfFS(fsys, filepath.Join(dir, checkpointFile)); err != nil {
		w.Close()
		return nil, fmt.Errorf("saga: open log: %w", err)
	}
	l := &FileLog{fs: fsys, dir: dir, w: w}
	if _, _, err := l.readCheckpoint(); err != nil {
		w.Close()
		return nil, err
	}
	return l, nil
}

// readCheckpoint returns the checkpoint's events and the log index it
// covers (none and 0 if there is no checkpoint).
func (l *FileLog) readCheckpoint() ([]Event, uint64, error) {
	b, err := vfs.ReadFile(l.fs, filepath.Join(l.dir, checkpointFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("saga: read checkpoint: %w", err)
	}
	bad := func(err error) ([]Event, uint64, error) {
		return nil, 0, fmt.Errorf("saga: read checkpoint: %w: %w", ErrMalformed, err)
	}
	// Every part is a checksummed frame: the index covered, then the
	// events; a frame holding "end" closes it, so that a checkpoint cut
	// short is refused too.
	hdr, n, err := wal.DecodeFrame(b)
	if err == nil && len(hdr) != 8 {
		err = fmt.Errorf("header of %d bytes, want 8", len(hdr))
	}
	if err != nil {
		return bad(err)
	}
	base := binary.BigEndian.Uint64(hdr)
	b = b[n:]
	var evs []Event
	for {
		p, n, err := wal.DecodeFrame(b)
		if err != nil {
			return bad(err)
		}
		b = b[n:]
		if len(p) == 0 {
			break // the end frame
		}
		e, err := UnmarshalEvent(p)
		if err != nil {
			return bad(err)
		}
		evs = append(evs, e)
	}
	if len(b) != 0 {
		return bad(fmt.Errorf("%d bytes after the end", len(b)))
	}
	return evs, base, nil
}

// errNotOpened is returned by the methods of a FileLog not made by
// OpenFileLog.
var errNotOpened = fmt.Errorf("%w: FileLog not opened by OpenFileLog", ErrInvalid)

// Compact implements Compacter: it writes the checkpoint (live, covering
// every record logged so far) atomically, then removes the log segments
// it covers.
func (l *FileLog) Compact(live []Event) error {
	if l == nil || l.w == nil {
		return errNotOpened
	}
	b := []byte{}
	for _, e := range live {
		p, err := e.MarshalBinary()
		if err != nil {
			return err
		}
		b = wal.AppendFrame(b, p)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	last := l.w.LastIndex()
	err := wal.WriteFileAtomicFS(l.fs, filepath.Join(l.dir, checkpointFile), func(w io.Writer) error {
		out := wal.AppendFrame(nil, binary.BigEndian.AppendUint64(nil, last))
		out = append(out, b...)
		out = wal.AppendFrame(out, nil)
		_, err := w.Write(out)
		return err
	})
	if err != nil {
		return fmt.Errorf("saga: compact: %w", err)
	}
	if err := l.w.DeleteBefore(last + 1); err != nil {
		return fmt.Errorf("saga: compact: %w", err)
	}
	return nil
}

// Load implements Log.
func (l *FileLog) Load() ([]Event, error) {
	if l == nil || l.w == nil {
		return nil, errNotOpened
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	evs, base, err := l.readCheckpoint()
	if err != nil {
		return nil, err
	}
	err = l.w.Replay(max(l.w.FirstIndex(), base+1), func(_ uint64, p []byte) error {
		e, err := UnmarshalEvent(p)
		if err != nil {
			return err
		}
		evs = append(evs, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("saga: load log: %w", err)
	}
	return evs, nil
}

// Append implements Log.
func (l *FileLog) Append(evs ...Event) error {
	if l == nil || l.w == nil {
		return errNotOpened
	}
	ps := make([][]byte, len(evs))
	for i, e := range evs {
		b, err := e.MarshalBinary()
		if err != nil {
			return err
		}
		ps[i] = b
	}
	if _, err := l.w.Append(ps...); err != nil {
		return fmt.Errorf("saga: append: %w", err)
	}
	return nil
}

// Close implements Log.
func (l *FileLog) Close() error {
	if l == nil || l.w == nil {
		return errNotOpened
	}
	return l.w.Close()
}
