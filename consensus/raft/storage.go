package raft

// Storage is the read side of a node's durable state, as the core needs it.
//
// The core only reads. The caller writes, following the duties in the package
// documentation: it appends Ready.Entries, saves Ready.HardState and applies
// Ready.Snapshot before calling Advance, so that whatever the core reads back
// reflects every Ready it has advanced past.
//
// Indexes: the log holds entries FirstIndex()..LastIndex(). Entry
// FirstIndex()-1 is the last one covered by the snapshot; its term is still
// available from Term. An empty log has LastIndex() == FirstIndex()-1.
//
// Slices returned by Storage may be retained by the core and handed to the
// caller in a Ready or in messages: the implementation must not modify them
// afterwards (replace rather than overwrite in place).
//
// The methods are called from the goroutine that drives the core; an
// implementation that is also written concurrently must synchronise itself.
type Storage interface {
	// InitialState returns the saved HardState and the membership as of the
	// latest snapshot (empty for a new node, in which case the core uses
	// Config.Peers).
	InitialState() (HardState, Membership, error)
	// Entries returns the entries in [lo, hi), limited to maxBytes in total
	// but always at least one entry when lo < hi. It returns ErrCompacted if
	// lo < FirstIndex() and ErrUnavailable if hi > LastIndex()+1.
	Entries(lo, hi, maxBytes uint64) ([]Entry, error)
	// Term returns the term of entry i, for FirstIndex()-1 <= i <= LastIndex().
	// It returns ErrCompacted for older and ErrUnavailable for newer entries.
	Term(i uint64) (uint64, error)
	// FirstIndex returns the index of the first entry that may be read with
	// Entries.
	FirstIndex() (uint64, error)
	// LastIndex returns the index of the last entry in the log.
	LastIndex() (uint64, error)
	// Snapshot returns the most recent snapshot. It returns ErrUnavailable if
	// a snapshot is being produced and is not ready yet; the core tries again
	// later.
	Snapshot() (Snapshot, error)
}
