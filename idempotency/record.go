package idempotency

import (
	"context"
	"fmt"
	"time"
)

// Status is the state of a Record.
type Status uint8

const (
	// StatusInProgress marks a key whose operation has started and not
	// finished (or whose process crashed before finishing). It blocks other
	// attempts until it completes, is aborted or expires.
	StatusInProgress Status = 1
	// StatusCompleted marks a key whose outcome is stored and is replayed to
	// every retry until the record expires.
	StatusCompleted Status = 2
)

// String returns "in-progress" or "completed".
func (s Status) String() string {
	switch s {
	case StatusInProgress:
		return "in-progress"
	case StatusCompleted:
		return "completed"
	default:
		return fmt.Sprintf("Status(%d)", uint8(s))
	}
}

// Record is what a Store keeps for one idempotency key.
//
// Stores keep the Result slice they are given and return it without copying:
// neither the caller that stored a Record nor one that read it may modify
// Result.
type Record struct {
	Key    string
	Status Status
	// Token identifies the Begin call that created an in-progress record;
	// Complete and Abort only act on a record whose Token matches, so a
	// caller whose record expired and was taken over cannot clobber the new
	// owner's record.
	Token uint64
	// Fingerprint identifies the request payload; a retry must present the
	// same one (otherwise ErrKeyReuse).
	Fingerprint string
	// Result is the encoded result of a completed operation, or the error
	// text if Failed.
	Result []byte
	// Failed marks a completed record whose stored outcome is a failure.
	Failed bool
	// Omitted marks a completed record whose result was too large to store
	// (or could not be encoded): retries get ErrResultNotStored.
	Omitted bool
	// Created is when the key's in-progress record was created.
	Created time.Time
	// Expires is when the record stops counting: an in-progress record may be
	// taken over from then on, a completed one is forgotten.
	Expires time.Time
}

// live reports whether the record still counts at time now.
func (r *Record) live(now time.Time) bool { return r.Expires.After(now) }

// Store keeps idempotency records. Implementations must be safe for
// concurrent use. MemoryStore and FileStore are provided; a database table
// with a unique key on Key implements it just as well.
//
// Stores do not read the clock for Begin's decision: the caller passes the
// current time as proposal.Created, which keeps the decision testable and
// consistent with the caller's clock.
type Store interface {
	// Begin atomically creates the in-progress record proposal unless the
	// store already holds a record for proposal.Key that is live at
	// proposal.Created (Expires after it). It returns the record now held
	// for the key and whether it is the proposal. An expired record, of any
	// status, is replaced. It blocks until the new record is durable, for
	// durable stores.
	Begin(ctx context.Context, proposal Record) (held Record, created bool, err error)

	// Get returns the record for key, which may have expired (callers
	// compare Expires with their clock). ok is false if there is none.
	Get(ctx context.Context, key string) (rec Record, ok bool, err error)

	// Complete replaces the in-progress record created by the Begin that
	// carried rec.Token with rec (Status StatusCompleted). It returns
	// ErrNotOwner if that record is gone or was taken over. For durable
	// stores the record is visible to Get and Begin only once it is durable,
	// so no one can observe a result that a crash could still lose.
	Complete(ctx context.Context, rec Record) error

	// Abort removes key's in-progress record if it carries token (the
	// operation failed and may be retried). It returns ErrNotOwner
	// otherwise.
	Abort(ctx context.Context, key string, token uint64) error
}
