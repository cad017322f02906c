package wal

import (
	"errors"
	"fmt"
)

// Sentinel errors. Compare with errors.Is; returned errors wrap them with
// detail.
var (
	// ErrClosed is returned by every operation on a closed Log.
	ErrClosed = errors.New("wal: closed")
	// ErrCorrupt reports a record whose checksum or length is wrong where
	// a crash cannot explain it (in a sealed segment, or followed by a
	// valid record of a later write batch), or a directory whose segments
	// do not form one contiguous log. Open returns it as a *CorruptError
	// naming the file and offset. A torn tail of the last segment is not
	// reported: Open truncates it.
	ErrCorrupt = errors.New("wal: corrupt record")
	// ErrTruncated reports a record cut short by the end of its data.
	ErrTruncated = errors.New("wal: truncated record")
	// ErrNotFound is returned by Read for an index outside
	// [FirstIndex, LastIndex].
	ErrNotFound = errors.New("wal: index not in log")
	// ErrTooLarge is returned by Append for a payload over MaxRecordSize.
	ErrTooLarge = errors.New("wal: record too large")
	// ErrInvalidArgument reports a bad option or argument.
	ErrInvalidArgument = errors.New("wal: invalid argument")
)

// CorruptError is the error Open returns for damage a crash cannot explain:
// acknowledged records have gone bad, and cutting them off would silently
// lose them. errors.Is(err, ErrCorrupt) holds for it.
type CorruptError struct {
	// File is the damaged segment file.
	File string
	// Offset is the byte offset of the first damaged record in File.
	Offset int64
	// Err says what is wrong there.
	Err error
}

// Error names the file and offset.
func (e *CorruptError) Error() string {
	return fmt.Sprintf("wal: corrupt log: %s at offset %d: %v", e.File, e.Offset, e.Err)
}

// Unwrap returns the underlying decoding error.
func (e *CorruptError) Unwrap() error { return e.Err }

// Is reports whether target is ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }
