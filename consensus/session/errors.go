package session

import "errors"

// Sentinel errors. Compare with errors.Is. A command refused with one of
// them was not applied (it had no effect on the state machine).
var (
	// ErrSessionExpired refuses a command whose session is unknown to the
	// table: it expired (idle longer than Config.TTL in leader-stamped
	// time), was evicted to make room (Config.MaxSessions), was closed, or
	// never existed.
	ErrSessionExpired = errors.New("session: session expired or unknown")
	// ErrResultDiscarded refuses a command whose sequence number is below
	// the lowest one the client still waits for: the client gave up on it
	// or already has its answer, so its cached result (if any) is gone and
	// it must not be applied now.
	ErrResultDiscarded = errors.New("session: command already acknowledged by the client; result discarded")
	// ErrTooManyPending refuses a command when its session already caches
	// Config.MaxPending results that the client has not acknowledged.
	ErrTooManyPending = errors.New("session: too many unacknowledged commands in the session")
	// ErrMalformed reports an envelope or a table encoding that cannot be
	// decoded.
	ErrMalformed = errors.New("session: malformed data")
	// ErrInvalidConfig is wrapped by Config.Validate's errors.
	ErrInvalidConfig = errors.New("session: invalid config")
)
