package idempotency

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/distkit/distkit/clock"
)

// MemoryConfig configures a MemoryStore.
type MemoryConfig struct {
	// Shards is the number of independently locked partitions (default 32).
	// More shards mean less lock contention between keys.
	Shards int
	// MaxEntries bounds the number of records (default 1,000,000). The bound
	// is enforced per shard (MaxEntries/Shards records each, at least 1), so
	// "oldest" in eviction is the oldest within the key's shard; Shards is
	// lowered to MaxEntries when it is larger.
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
// their Expires time and a bound on the number of records. When a shard is
// full, Begin first drops an expired record, then the oldest completed one
// (by completion time); live in-progress records are never evicted, so an
// operation that is running cannot be started twice. Its records do not
// survive a restart: use FileStore, or your database, for that.
//
// It is safe for concurrent use and starts no goroutines.
type MemoryStore struct {
	cfg      MemoryConfig
	seed     maphash.Seed
	shards   []memShard
	shardCap int
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
	if cfg.Shards > cfg.MaxEntries {
		cfg.Shards = cfg.MaxEntries
	}
	s := &MemoryStore{
		cfg:      cfg,
		seed:     maphash.MakeSeed(),
		shards:   make([]memShard, cfg.Shards),
		shardCap: cfg.MaxEntries / cfg.Shards,
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
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e := sh.entries[proposal.Key]; e != nil {
		if e.rec.live(proposal.Created) { // someone else won between the locks
			return e.rec, false, nil
		}
		e.rec = proposal // an expired record of any status is replaced in place
		sh.moveToBack(e)
		s.publish(e)
		return proposal, true, nil
	}
	if len(sh.entries) >= s.shardCap && !s.evictOne(sh) {
		return Record{}, false, fmt.Errorf("%w (%d records in the shard of key %q)", ErrStoreFull, len(sh.entries), proposal.Key)
	}
	e := &memEntry{rec: proposal}
	sh.entries[proposal.Key] = e
	sh.pushBack(e)
	s.publish(e)
	return proposal, true, nil
}

// evictOne drops the oldest record that may go: an expired one if the
// oldest such comes first, otherwise the oldest completed one. Live
// in-progress records are skipped. sh.mu must be held for writing.
func (s *MemoryStore) evictOne(sh *memShard) bool {
	now := s.cfg.Clock.Now()
	for e := sh.head; e != nil; e = e.next {
		switch {
		case !e.rec.live(now):
			s.expired.Add(1)
		case e.rec.Status == StatusCompleted:
			s.evictions.Add(1)
		default:
			continue // in progress: its operation may be running
		}
		sh.unlink(e)
		delete(sh.entries, e.rec.Key)
		s.published.Delete(e.rec.Key)
		return true
	}
	return false
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
	sh.moveToBack(e) // eviction order is completion order
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
	sh.unlink(e)
	delete(sh.entries, key)
	s.published.Delete(key)
	return nil
}

// Len returns the number of records held, live or expired.
func (s *MemoryStore) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.entries)
		sh.mu.Unlock()
	}
	return n
}

// Stats returns the store's counters.
func (s *MemoryStore) Stats() MemoryStats {
	return MemoryStats{Entries: s.Len(), Evictions: s.evictions.Load(), Expired: s.expired.Load()}
}

func (sh *memShard) pushBack(e *memEntry) {
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

func (sh *memShard) moveToBack(e *memEntry) {
	if sh.tail == e {
		return
	}
	sh.unlink(e)
	sh.pushBack(e)
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
