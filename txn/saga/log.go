package saga

import (
	"encoding/binary"
	"fmt"
	"sync"

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

// Close implements Log.
func (l *MemoryLog) Close() error { return nil }

// FileLog is a Log in a directory: a write-ahead log (internal/wal:
// checksummed frames, fsynced, concurrent appends share an fsync; a torn
// tail is cut at open, corruption before it refused).
type FileLog struct {
	w *wal.Log
}

var _ Log = (*FileLog)(nil)

// OpenFileLog opens (creating if needed) the saga log in dir.
func OpenFileLog(dir string) (*FileLog, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: empty log directory", ErrInvalid)
	}
	w, err := wal.Open(dir, wal.Options{SegmentSize: 4 << 20})
	if err != nil {
		return nil, fmt.Errorf("saga: open log: %w", err)
	}
	return &FileLog{w: w}, nil
}

// Load implements Log.
func (l *FileLog) Load() ([]Event, error) {
	var evs []Event
	err := l.w.Replay(l.w.FirstIndex(), func(_ uint64, p []byte) error {
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
func (l *FileLog) Close() error { return l.w.Close() }
