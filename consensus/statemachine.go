package consensus

import "io"

// Entry is a committed command, handed to the StateMachine in log order.
type Entry struct {
	// Index is the command's position in the replicated log.
	Index uint64
	// Term is the leader term in which it was proposed.
	Term uint64
	// Command is the proposed bytes. It is shared with the log: read it,
	// copy what you keep, never modify it.
	Command []byte
}

// StateMachine is the application a Node replicates. Every node applies the
// same commands in the same order, so a deterministic state machine ends in
// the same state everywhere.
//
// The Node calls the methods from one goroutine, never concurrently, so an
// implementation needs no locking for them; it needs it only if other
// goroutines read its state (for example to serve reads).
type StateMachine interface {
	// Apply applies one committed command and returns its result, which
	// Propose returns to the proposer on the node that proposed it. Apply
	// must be deterministic and must not fail: an invalid command should
	// produce an error result, not a divergent state.
	Apply(e Entry) any
	// Snapshot writes the whole state to w. It is called between Applies,
	// so the state is consistent as of the last applied entry.
	Snapshot(w io.Writer) error
	// Restore replaces the whole state with one read from r (a snapshot
	// written by Snapshot, possibly on another node).
	Restore(r io.Reader) error
}
