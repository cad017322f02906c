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

// SnapshotViewer is an optional interface of a StateMachine whose state is
// large: the Node then snapshots it without stopping. SnapshotView is
// called on the Node's goroutine between Applies, like Snapshot, but only
// captures a point-in-time view of the state (a copy-on-write reference,
// a persistent data structure's root, a database snapshot handle), which
// must be quick; the view is then written out by a separate goroutine
// while the Node goes on applying, replicating and taking part in
// elections. A StateMachine that does not implement it is snapshotted with
// Snapshot, on the Node's goroutine.
type SnapshotViewer interface {
	// SnapshotView returns a view of the state as of the last applied
	// entry. The view must not change when later entries are applied or
	// the state is restored from another snapshot. An error skips this
	// snapshot (it is logged; the next one is tried SnapshotThreshold
	// entries later).
	SnapshotView() (SnapshotWriter, error)
}

// SnapshotWriter is a point-in-time view of a state machine's state,
// returned by SnapshotView.
type SnapshotWriter interface {
	// WriteSnapshot writes the view to w in the format Restore reads. It
	// runs on a goroutine of its own, concurrently with Apply and Restore.
	// It should return soon after a write to w fails: Close waits for it.
	WriteSnapshot(w io.Writer) error
	// Release is called once, after WriteSnapshot returned, to free the
	// view.
	Release()
}
