package txn

import (
	"context"

	"github.com/google/uuid"
)

// ResourceManager is the user's resource that takes part in transactions
// on a Participant: an account store, a key-value table, a queue. The
// Participant calls it from its one goroutine, so calls never overlap, and
// a slow Prepare delays every other transaction on that participant: take
// locks without waiting (vote NO on a conflict, as Store does).
//
// Durability: a participant's log is the resource manager's durable
// state. Each YES vote logs the intent Prepare returned; each commit logs
// DONE before Commit is called; a checkpoint stores Snapshot. After a
// restart, Recover receives all of it. So Commit and Abort only change
// memory, and a resource manager needs no storage of its own.
type ResourceManager interface {
	// Prepare checks ops, takes what the transaction needs (locks) and
	// returns the intent: everything needed to commit or abort it later,
	// also after a crash. A nil error is a YES vote; an error is a NO vote
	// whose text is reported to the caller of Coordinator.Run. Prepare must
	// not change committed state. ops and the returned intent are owned by
	// the caller afterwards. ctx ends when the Participant closes or after
	// Config.VoteTimeout, when the coordinator no longer waits for the
	// vote: a Prepare that waits for anything should then return an error
	// (a NO vote).
	Prepare(ctx context.Context, txn uuid.UUID, ops []byte) (intent []byte, err error)
	// Commit applies a prepared intent and releases its locks. It must not
	// fail for an intent Prepare returned; an error stops the Participant.
	Commit(txn uuid.UUID, intent []byte) error
	// Abort releases the locks of a prepared intent without applying it.
	Abort(txn uuid.UUID, intent []byte) error
	// Snapshot returns the committed state (no prepared intents) for a
	// checkpoint.
	Snapshot() ([]byte, error)
	// Recover replaces the state after a restart: Snapshot's bytes (nil:
	// empty), then the Committed intents applied in order, then the locks
	// of the InDoubt ones taken again.
	Recover(r Recovery) error
}
