package lock

import "errors"

// Sentinel errors. Compare with errors.Is; the errors returned wrap them
// with detail.
var (
	// ErrLocked is returned by TryLock (and a non-waiting Acquire) when
	// another session holds the lock or the lock is in its lock-delay.
	ErrLocked = errors.New("lock: held by another session")
	// ErrNotHolder is returned by Unlock and Release when the session does
	// not hold the lock with the given token: it was never granted, was
	// already released, or the session's lease expired and the lock passed
	// on. A stale or duplicate release never frees another holder's grant.
	ErrNotHolder = errors.New("lock: not the holder of this grant")
	// ErrNoSession is returned when the service does not know the session:
	// it expired (its lease ran out) or was ended.
	ErrNoSession = errors.New("lock: no such session (expired or ended)")
	// ErrLeaseLost is the cause reported by a Session whose lease can no
	// longer be trusted: its conservative bound passed before a keepalive
	// was acknowledged, or the service said the session is gone.
	ErrLeaseLost = errors.New("lock: lease lost")
	// ErrSessionClosed is returned by operations on a Session after Close.
	ErrSessionClosed = errors.New("lock: session closed")
	// ErrAlreadyHeld is returned by Lock and TryLock for a name this session
	// already holds or is already acquiring: locks are not reentrant.
	ErrAlreadyHeld = errors.New("lock: already held or being acquired by this session")
	// ErrInvalidArgument is wrapped by errors about bad input: an empty or
	// oversized name, a non-positive TTL, an unknown operation.
	ErrInvalidArgument = errors.New("lock: invalid argument")
	// ErrInvalidConfig is wrapped by the errors of the Validate methods.
	ErrInvalidConfig = errors.New("lock: invalid config")
	// ErrClosed is returned by a Local service or a Server after Close.
	ErrClosed = errors.New("lock: service closed")
	// ErrStaleToken is returned by Fence.Check for a token lower than the
	// highest the resource has accepted.
	ErrStaleToken = errors.New("lock: stale fencing token")
	// ErrCorrupt is wrapped by decoding errors of snapshots and messages.
	ErrCorrupt = errors.New("lock: corrupt encoding")
)
