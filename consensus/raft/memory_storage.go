package raft

import (
	"fmt"
	"sync"
)

// MemoryStorage is a Storage kept in memory: the reference implementation,
// and the storage of tests and of nodes that need no durability. The zero
// value is an empty storage, like NewMemoryStorage's.
//
// It is safe for concurrent use. Slices it returns are never modified
// afterwards: writes replace the backing array instead of overwriting it.
type MemoryStorage struct {
	// mu guards every field below.
	mu        sync.Mutex
	hardState HardState
	snapshot  Snapshot
	// ents[0] is a placeholder for the entry at snapshot.Meta.Index (its
	// Index and Term are meaningful, its data is not); the real log is
	// ents[1:].
	ents []Entry
}

var _ Storage = (*MemoryStorage)(nil)

// NewMemoryStorage returns an empty MemoryStorage.
func NewMemoryStorage() *MemoryStorage {
	return &MemoryStorage{ents: make([]Entry, 1)}
}

// lock takes mu and gives a zero MemoryStorage its placeholder entry.
func (s *MemoryStorage) lock() {
	s.mu.Lock()
	if s.ents == nil {
		s.ents = make([]Entry, 1)
	}
}

// InitialState implements Storage.
func (s *MemoryStorage) InitialState() (HardState, Membership, error) {
	if s == nil {
		return HardState{}, Membership{}, errNilReceiver
	}
	s.lock()
	defer s.mu.Unlock()
	return s.hardState, s.snapshot.Meta.Membership.Clone(), nil
}

// SetHardState saves hs.
func (s *MemoryStorage) SetHardState(hs HardState) error {
	if s == nil {
		return errNilReceiver
	}
	s.lock()
	defer s.mu.Unlock()
	s.hardState = hs
	return nil
}

// HardState returns the saved HardState.
func (s *MemoryStorage) HardState() HardState {
	if s == nil {
		return HardState{}
	}
	s.lock()
	defer s.mu.Unlock()
	return s.hardState
}

func (s *MemoryStorage) firstIndex() uint64 { return s.ents[0].Index + 1 }
func (s *MemoryStorage) lastIndex() uint64  { return s.ents[0].Index + uint64(len(s.ents)) - 1 }

// Entries implements Storage.
func (s *MemoryStorage) Entries(lo, hi, maxBytes uint64) ([]Entry, error) {
	if s == nil {
		return nil, errNilReceiver
	}
	s.lock()
	defer s.mu.Unlock()
	if lo > hi {
		return nil, fmt.Errorf("raft: Entries(%d, %d): lo > hi", lo, hi)
	}
	if lo < s.firstIndex() {
		return nil, ErrCompacted
	}
	if hi > s.lastIndex()+1 {
		return nil, ErrUnavailable
	}
	off := s.ents[0].Index
	ents := s.ents[lo-off : hi-off : hi-off]
	return limitSize(ents, maxBytes), nil
}

// Term implements Storage.
func (s *MemoryStorage) Term(i uint64) (uint64, error) {
	if s == nil {
		return 0, errNilReceiver
	}
	s.lock()
	defer s.mu.Unlock()
	off := s.ents[0].Index
	if i < off {
		return 0, ErrCompacted
	}
	if i > s.lastIndex() {
		return 0, ErrUnavailable
	}
	return s.ents[i-off].Term, nil
}

// FirstIndex implements Storage.
func (s *MemoryStorage) FirstIndex() (uint64, error) {
	if s == nil {
		return 0, errNilReceiver
	}
	s.lock()
	defer s.mu.Unlock()
	return s.firstIndex(), nil
}

// LastIndex implements Storage.
func (s *MemoryStorage) LastIndex() (uint64, error) {
	if s == nil {
		return 0, errNilReceiver
	}
	s.lock()
	defer s.mu.Unlock()
	return s.lastIndex(), nil
}

// Snapshot implements Storage.
func (s *MemoryStorage) Snapshot() (Snapshot, error) {
	if s == nil {
		return Snapshot{}, errNilReceiver
	}
	s.lock()
	defer s.mu.Unlock()
	return s.snapshot, nil
}

// ApplySnapshot replaces the log and the snapshot with snap (a snapshot
// received from the leader, Ready.Snapshot). It returns ErrSnapshotOutOfDate
// if snap is older than the snapshot already held.
func (s *MemoryStorage) ApplySnapshot(snap Snapshot) error {
	if s == nil {
		return errNilReceiver
	}
	s.lock()
	defer s.mu.Unlock()
	if snap.Meta.Index <= s.snapshot.Meta.Index {
		return ErrSnapshotOutOfDate
	}
	snap.Meta.Membership = snap.Meta.Membership.Clone()
	s.snapshot = snap
	s.ents = []Entry{{Term: snap.Meta.Term, Index: snap.Meta.Index}}
	return nil
}

// CreateSnapshot records a snapshot of the state machine as of index i
// (which must be applied, hence present in the log), with membership m and
// the state machine's encoded state data. It does not compact the log: call
// Compact for that, usually keeping some entries for slow followers.
func (s *MemoryStorage) CreateSnapshot(i uint64, m Membership, data []byte) (Snapshot, error) {
	if s == nil {
		return Snapshot{}, errNilReceiver
	}
	s.lock()
	defer s.mu.Unlock()
	if i <= s.snapshot.Meta.Index {
		return Snapshot{}, ErrSnapshotOutOfDate
	}
	if i > s.lastIndex() {
		return Snapshot{}, fmt.Errorf("raft: snapshot index %d is beyond the last index %d: %w", i, s.lastIndex(), ErrUnavailable)
	}
	off := s.ents[0].Index
	s.snapshot = Snapshot{
		Meta: SnapshotMeta{Index: i, Term: s.ents[i-off].Term, Membership: m.Clone()},
		Data: data,
	}
	return s.snapshot, nil
}

// Compact discards the entries before compactIndex, which must not be
// beyond the last entry. Entry compactIndex becomes the placeholder, so
// FirstIndex becomes compactIndex+1. The caller must not compact past the
// applied index or past the latest snapshot.
func (s *MemoryStorage) Compact(compactIndex uint64) error {
	if s == nil {
		return errNilReceiver
	}
	s.lock()
	defer s.mu.Unlock()
	off := s.ents[0].Index
	if compactIndex <= off {
		return ErrCompacted
	}
	if compactIndex > s.lastIndex() {
		return fmt.Errorf("raft: compact index %d is beyond the last index %d: %w", compactIndex, s.lastIndex(), ErrUnavailable)
	}
	i := compactIndex - off
	// The new array has room for a quarter more entries than the log held
	// before this compaction: a node compacts every SnapshotThreshold
	// entries, so the log grows back to about that length (more when a
	// snapshot written in the background is recorded a little later each
	// time: hence the quarter), and growing it by append (by a quarter at
	// a time, at this size) would copy it a dozen times before the next
	// compaction. After a burst, the next compaction shrinks the array
	// again.
	n := uint64(len(s.ents))
	ents := make([]Entry, 1, max(n+n/4, 2*(n-i)))
	ents[0] = Entry{Index: s.ents[i].Index, Term: s.ents[i].Term}
	s.ents = append(ents, s.ents[i+1:]...)
	return nil
}

// Append adds entries to the log (Ready.Entries). Entries must be
// consecutive; the first may overwrite existing entries, in which case every
// later entry is discarded first (the log conflict truncation of §5.3).
// Entries already covered by the snapshot are ignored.
func (s *MemoryStorage) Append(entries []Entry) error {
	if s == nil {
		return errNilReceiver
	}
	if len(entries) == 0 {
		return nil
	}
	for i := 1; i < len(entries); i++ {
		if entries[i].Index != entries[i-1].Index+1 {
			return fmt.Errorf("raft: Append: entries not consecutive at %d", entries[i].Index)
		}
	}
	s.lock()
	defer s.mu.Unlock()
	first := s.firstIndex()
	last := entries[len(entries)-1].Index
	if last < first {
		return nil
	}
	if entries[0].Index < first {
		entries = entries[first-entries[0].Index:]
	}
	off := entries[0].Index - s.ents[0].Index
	switch {
	case off > uint64(len(s.ents)):
		return fmt.Errorf("raft: Append: gap: last index %d, appending %d: %w", s.lastIndex(), entries[0].Index, ErrUnavailable)
	case off == uint64(len(s.ents)):
		if need := len(s.ents) + len(entries); need > cap(s.ents) {
			// Double: append grows a large slice by a quarter, which
			// copies a long log many times over.
			grown := make([]Entry, len(s.ents), max(need, 2*cap(s.ents)))
			copy(grown, s.ents)
			s.ents = grown
		}
		s.ents = append(s.ents, entries...)
	default:
		// Overwrite: copy into a fresh array, so that slices handed out
		// earlier never change under their holders.
		ents := make([]Entry, off, off+uint64(len(entries)))
		copy(ents, s.ents[:off])
		s.ents = append(ents, entries...)
	}
	return nil
}
