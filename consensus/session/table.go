package session

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Config bounds a Table.
type Config struct {
	// TTL is how long a session may stay idle, measured in leader-stamped
	// time, before it expires. Make it much longer than any client's retry
	// window: a command retried after its session expired is refused.
	TTL time.Duration
	// MaxSessions bounds the number of open sessions: registering one more
	// evicts the least recently active.
	MaxSessions int
	// MaxPending bounds the results a session caches for commands its
	// client has not acknowledged; a command beyond it is refused with
	// ErrTooManyPending, except the oldest one the client waits for
	// (seq == acked), which is always admitted so that the client can make
	// progress: the cache holds at most MaxPending+1 results.
	MaxPending int
}

// DefaultConfig returns a one-hour TTL, 10000 sessions and 4096 pending
// results per session.
func DefaultConfig() Config {
	return Config{TTL: time.Hour, MaxSessions: 10000, MaxPending: 4096}
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	switch {
	case c.TTL <= 0:
		return fmt.Errorf("%w: TTL is %v; want > 0", ErrInvalidConfig, c.TTL)
	case c.MaxSessions <= 0:
		return fmt.Errorf("%w: MaxSessions is %d; want > 0", ErrInvalidConfig, c.MaxSessions)
	case c.MaxPending <= 0:
		return fmt.Errorf("%w: MaxPending is %d; want > 0", ErrInvalidConfig, c.MaxPending)
	}
	return nil
}

// Table is the replicated session table: which (session, seq) pairs were
// applied, and their cached results. It is a deterministic function of the
// envelopes applied to it, in log order, so every replica holds the same
// table. It reads no clock: its time is the largest leader-stamped time it
// has seen.
//
// A Table is not safe for concurrent use; the state machine that owns it
// calls it from its Apply, Snapshot and Restore.
type Table struct {
	ttl         int64 // nanoseconds
	maxSessions int
	maxPending  int

	now       int64 // the largest stamped time seen; never decreases
	nextSweep int64 // when to next remove expired sessions
	sessions  map[ID]*entry

	// last is the session lookup last found, lastID its ID: a client's
	// commands come in runs, and Finish follows Begin, so most lookups
	// need no hashing. It is a cache of sessions, never stale: remove
	// clears it with the session, and UnmarshalBinary with the table.
	last   *entry
	lastID ID
}

// entry is one open session.
type entry struct {
	lastActive int64  // table time of the session's last envelope
	acked      uint64 // every seq below it is acknowledged by the client
	// results holds the applied seqs >= acked and their results, and may
	// still hold some below acked: those are dead, and dropped lazily
	// (when the ring is full, when the cache looks full, and before it is
	// counted or encoded), so that a command, which moves acked by about
	// one, does not touch the front of the queue as well as its back.
	results results
}

// cached returns the number of live results of s (seqs >= acked) and the
// position of the first in its queue.
func (s *entry) cached() (first, n int) {
	first = s.results.firstFrom(s.acked)
	return first, s.results.len() - first
}

// results holds a session's cached results in ascending seq order, in a
// ring. A client numbers its commands 1, 2, 3... and acknowledges them
// from the lowest up, so results are nearly always added at the back and
// dropped from the front: a ring does both without moving any result (a
// slice would be compacted now and then, copying every result with write
// barriers), and a duplicate (rare) is found by binary search.
//
// A dropped result stays in its slot, reachable, until the ring wraps
// around and reuses it: at most as many as the ring holds.
type results struct {
	ring []result // its length is zero or a power of two
	head int      // the slot of the oldest result
	n    int      // the number of results
	// newest is the newest result's seq, 0 if there is none (seqs start
	// at 1): the one field every command compares with, kept apart from
	// the ring.
	newest uint64
}

type result struct {
	seq uint64
	val []byte
}

// minRing is the size of a session's first ring.
const minRing = 8

// len returns the number of cached results.
func (q *results) len() int { return q.n }

// at returns the i-th oldest result, 0 <= i < len().
func (q *results) at(i int) *result { return &q.ring[(q.head+i)&(len(q.ring)-1)] }

// push adds val as the result of seq, newer than every cached one.
func (q *results) push(seq uint64, val []byte) {
	if q.n == len(q.ring) {
		q.grow()
	}
	q.add(seq, val)
}

// add is push into a ring with room.
func (q *results) add(seq uint64, val []byte) {
	*q.at(q.n) = result{seq: seq, val: val}
	q.n++
	q.newest = seq
}

// grow doubles the ring (to minRing if empty), keeping the order.
func (q *results) grow() {
	ring := make([]result, max(minRing, 2*len(q.ring)))
	for i := range q.n {
		ring[i] = *q.at(i)
	}
	q.ring, q.head = ring, 0
}

// firstFrom returns the position of the oldest result of a seq >= seq
// (len() if none).
func (q *results) firstFrom(seq uint64) int { return q.search(seq, q.n) }

// search returns the position of the oldest result of a seq >= seq among
// the hi oldest (hi if none), by halves.
func (q *results) search(seq uint64, hi int) int {
	lo := 0
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if q.at(m).seq < seq {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// nearBack is how many results find compares from the back before it
// searches the rest by halves.
const nearBack = 8

// find returns the position of seq in the queue, or where it would go.
//
// A client numbers its commands in the order its callers call, and they
// reach the log in about that order: a new seq is newer than all cached
// ones, or else a few places from the back (callers numbered before it
// whose commands were queued after it). So the last nearBack results are
// compared one by one, from the back, before the rest is searched by
// halves.
func (q *results) find(seq uint64) (int, bool) {
	n := q.n
	for i := n - 1; i >= max(0, n-nearBack); i-- {
		switch s := q.at(i).seq; {
		case s == seq:
			return i, true
		case s < seq:
			return i + 1, false // most often i == n-1: newer than all
		}
	}
	if n <= nearBack {
		return 0, false // older than all
	}
	i := q.search(seq, n-nearBack)
	return i, i < n-nearBack && q.at(i).seq == seq
}

// get returns the result cached for seq.
func (q *results) get(seq uint64) ([]byte, bool) {
	if i, ok := q.find(seq); ok {
		return q.at(i).val, true
	}
	return nil, false
}

// put caches val as the result of seq (replacing one cached already).
func (q *results) put(seq uint64, val []byte) {
	i, ok := q.find(seq)
	if ok {
		q.at(i).val = val
		return
	}
	if q.n == len(q.ring) {
		q.grow()
	}
	// Move the newer results one slot up, from the back (rare: a seq
	// applied out of order).
	for j := q.n; j > i; j-- {
		*q.at(j) = *q.at(j - 1)
	}
	*q.at(i) = result{seq: seq, val: val}
	q.n++
	q.newest = q.at(q.n - 1).seq
}

// dropBelow drops the results of every seq below seq. Their slots keep
// them until the ring reuses the slots.
func (q *results) dropBelow(seq uint64) {
	k := q.firstFrom(seq)
	if k == 0 {
		return
	}
	q.n -= k
	q.head = (q.head + k) & (len(q.ring) - 1)
	if q.n == 0 {
		q.newest = 0
	}
}

// NewTable returns an empty table.
func NewTable(cfg Config) (*Table, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Table{ttl: int64(cfg.TTL), maxSessions: cfg.MaxSessions, maxPending: cfg.MaxPending, sessions: map[ID]*entry{}}, nil
}

// Now returns the table's time: the largest leader-stamped time applied,
// in Unix nanoseconds.
func (t *Table) Now() int64 {
	if t == nil {
		return 0
	}
	return t.now
}

// Len returns the number of open sessions (some may have expired and not
// been removed yet).
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return len(t.sessions)
}

// MaxPending returns the table's Config.MaxPending: how many results of
// unacknowledged commands a session may cache (0 for a nil Table or one
// not created by NewTable).
func (t *Table) MaxPending() int {
	if t == nil {
		return 0
	}
	return t.maxPending
}

// Pending returns the number of results session id caches (0 if unknown).
func (t *Table) Pending(id ID) int {
	if t == nil {
		return 0
	}
	if s := t.sessions[id]; s != nil {
		_, n := s.cached()
		return n
	}
	return 0
}

// advance moves the table's time to stamp if that is later (time only
// moves forward, whatever the clocks of successive leaders say) and now
// and then removes the expired sessions.
func (t *Table) advance(stamp int64) {
	t.now = max(t.now, stamp)
	if t.now < t.nextSweep {
		return
	}
	for id, s := range t.sessions {
		if t.expired(s) {
			t.remove(id)
		}
	}
	t.nextSweep = t.now + max(t.ttl/4, 1)
}

// lookup returns open session id, or nil. It does not check expiry.
func (t *Table) lookup(id ID) *entry {
	if t.last != nil && t.lastID == id {
		return t.last
	}
	s := t.sessions[id]
	if s != nil {
		t.last, t.lastID = s, id
	}
	return s
}

// remove ends session id, and forgets it in the lookup cache.
func (t *Table) remove(id ID) {
	delete(t.sessions, id)
	if t.lastID == id {
		t.last = nil
	}
}

func (t *Table) expired(s *entry) bool { return t.now-s.lastActive > t.ttl }

// Register opens a session for the register envelope e applied at log
// index index, and returns its ID (the index). At MaxSessions it first
// evicts the least recently active session (the lowest ID among equals).
// A nil e counts as unstamped (time 0). A Table not created by NewTable
// opens nothing and returns 0, which no session has.
func (t *Table) Register(index uint64, e *Envelope) ID {
	if !t.made() {
		return 0
	}
	if e != nil {
		t.advance(e.Time)
	} else {
		t.advance(0)
	}
	for len(t.sessions) >= t.maxSessions {
		var victim ID
		var oldest *entry
		for id, s := range t.sessions {
			if oldest == nil || s.lastActive < oldest.lastActive || (s.lastActive == oldest.lastActive && id < victim) {
				victim, oldest = id, s
			}
		}
		t.remove(victim)
	}
	id := ID(index)
	s := &entry{lastActive: t.now, acked: 1}
	t.sessions[id] = s
	t.last, t.lastID = s, id
	return id
}

// Close ends the session of the close envelope e. It returns
// ErrSessionExpired if the session was not open, and an error wrapping
// ErrMalformed for a nil e.
func (t *Table) Close(e *Envelope) error {
	if !t.made() {
		return errNoTable
	}
	if e == nil {
		return errNilEnvelope
	}
	t.advance(e.Time)
	if _, err := t.open(e.Session); err != nil {
		return err
	}
	t.remove(e.Session)
	return nil
}

// open returns session id if it is open and not expired; an expired one is
// removed.
func (t *Table) open(id ID) (*entry, error) {
	s := t.lookup(id)
	if s == nil {
		return nil, fmt.Errorf("%w: session %d", ErrSessionExpired, id)
	}
	if t.expired(s) {
		t.remove(id)
		return nil, fmt.Errorf("%w: session %d idle for %v (TTL %v)", ErrSessionExpired, id,
			time.Duration(t.now-s.lastActive), time.Duration(t.ttl))
	}
	return s, nil
}

// errNilEnvelope refuses a nil *Envelope.
var errNilEnvelope = fmt.Errorf("%w: nil envelope", ErrMalformed)

// errNoTable is what a nil Table, or one not created by NewTable, reports.
var errNoTable = fmt.Errorf("%w: Table not created by NewTable", ErrInvalidConfig)

// made reports whether t was created by NewTable.
func (t *Table) made() bool { return t != nil && t.sessions != nil }

// Begin decides what to do with the command envelope e:
//
//   - (result, true, nil): e is a duplicate of an applied command; answer
//     with result (the cached bytes: do not modify them) and do not apply;
//   - (nil, false, err): refuse e without applying it (ErrSessionExpired,
//     ErrResultDiscarded, ErrTooManyPending);
//   - (nil, false, nil): apply e's payload, then call Finish with its
//     result.
//
// Begin first advances the table's time to e.Time and discards the cached
// results the client acknowledged (those below e.Acked).
//
// Every replica runs it for every session command, so the common case (the
// session last used, a seq newer than every cached one) calls nothing and
// reads the session and its newest seq only.
func (t *Table) Begin(e *Envelope) (cached []byte, duplicate bool, err error) {
	// The common case, decided before anything changes: the session last
	// used, no sweep due, not expired, a seq newer than every cached
	// result and not below the mark, and room in the cache (or the seq
	// the client waits for). It changes exactly what the general path
	// would in that case. t.last is nil in a Table not made by NewTable.
	if e != nil && t != nil && t.last != nil && t.lastID == e.Session && t.admitLast(e.Time, e.Seq, e.Acked) {
		return nil, false, nil
	}
	return t.begin(e)
}

// admitLast is the common case of Begin and BeginCommand, for a command of
// the session last used (t.last, not nil) stamped with the leader's time
// stamp, sequence number seq and acknowledgement mark ackedIn: no sweep
// due, not expired, a seq newer than every cached result and not below the
// mark, and room in the cache (or the seq the client waits for). If all of
// it holds, it changes exactly what the general path would in that case
// and reports true; otherwise it changes nothing. (A seq of 0 is newer
// than no result: it goes to the general path, which refuses it.)
func (t *Table) admitLast(stamp int64, seq, ackedIn uint64) bool {
	s := t.last
	now, acked := max(t.now, stamp), max(s.acked, ackedIn)
	if now < t.nextSweep && now-s.lastActive <= t.ttl && seq >= acked && seq > s.results.newest &&
		(s.results.n < t.maxPending || seq == acked) {
		t.now, s.lastActive, s.acked = now, now, acked
		return true
	}
	return false
}

// BeginCommand is Begin for the common case only, on the raw command: a
// command envelope of the current format for the session last used, no
// sweep due, not expired, a seq newer than every cached result and not
// below the mark, and room in the cache (or the seq the client waits
// for). Then it changes the table exactly as Begin would, and returns the
// envelope's payload (aliasing cmd) and seq, ok true: apply the payload,
// then call FinishLast with its result. Otherwise it changes nothing and
// returns ok false: parse the envelope and take Begin and Finish.
//
// Every replica runs it for every session command, so it decodes only the
// fields it compares and fills no Envelope.
func (t *Table) BeginCommand(cmd []byte) (payload []byte, seq uint64, ok bool) {
	if t == nil || t.last == nil || len(cmd) < commandLen {
		return nil, 0, false
	}
	h := (*[commandLen]byte)(cmd) // the header, with bounds the compiler knows
	// Session 0 is malformed (Parse refuses it), even if Register was
	// given index 0 and made it the session last used.
	if id := ID(binary.BigEndian.Uint64(h[headerLen:])); binary.BigEndian.Uint32(h[:4]) != markerWord ||
		Kind(h[len(Magic)]) != KindCommand || id != t.lastID || id == 0 {
		return nil, 0, false
	}
	seq = binary.BigEndian.Uint64(h[headerLen+8:])
	if !t.admitLast(int64(binary.BigEndian.Uint64(h[timeOffset:])), seq, binary.BigEndian.Uint64(h[headerLen+16:])) {
		return nil, 0, false
	}
	return cmd[commandLen:], seq, true
}

// FinishLast records val as the result of command seq of the session last
// used, which BeginCommand has just admitted (nothing was applied to the
// table in between): Finish without the envelope. The table keeps val
// itself. It does nothing on a table whose lookup cache is empty.
func (t *Table) FinishLast(seq uint64, val []byte) {
	if t == nil || t.last == nil {
		return
	}
	t.last.record(seq, val)
}

// begin is Begin's general path.
func (t *Table) begin(e *Envelope) (cached []byte, duplicate bool, err error) {
	if !t.made() {
		return nil, false, errNoTable
	}
	if e == nil {
		return nil, false, errNilEnvelope
	}
	t.advance(e.Time)
	s := t.lookup(e.Session)
	if s == nil || t.expired(s) {
		if s, err = t.open(e.Session); err != nil {
			return nil, false, err
		}
	}
	s.lastActive = t.now
	if e.Acked > s.acked {
		s.acked = e.Acked // the results below it are dropped lazily
	}
	if e.Seq < s.acked {
		return nil, false, fmt.Errorf("%w: session %d seq %d (client waits for %d and up)", ErrResultDiscarded, e.Session, e.Seq, s.acked)
	}
	q := &s.results
	if q.newest >= e.Seq {
		// Not newer than every cached result: maybe a duplicate (a
		// result found is live: e.Seq >= acked).
		if r, ok := q.get(e.Seq); ok {
			return r, true, nil
		}
	}
	// The cache may be full of results of newer commands while the oldest
	// one the client waits for (seq == acked) is still to come: admit that
	// one anyway, or the mark could never move again.
	if q.len() >= t.maxPending && e.Seq != s.acked {
		if q.dropBelow(s.acked); q.len() >= t.maxPending {
			return nil, false, fmt.Errorf("%w: session %d caches %d results", ErrTooManyPending, e.Session, q.len())
		}
	}
	return nil, false, nil
}

// Finish records val as the result of the command envelope e, which
// Begin told the caller to apply. The table keeps val itself (no copy):
// the caller must not modify it afterwards. A nil e records nothing.
func (t *Table) Finish(e *Envelope, val []byte) {
	if e == nil || t == nil {
		return
	}
	// Most often the session Begin just looked up (t.last is nil in a
	// Table not made by NewTable).
	s := t.last
	if s == nil || t.lastID != e.Session {
		if !t.made() {
			return
		}
		if s = t.lookup(e.Session); s == nil {
			return
		}
	}
	s.record(e.Seq, val)
}

// record caches val as the result of seq (replacing one cached already).
func (s *entry) record(seq uint64, val []byte) {
	q := &s.results
	if q.n < len(q.ring) && q.newest < seq {
		q.add(seq, val) // newer than all, and room
		return
	}
	q.dropBelow(s.acked) // before put decides whether to grow the ring
	q.put(seq, val)
}
