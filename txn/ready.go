package txn

import (
	"github.com/google/uuid"
)

// Ready is what a core asks its driver to do, in this order:
//
//  1. Append Log durably (one batch, one fsync). Coordinator only: Lazy
//     records go into the log too, before Log's if both are written
//     together, but nothing waits for them: they may be buffered until
//     the next durable write or tick, and a crash may lose them.
//  2. Participant only: run Actions against the resource manager, in order.
//  3. If Checkpoint is not nil, replace the whole log durably with it (a
//     participant's driver puts a RecSnapshot of the resource manager's
//     state first).
//  4. Send Messages. Only now: a COMMIT may leave only once its decision
//     is durable, a YES vote once PREPARED is, an ACK once DONE is.
//  5. Coordinator only: hand Results to the callers.
//
// Nothing may be done with a Ready's messages before its Log (not Lazy) is
// durable. Lazy records must reach the log no later than the Log records
// of a later Ready, and before a later Checkpoint replaces it, so that a
// transaction's RecBegin never lands after its RecCommit.
// The slices belong to the driver once returned.
type Ready struct {
	Log        []Record   // to append durably before anything else
	Lazy       []Record   // coordinator: to append without waiting (may be lost)
	Actions    []Action   // participant: resource-manager calls, in order
	Checkpoint []Record   // if not nil: the whole log's replacement
	Messages   []Envelope // to send once Log is durable
	Results    []Result   // coordinator: decisions for the callers
}

// Empty reports whether there is nothing to do.
func (r *Ready) Empty() bool {
	return len(r.Log) == 0 && len(r.Lazy) == 0 && len(r.Actions) == 0 && r.Checkpoint == nil && len(r.Messages) == 0 && len(r.Results) == 0
}

// ActionKind says which resource-manager call an Action asks for.
type ActionKind uint8

// Action kinds.
const (
	// ActPrepare: call ResourceManager.Prepare(Txn, Data = ops) and report
	// the result with RawParticipant.Prepared.
	ActPrepare ActionKind = 1 + iota
	// ActCommit: call Commit(Txn, Data = intent). Its DONE record is durable.
	ActCommit
	// ActAbort: call Abort(Txn, Data = intent).
	ActAbort
)

// Action is a call a participant core asks its driver to make on the
// resource manager.
type Action struct {
	Kind ActionKind
	Txn  uuid.UUID
	Data []byte
}

// Result is the outcome of a transaction begun on a coordinator.
type Result struct {
	Txn     uuid.UUID
	Outcome Outcome     // Committed or Aborted
	Err     *AbortError // why it aborted; nil when committed
}
