package raft

import (
	"errors"
	"fmt"
)

// raftLog is the core's view of the log: the caller's Storage (durable)
// followed by the unstable tail (entries and possibly a snapshot the caller
// has not persisted yet).
type raftLog struct {
	storage Storage
	// Entries and snapshot not yet in storage. See unstable.
	unstable unstable
	// committed is the highest index known to be committed.
	committed uint64
	// applied is the highest index handed to the caller in
	// CommittedEntries and acknowledged by Advance.
	applied uint64
}

// unstable holds what the core has decided but the caller has not yet
// persisted. entries[i] has index offset+i. A snapshot, when present,
// precedes the entries (offset == snapshot.Meta.Index+1).
type unstable struct {
	snapshot *Snapshot
	entries  []Entry
	offset   uint64
	// inProgress is the last index handed out in a Ready and not yet
	// acknowledged (offset-1 when none); snapInProgress likewise for the
	// snapshot. They keep the next Ready from repeating work.
	inProgress     uint64
	snapInProgress bool
}

func newRaftLog(storage Storage, applied uint64) (*raftLog, error) {
	first, err := storage.FirstIndex()
	if err != nil {
		return nil, fmt.Errorf("%w: FirstIndex: %w", ErrStorage, err)
	}
	last, err := storage.LastIndex()
	if err != nil {
		return nil, fmt.Errorf("%w: LastIndex: %w", ErrStorage, err)
	}
	l := &raftLog{storage: storage}
	l.unstable.offset = last + 1
	l.unstable.inProgress = last
	// Everything up to the snapshot is committed and applied by definition.
	l.committed = first - 1
	l.applied = max(first-1, applied)
	return l, nil
}

// firstIndex is the first index whose entry can be read.
func (l *raftLog) firstIndex() uint64 {
	if s := l.unstable.snapshot; s != nil {
		return s.Meta.Index + 1
	}
	i, err := l.storage.FirstIndex()
	if err != nil {
		panic(fmt.Errorf("%w: FirstIndex: %w", ErrStorage, err)) // recovered in RawNode
	}
	return i
}

func (l *raftLog) lastIndex() uint64 {
	if n := len(l.unstable.entries); n > 0 {
		return l.unstable.offset + uint64(n) - 1
	}
	if s := l.unstable.snapshot; s != nil {
		return s.Meta.Index
	}
	i, err := l.storage.LastIndex()
	if err != nil {
		panic(fmt.Errorf("%w: LastIndex: %w", ErrStorage, err))
	}
	return i
}

// term returns the term of entry i. It returns ErrCompacted or
// ErrUnavailable when the log does not know that entry.
func (l *raftLog) term(i uint64) (uint64, error) {
	u := &l.unstable
	if i >= u.offset {
		if k := i - u.offset; k < uint64(len(u.entries)) {
			return u.entries[k].Term, nil
		}
		return 0, ErrUnavailable
	}
	if s := u.snapshot; s != nil {
		if i == s.Meta.Index {
			return s.Meta.Term, nil
		}
		return 0, ErrCompacted
	}
	t, err := l.storage.Term(i)
	if err != nil && !errors.Is(err, ErrCompacted) && !errors.Is(err, ErrUnavailable) {
		panic(fmt.Errorf("%w: Term(%d): %w", ErrStorage, i, err))
	}
	return t, err
}

// termOr0 is term for callers that treat an unknown entry as term 0 (never
// matching any real entry).
func (l *raftLog) termOr0(i uint64) uint64 {
	t, err := l.term(i)
	if err != nil {
		return 0
	}
	return t
}

func (l *raftLog) lastTerm() uint64 { return l.termOr0(l.lastIndex()) }

func (l *raftLog) matchTerm(i, term uint64) bool {
	t, err := l.term(i)
	return err == nil && t == term
}

// isUpToDate is the election restriction of §5.4.1: a candidate's log is at
// least as up-to-date as ours if its last term is higher, or equal with a
// last index at least as high.
func (l *raftLog) isUpToDate(lastIndex, lastTerm uint64) bool {
	ours := l.lastTerm()
	return lastTerm > ours || (lastTerm == ours && lastIndex >= l.lastIndex())
}

// findConflict returns the index of the first entry of ents that is absent
// from the log or disagrees with it on the term, or 0 if all are present.
func (l *raftLog) findConflict(ents []Entry) uint64 {
	for i := range ents {
		if !l.matchTerm(ents[i].Index, ents[i].Term) {
			return ents[i].Index
		}
	}
	return 0
}

// findConflictByTerm returns the largest index <= i whose term is <= term
// (or the index before the first known entry). It is the fast backtracking
// step: every entry above the result has a term greater than term, so it
// cannot match the other log's entry at that index.
func (l *raftLog) findConflictByTerm(i, term uint64) uint64 {
	for ; i > 0; i-- {
		t, err := l.term(i)
		if err != nil || t <= term {
			// An unknown term (compacted) ends the search: the snapshot
			// boundary is committed, hence shared.
			return i
		}
	}
	return 0
}

// maybeAppend is the follower's half of AppendEntries (§5.3): if the entry at
// prevIndex has prevTerm, it appends ents (truncating a conflicting suffix),
// advances the commit index and returns the index of the last new entry and
// the entries it actually wrote (which replaced everything from their first
// index on).
func (l *raftLog) maybeAppend(prevIndex, prevTerm, commit uint64, ents []Entry) (lastNew uint64, appended []Entry, ok bool, err error) {
	if !l.matchTerm(prevIndex, prevTerm) {
		return 0, nil, false, nil
	}
	lastNew = prevIndex + uint64(len(ents))
	if ci := l.findConflict(ents); ci != 0 {
		if ci <= l.committed {
			// Log Matching plus Leader Completeness make this impossible
			// with a correct leader; refuse rather than lose committed data.
			return 0, nil, false, fmt.Errorf("%w: entry %d conflicts with committed index %d", ErrInvalidMessage, ci, l.committed)
		}
		appended = ents[ci-prevIndex-1:]
		l.append(appended)
	}
	l.commitTo(min(commit, lastNew))
	return lastNew, appended, true, nil
}

// append adds entries to the unstable tail, truncating any conflicting
// suffix. ents must be non-empty and start at most at lastIndex()+1.
func (l *raftLog) append(ents []Entry) {
	if len(ents) == 0 {
		return
	}
	u := &l.unstable
	after := ents[0].Index
	switch {
	case after == u.offset+uint64(len(u.entries)):
		u.entries = append(u.entries, ents...)
	case after <= u.offset:
		// Replaces everything unstable and the storage suffix from after on
		// (the caller's Append truncates it). Fresh array: an outstanding
		// Ready may still be reading the old one.
		u.entries = append([]Entry(nil), ents...)
		u.offset = after
		u.inProgress = min(u.inProgress, after-1)
	default:
		keep := after - u.offset
		u.entries = append(u.entries[:keep:keep], ents...)
		u.inProgress = min(u.inProgress, after-1)
	}
}

func (l *raftLog) commitTo(i uint64) {
	if i > l.committed {
		l.committed = i
	}
}

// slice returns entries [lo, hi) limited to maxBytes (at least one entry).
func (l *raftLog) slice(lo, hi, maxBytes uint64) ([]Entry, error) {
	if lo >= hi {
		return nil, nil
	}
	if lo < l.firstIndex() {
		return nil, ErrCompacted
	}
	if hi > l.lastIndex()+1 {
		return nil, fmt.Errorf("%w: slice [%d, %d) beyond last index %d", ErrUnavailable, lo, hi, l.lastIndex())
	}
	u := &l.unstable
	var ents []Entry
	if lo < u.offset {
		stored, err := l.storage.Entries(lo, min(hi, u.offset), maxBytes)
		if errors.Is(err, ErrCompacted) {
			return nil, err
		}
		if err != nil {
			panic(fmt.Errorf("%w: Entries(%d, %d): %w", ErrStorage, lo, min(hi, u.offset), err))
		}
		if uint64(len(stored)) < min(hi, u.offset)-lo || hi <= u.offset {
			return stored, nil // byte limit reached, or nothing unstable wanted
		}
		ents = stored
	}
	if hi > u.offset {
		// Capped, so that nobody appending to it writes into ours.
		un := u.entries[max(lo, u.offset)-u.offset : hi-u.offset : hi-u.offset]
		if len(ents) == 0 {
			ents = un
		} else {
			// Join without writing into storage's array.
			ents = append(ents[:len(ents):len(ents)], un...)
		}
	}
	return limitSize(ents, maxBytes), nil
}

// entriesFrom returns entries from lo to the end, limited to maxBytes.
func (l *raftLog) entriesFrom(lo, maxBytes uint64) ([]Entry, error) {
	if lo > l.lastIndex() {
		return nil, nil
	}
	return l.slice(lo, l.lastIndex()+1, maxBytes)
}

// restore replaces the log with a snapshot received from the leader.
func (l *raftLog) restore(s *Snapshot) {
	l.committed = s.Meta.Index
	l.unstable.snapshot = s
	l.unstable.snapInProgress = false
	l.unstable.entries = nil
	l.unstable.offset = s.Meta.Index + 1
	l.unstable.inProgress = s.Meta.Index
}

// stableIndex is the last index the caller has persisted and acknowledged
// (everything before the unstable tail). While a received snapshot is not
// yet persisted, nothing of the new log is durable.
func (l *raftLog) stableIndex() uint64 {
	if l.unstable.snapshot != nil {
		return 0
	}
	return l.unstable.offset - 1
}

// hasNew reports whether some unstable state awaits a Ready.
func (u *unstable) hasNew() bool {
	return (u.snapshot != nil && !u.snapInProgress) ||
		u.inProgress+1 < u.offset+uint64(len(u.entries))
}

// newEntries returns the unstable entries not yet handed out.
func (u *unstable) newEntries() []Entry {
	start := u.inProgress + 1 - u.offset
	return u.entries[start:len(u.entries):len(u.entries)]
}

// stableTo records that the caller persisted entries up to index i with term
// t. Entries are dropped from the unstable tail only if they are still the
// ones that were persisted (a truncation may have replaced them meanwhile).
func (u *unstable) stableTo(i, t uint64) {
	if i < u.offset {
		return
	}
	k := i - u.offset
	if k >= uint64(len(u.entries)) || u.entries[k].Term != t {
		return
	}
	// Keep the spare capacity after the persisted entries: later appends
	// fill it without allocating, and never touch the elements handed out.
	u.entries = u.entries[k+1:]
	u.offset = i + 1
	u.inProgress = max(u.inProgress, i)
}

// snapshotStable records that the caller persisted the unstable snapshot.
func (u *unstable) snapshotStable(s *Snapshot) {
	if u.snapshot == s {
		u.snapshot = nil
		u.snapInProgress = false
	}
}

// nextCommitted returns the committed entries the caller has not applied,
// limited to maxBytes. Nothing is returned while a received snapshot is
// pending: it must be applied first.
func (l *raftLog) nextCommitted(maxBytes uint64) ([]Entry, error) {
	if l.unstable.snapshot != nil || l.committed <= l.applied {
		return nil, nil
	}
	return l.slice(l.applied+1, l.committed+1, maxBytes)
}

func (l *raftLog) hasNextCommitted() bool {
	return l.unstable.snapshot == nil && l.committed > l.applied
}
