package detector

import (
	"errors"
	"fmt"
)

// Sentinel errors. Compare with errors.Is; the messages returned by the
// package wrap them with the offending value.
var (
	// ErrInvalidConfig is wrapped by every Validate error.
	ErrInvalidConfig = errors.New("detector: invalid config")
	// ErrUnknownMember is returned for a member that was never added or has
	// been removed.
	ErrUnknownMember = errors.New("detector: unknown member")
	// ErrDuplicateMember is returned when adding a member that is already present.
	ErrDuplicateMember = errors.New("detector: member already present")
	// ErrSelf is returned when a node is asked to monitor itself.
	ErrSelf = errors.New("detector: a node cannot monitor itself")
	// ErrMalformed is returned when a received message cannot be decoded.
	ErrMalformed = errors.New("detector: malformed message")
	// ErrClosed is returned by a Monitor after Close.
	ErrClosed = errors.New("detector: monitor closed")
)

// errNilDetector is what the methods of a nil *FixedTimeout, *PhiAccrual,
// *Membership or *Monitor report (their zero values are usable, or report
// their own errors).
var errNilDetector = fmt.Errorf("%w: nil pointer receiver", ErrInvalidConfig)
