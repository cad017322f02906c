package raft

import (
	"github.com/distkit/distkit/transport"
)

// EntryType says how the state machine treats a log entry.
type EntryType uint8

const (
	// EntryNormal carries an application command in Data.
	EntryNormal EntryType = iota
	// EntryNoop is the empty entry a new leader appends at the start of its
	// term so that it can commit entries of earlier terms (§5.4.2 and §8 of
	// the Raft paper). Its Data is empty; the state machine skips it.
	EntryNoop
	// EntryConfChange carries a membership change: its Data is an encoded
	// ConfChangeEntry (decode it with ConfChangeEntry.UnmarshalBinary). The
	// core applies it itself, when it is appended (thesis §4.1); the state
	// machine skips it or records it.
	EntryConfChange

	maxEntryType = EntryConfChange
)

// String returns a short name, for logs and test failures.
func (t EntryType) String() string {
	switch t {
	case EntryNormal:
		return "normal"
	case EntryNoop:
		return "noop"
	case EntryConfChange:
		return "confchange"
	}
	return "unknown"
}

// Entry is one record of the replicated log.
//
// Entries handed out by the core (in a Ready or a Message) share their Data
// with the core and with Storage: treat Data as read-only.
type Entry struct {
	Term  uint64
	Index uint64
	Type  EntryType
	Data  []byte
}

// entryOverhead approximates the bookkeeping bytes of an entry beyond its
// Data, so that byte limits also bound long runs of empty entries.
const entryOverhead = 24

// size is the number of bytes an entry counts against byte limits.
func (e *Entry) size() uint64 { return uint64(len(e.Data)) + entryOverhead }

// entsSize sums the sizes of ents.
func entsSize(ents []Entry) uint64 {
	var n uint64
	for i := range ents {
		n += ents[i].size()
	}
	return n
}

// limitSize returns the longest prefix of ents whose size is at most
// maxBytes, but always at least one entry, so that progress is possible
// whatever the limit (an entry larger than maxBytes travels alone).
func limitSize(ents []Entry, maxBytes uint64) []Entry {
	if len(ents) == 0 {
		return ents
	}
	size := ents[0].size()
	for i := 1; i < len(ents); i++ {
		size += ents[i].size()
		if size > maxBytes {
			return ents[:i]
		}
	}
	return ents
}

// HardState is the part of a node's state that must be durable before the
// node sends any message that depends on it (Figure 2 of the Raft paper:
// currentTerm and votedFor, plus the commit index so that a restart does not
// have to rediscover it).
type HardState struct {
	// Term is the latest term this node has seen.
	Term uint64
	// Vote is the candidate this node voted for in Term, or "" if none. At
	// most one vote per term, and it is durable before the vote is sent
	// (§5.2).
	Vote transport.NodeID
	// Commit is the highest log index known to be committed.
	Commit uint64
}

// IsZero reports whether h is the zero HardState (nothing to persist).
func (h HardState) IsZero() bool { return h == HardState{} }

// SnapshotMeta identifies a snapshot: the log position it replaces and the
// membership at that position.
type SnapshotMeta struct {
	// Index is the index of the last entry the snapshot covers.
	Index uint64
	// Term is the term of the entry at Index.
	Term uint64
	// Membership is the cluster membership as of Index.
	Membership Membership
}

// Equal reports whether two metas describe the same snapshot.
func (m SnapshotMeta) Equal(o SnapshotMeta) bool {
	return m.Index == o.Index && m.Term == o.Term && m.Membership.Equal(o.Membership)
}

// Snapshot is the state machine's state as of Meta.Index, in the
// application's own encoding (opaque to the core).
type Snapshot struct {
	Meta SnapshotMeta
	Data []byte
}

// IsZero reports whether s is the empty snapshot (no snapshot taken yet).
func (s *Snapshot) IsZero() bool { return s == nil || s.Meta.Index == 0 }
