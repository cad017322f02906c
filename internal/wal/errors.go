package wal

import "errors"

// Sentinel errors. Compare with errors.Is; returned errors wrap them with
// detail.
var (
	// ErrClosed is returned by every operation on a closed Log.
	ErrClosed = errors.New("wal: closed")
	// ErrCorrupt reports a record whose checksum or length is wrong, or a
	// directory whose segments do not form one contiguous log. A corrupt
	// tail of the last segment is not reported: Open truncates it.
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
