package idempotency

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distkit/distkit/clock"
)

// MemoryConfig configures a MemoryStore.
type MemoryConfig struct {
	// Shards is the number of independently locked partitions (default 32).
	// More shards mean less lock contention between keys.
	Shards int
	// MaxEntries bounds the number of records in the whole store (default
	// 1,000,000); the bound is exact, whatever the number of shards. When it
	// is reached, Begin makes room by dropping the store's oldest record
	// that may go (see MemoryStore).
	MaxEntries int
	// Clock decides which records have expired when room is needed
	// (default clock.System{}).
	Clock clock.Source
}

// DefaultMemoryConfig returns the defaults described on MemoryConfig.
func DefaultMemoryConfig() MemoryConfig {
	return MemoryConfig{Shards: 32, MaxEntries: 1_000_000, Clock: clock.System{}}
}

// Validate reports whether c is usable.
func (c MemoryConfig) Validate() error {
	switch {
	case c.Shards < 1:
		return fmt.Errorf("%w: MemoryConfig.Shards = %d; want ≥ 1", ErrInvalidConfig, c.Shards)
	case c.MaxEntries < 1:
		return fmt.Errorf("%w: MemoryConfig.MaxEntries = %d; want ≥ 1", ErrInvalidConfig, c.MaxEntries)
	case c.Clock == nil:
		return fmt.Errorf("%w: MemoryConfig.Clock is nil", ErrInvalidConfig)
	}
	return nil
}

// MemoryStore is a Store in process memory: sharded, with records expiring at
// their Expires time and an exact bound on the number of records. When the
// store is full, a Begin for a new key drops the oldest record that may go,
// across all shards: records are ordered by when they were created or
// completed, and the first one that has expired or is completed is dropped.
// Live in-progress records are never evicted, so an operation that is
// running cannot be started twice; a store full of them refuses new keys
// with ErrStoreFull. Its records do not survive a restart: use FileStore, or
// your database, for that.
//
// Eviction visits every shard (one short lock each), so a Begin at the bound
// costs O(Shards) lock acquisitions; below the bound Begin locks only its
// key's shard, and replays (Get, Begin of a live key) take no lock at all.
//
// It is safe for concurrent use and starts no goroutines.
type MemoryStore struct {
	cfg    MemoryConfig
	seed   maphash.Seed
	shards []memShard
	// count is the number of records in all shards. Begin reserves a slot
	// (compare-and-swap below MaxEntries) while it holds the key's shard
	// lock and inserts before releasing it, so count never exceeds
	// MaxEntries and always equals the records held outside shard locks.
	count atomic.Int64
	// stamp orders records across shards by when they were created or
	// completed: each shard's list is in stamp order, so the oldest
	// evictable record of the store is the one with the smallest stamp
	// among the shards' first evictable records.
	stamp atomic.Uint64
	// published maps each key to an immutable *Record snapshot of its entry,
	// replaced (never modified) by writers while they hold the key's shard
	// lock. Readers load from it without locking, so replays of hot keys
	// from many cores do not contend on a lock word.
	published sync.Map

	evictions atomic.Uint64
	expired   atomic.Uint64
}

type memShard struct {
	mu sync.Mutex // guards entries, the order list (head, tail, entry links) and publishing their keys
	// entries maps keys to records; each entry is also on a list ordered by
	// when it was created or completed, oldest at head.
	entries    map[string]*memEntry
	head, tail *memEntry
	_          [64]byte // keep neighbouring shards' locks off one cache line
}

type memEntry struct {
	rec        Record
	stamp      uint64 // from MemoryStore.stamp when the entry last moved to its list's back
	prev, next *memEntry
}

// MemoryStats are counters of a MemoryStore.
type MemoryStats struct {
	Entries   int    // records held now, live or expired
	Evictions uint64 // completed records dropped to make room before they expired
	Expired   uint64 // expired records dropped to make room
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore(cfg MemoryConfig) (*MemoryStore, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &MemoryStore{
		cfg:    cfg,
		seed:   maphash.MakeSeed(),
		shards: make([]memShard, cfg.Shards),
	}
	for i := range s.shards {
		s.shards[i].entries = make(map[string]*memEntry)
	}
	return s, nil
}

func (s *MemoryStore) shard(key string) *memShard {
	return &s.shards[maphash.String(s.seed, key)%uint64(len(s.shards))]
}

// Begin implements Store.
func (s *MemoryStore) Begin(ctx context.Context, proposal Record) (Record, bool, error) {
	if s == nil || len(s.shards) == 0 {
		return Record{}, false, notConstructed("MemoryStore")
	}
	if err := checkProposal(proposal); err != nil {
		return Record{}, false, err
	}
	if err := ctx.Err(); err != nil {
		return Record{}, false, err
	}
	// Fast path: a live record exists and only needs reading.
	if held, ok := s.load(proposal.Key); ok && held.live(proposal.Created) {
		return held, false, nil
	}
	sh := s.shard(proposal.Key)
	for {
		held, created, done := s.beginInShard(sh, proposal)
		if done {
			return held, created, nil
		}
		// The store is full. Make room outside the shard lock (eviction
		// locks every shard in turn) and try again: another Begin may take
		// the freed slot first, but each round frees one.
		if !s.evictOldest() {
			return Record{}, false, fmt.Errorf("%w (%d records, all live and in progress; key %q)", ErrStoreFull, s.count.Load(), proposal.Key)
		}
	}
}

// beginInShard does Begin's work under the shard lock. done is false when
// the key is new and the store has no free slot.
func (s *MemoryStore) beginInShard(sh *memShard, proposal Record) (held Record, created, done bool) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e := sh.entries[proposal.Key]; e != nil {
		if e.rec.live(proposal.Created) { // someone else won between the locks
			return e.rec, false, true
		}
		e.rec = proposal // an expired record of any status is replaced in place
		s.moveToBack(sh, e)
		s.publish(e)
		return proposal, true, true
	}
	if !s.reserve() {
		return Record{}, false, false
	}
	e := &memEntry{rec: proposal}
	sh.entries[proposal.Key] = e
	s.pushBack(sh, e)
	s.publish(e)
	return proposal, true, true
}

// reserve takes one of the MaxEntries slots, or reports that none is free.
func (s *MemoryStore) reserve() bool {
	for {
		n := s.count.Load()
		if n >= int64(s.cfg.MaxEntries) {
			return false
		}
		if s.count.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// evictOldest drops the store's oldest record that may go: the one with the
// smallest stamp among each shard's first expired-or-completed record. It
// reports false if no shard has such a record. It must be called without
// holding a shard lock. If the chosen record changes before its shard is
// locked again, that shard's new first candidate goes instead (or nothing,
// and the caller's retry finds the store no longer full or looks again).
func (s *MemoryStore) evictOldest() bool {
	now := s.cfg.Clock.Now()
	var oldest *memShard
	var oldestStamp uint64
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		if e := sh.firstEvictable(now); e != nil && (oldest == nil || e.stamp < oldestStamp) {
			oldest, oldestStamp = sh, e.stamp
		}
		sh.mu.Unlock()
	}
	if oldest == nil {
		return false
	}
	oldest.mu.Lock()
	defer oldest.mu.Unlock()
	e := oldest.firstEvictable(now)
	if e == nil {
		return true
	}
	if e.rec.live(now) {
		s.evictions.Add(1)
	} else {
		s.expired.Add(1)
	}
	s.remove(oldest, e)
	return true
}

// firstEvictable returns the oldest record of the shard that may be dropped
// at time now: expired (of any status) or completed. Live in-progress
// records are skipped: their operation may be running. sh.mu must be held.
func (sh *memShard) firstEvictable(now time.Time) *memEntry {
	for e := sh.head; e != nil; e = e.next {
		if !e.rec.live(now) || e.rec.Status == StatusCompleted {
			return e
		}
	}
	return nil
}

// remove deletes e from its shard and frees its slot. sh.mu must be held.
func (s *MemoryStore) remove(sh *memShard, e *memEntry) {
	sh.unlink(e)
	delete(sh.entries, e.rec.Key)
	s.published.Delete(e.rec.Key)
	s.count.Add(-1)
}

// Get implements Store.
func (s *MemoryStore) Get(ctx context.Context, key string) (Record, bool, error) {
	if s == nil || len(s.shards) == 0 {
		return Record{}, false, notConstructed("MemoryStore")
	}
	rec, ok := s.load(key)
	return rec, ok, nil
}

// load returns the published snapshot of key's record.
func (s *MemoryStore) load(key string) (Record, bool) {
	v, ok := s.published.Load(key)
	if !ok {
		return Record{}, false
	}
	return *v.(*Record), true
}

// publish makes e's current record visible to readers. The key's shard lock
// must be held, which orders publications of one key.
func (s *MemoryStore) publish(e *memEntry) {
	snapshot := e.rec
	s.published.Store(e.rec.Key, &snapshot)
}

// Complete implements Store.
func (s *MemoryStore) Complete(ctx context.Context, rec Record) error {
	if s == nil || len(s.shards) == 0 {
		return notConstructed("MemoryStore")
	}
	if err := checkCompletion(rec); err != nil {
		return err
	}
	sh := s.shard(rec.Key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.entries[rec.Key]
	if e == nil || e.rec.Status != StatusInProgress || e.rec.Token != rec.Token {
		return fmt.Errorf("%w: complete %q", ErrNotOwner, rec.Key)
	}
	e.rec = rec
	s.moveToBack(sh, e) // eviction order is completion order
	s.publish(e)
	return nil
}

// Abort implements Store.
func (s *MemoryStore) Abort(ctx context.Context, key string, token uint64) error {
	if s == nil || len(s.shards) == 0 {
		return notConstructed("MemoryStore")
	}
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.entries[key]
	if e == nil || e.rec.Status != StatusInProgress || e.rec.Token != token {
		return fmt.Errorf("%w: abort %q", ErrNotOwner, key)
	}
	s.remove(sh, e)
	return nil
}

// Len returns the number of records held, live or expired. It never exceeds
// MaxEntries.
func (s *MemoryStore) Len() int {
	if s == nil {
		return 0
	}
	return int(s.count.Load())
}

// Stats returns the store's counters.
func (s *MemoryStore) Stats() MemoryStats {
	if s == nil {
		return MemoryStats{}
	}
	return MemoryStats{Entries: s.Len(), Evictions: s.evictions.Load(), Expired: s.expired.Load()}
}

// pushBack stamps e and appends it to sh's list. sh.mu must be held, which
// keeps each list in stamp order.
func (s *MemoryStore) pushBack(sh *memShard, e *memEntry) {
	e.stamp = s.stamp.Add(1)
	e.prev, e.next = sh.tail, nil
	if sh.tail != nil {
		sh.tail.next = e
	} else {
		sh.head = e
	}
	sh.tail = e
}

func (sh *memShard) unlink(e *memEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		sh.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		sh.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

// moveToBack restamps e as the newest record of sh. sh.mu must be held.
func (s *MemoryStore) moveToBack(sh *memShard, e *memEntry) {
	sh.unlink(e)
	s.pushBack(sh, e)
}

// checkProposal rejects a Begin proposal that would corrupt a store.
func checkProposal(p Record) error {
	if err := ValidateKey(p.Key); err != nil {
		return err
	}
	if p.Status != StatusInProgress {
		return fmt.Errorf("idempotency: Begin proposal for %q has status %v; want %v", p.Key, p.Status, StatusInProgress)
	}
	if !p.Expires.After(p.Created) {
		return fmt.Errorf("idempotency: Begin proposal for %q expires (%v) no later than it is created (%v)", p.Key, p.Expires, p.Created)
	}
	return nil
}

// checkCompletion rejects a Complete record that would corrupt a store.
func checkCompletion(r Record) error {
	if err := ValidateKey(r.Key); err != nil {
		return err
	}
	if r.Status != StatusCompleted {
		return fmt.Errorf("idempotency: Complete record for %q has status %v; want %v", r.Key, r.Status, StatusCompleted)
	}
	return nil
}

var _ Store = (*MemoryStore)(nil)
