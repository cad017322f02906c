package idempotency

import (
	"errors"
	"fmt"
)

// Sentinel errors. Compare with errors.Is; the package wraps them with
// details (the key, sizes) using %w.
var (
	// ErrInvalidKey reports a key that is empty, longer than MaxKeyLen bytes
	// or contains a character outside the allowed set. The concrete error is
	// a *KeyError.
	ErrInvalidKey = errors.New("idempotency: invalid key")

	// ErrKeyReuse reports a key that is already recorded for a request with a
	// different fingerprint: the client reused a key for another payload.
	ErrKeyReuse = errors.New("idempotency: key reused with a different request")

	// ErrInProgress reports that the first request with this key has not
	// finished yet (another process holds it, or the Runner is configured to
	// reject rather than wait). Retry later.
	ErrInProgress = errors.New("idempotency: request with this key is still in progress")

	// ErrResultNotStored reports that the operation for this key completed but
	// its result was not stored (it was larger than the configured limit or
	// could not be encoded), so it cannot be replayed. The operation is NOT
	// run again.
	ErrResultNotStored = errors.New("idempotency: operation completed but its result was not stored")

	// ErrNotOwner is returned by Store.Complete and Store.Abort when the
	// in-progress record is no longer the caller's: it expired and another
	// caller took the key over, or it was removed.
	ErrNotOwner = errors.New("idempotency: in-progress record is no longer held by this caller")

	// ErrStoreFull is returned by MemoryStore.Begin for a new key when the
	// store holds MaxEntries records and none can be evicted because all of
	// them are live and in progress.
	ErrStoreFull = errors.New("idempotency: store is full of in-progress records")

	// ErrClosed is returned by calls on a closed Runner, Middleware or FileStore.
	ErrClosed = errors.New("idempotency: closed")

	// ErrStoreFailed is returned by every FileStore call after a write or
	// fsync failed: the state of the file is unknown, so the store refuses
	// to acknowledge anything else. Reopen it to recover from the file.
	ErrStoreFailed = errors.New("idempotency: file store failed")

	// ErrCorrupt reports a log record that fails its checksum or does not
	// parse. FileStore treats the first such record as the torn tail of a
	// crash and truncates the log there.
	ErrCorrupt = errors.New("idempotency: corrupt record")

	// ErrInvalidConfig reports a configuration that fails Validate, or a
	// value used without its constructor (a zero Runner, store or Middleware).
	ErrInvalidConfig = errors.New("idempotency: invalid config")
)

// KeyError describes why a key was rejected. It wraps ErrInvalidKey.
type KeyError struct {
	Key    string // the key, shortened to 64 bytes for printing
	Reason string // what is wrong with it
}

// Error describes the key and the reason.
func (e *KeyError) Error() string {
	return fmt.Sprintf("idempotency: invalid key %q: %s", e.Key, e.Reason)
}

// Unwrap returns ErrInvalidKey.
func (e *KeyError) Unwrap() error { return ErrInvalidKey }

// ReplayedError is returned when a key's stored outcome is a failure
// (Config.CacheFailures): the operation failed the first time and the
// failure is replayed instead of running the operation again. Message is the
// original error's text.
type ReplayedError struct {
	Message string
}

// Error returns the original failure, marked as replayed.
func (e *ReplayedError) Error() string {
	return "idempotency: replayed failure: " + e.Message
}

// PanicError is what a waiting duplicate receives when the function of the
// call it shared panicked. The caller that ran the function re-panics with
// Value instead.
type PanicError struct {
	Value any
}

// Error describes the panic value.
func (e *PanicError) Error() string {
	return fmt.Sprintf("idempotency: shared call panicked: %v", e.Value)
}

// notConstructed is returned by methods called on a zero value.
func notConstructed(what string) error {
	return fmt.Errorf("%w: %s used without its constructor", ErrInvalidConfig, what)
}
