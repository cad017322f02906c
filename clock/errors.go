package clock

import "errors"

// Sentinel errors returned by this package. Compare with errors.Is; the
// returned errors usually wrap one of these with the offending values.
var (
	// ErrTimestampTooLarge is returned when a remote Lamport timestamp or a
	// decoded vector counter exceeds MaxCounter. Accepting it could make the
	// clock wrap around, which would break the clock condition.
	ErrTimestampTooLarge = errors.New("clock: timestamp too large")

	// ErrOffsetExceeded is returned by HLC.Update when a remote timestamp is
	// further ahead of the local wall clock than the configured maximum
	// offset. The returned error is an *OffsetError.
	ErrOffsetExceeded = errors.New("clock: remote timestamp beyond maximum clock offset")

	// ErrInvalidTimestamp is returned when a packed hybrid timestamp or a
	// wall time lies outside the representable range.
	ErrInvalidTimestamp = errors.New("clock: invalid timestamp")

	// ErrMalformed is returned when a vector clock encoding cannot be
	// decoded or is not in canonical form.
	ErrMalformed = errors.New("clock: malformed vector clock encoding")

	// ErrInvalidNodeID is returned by Vector.MarshalJSON for a node ID that
	// is not valid UTF-8, which JSON cannot carry faithfully. The binary
	// encoding carries any bytes.
	ErrInvalidNodeID = errors.New("clock: invalid node ID")

	// ErrInvalidConfig is returned by the Validate methods and the
	// constructors that call them.
	ErrInvalidConfig = errors.New("clock: invalid config")
)
