package txn

import (
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/distkit/distkit/transport"
)

// Sentinel errors. Compare with errors.Is; returned errors wrap them with detail.
var (
	// ErrInvalid reports a bad argument or configuration.
	ErrInvalid = errors.New("txn: invalid argument")
	// ErrMalformed reports a message or log record that does not decode.
	ErrMalformed = errors.New("txn: malformed encoding")
	// ErrDuplicateTxn is returned when a transaction ID is already in use.
	ErrDuplicateTxn = errors.New("txn: duplicate transaction ID")
	// ErrClosed is returned by a closed Coordinator or Participant.
	ErrClosed = errors.New("txn: closed")
	// ErrAborted is wrapped by every *AbortError.
	ErrAborted = errors.New("txn: aborted")
	// ErrVotedNo is the cause of an abort when a participant voted NO.
	ErrVotedNo = errors.New("txn: participant voted NO")
	// ErrTimeout is the cause of an abort when votes did not arrive within
	// the transaction's timeout.
	ErrTimeout = errors.New("txn: vote timeout")
	// ErrCancelled is the cause of an abort requested by the caller
	// (its context ended before the decision).
	ErrCancelled = errors.New("txn: cancelled before the decision")
)

// AbortError says why a transaction aborted. It wraps ErrAborted and its
// Cause (ErrVotedNo, ErrTimeout or ErrCancelled).
type AbortError struct {
	Txn uuid.UUID
	// Cause is ErrVotedNo, ErrTimeout or ErrCancelled.
	Cause error
	// Participants are the participant that voted NO, or those whose
	// votes were missing at the timeout or cancellation.
	Participants []transport.NodeID
	// Reason is the NO voter's explanation (from its resource manager).
	Reason string
}

// Error implements error.
func (e *AbortError) Error() string {
	s := fmt.Sprintf("txn: %s aborted: %v", e.Txn, e.Cause)
	if len(e.Participants) > 0 {
		s += fmt.Sprintf(" (%v)", e.Participants)
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Unwrap lets errors.Is match ErrAborted and the Cause.
func (e *AbortError) Unwrap() []error { return []error{ErrAborted, e.Cause} }

// errNotBuilt is what the methods of a nil pointer, or of a Coordinator,
// Participant or FileLog not made by its constructor, report.
var errNotBuilt = fmt.Errorf("%w: nil or zero value, not made by its constructor", ErrInvalid)
