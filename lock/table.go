package lock

import (
	"container/heap"
	"fmt"
	"slices"
	"time"
)

// SessionID names a session (one lease) in a Table. IDs are chosen by the
// party that opens the session; 0 is not a valid ID.
type SessionID uint64

// Token is a fencing token. Every grant of every lock gets a new token from
// one table-wide counter, so tokens strictly increase per lock (and across
// locks), and the counter survives restarts and leader changes with the
// table's state (Snapshot, or the replicated log).
type Token uint64

// Grant is one session's hold on one lock.
type Grant struct {
	// Name is the lock's name.
	Name string
	// Session is the holder.
	Session SessionID
	// Owner is the label the holder's session was opened with (for an
	// elector, the node ID).
	Owner string
	// Token is the grant's fencing token: pass it to every resource the
	// lock protects, which should reject tokens lower than one it has seen
	// (see Fence).
	Token Token
}

// Limits on names and owners, so one request cannot grow the table (or a
// replicated log entry) without bound.
const (
	MaxNameLen  = 1024
	MaxOwnerLen = 256
)

// TableConfig configures a Table.
type TableConfig struct {
	// LockDelay is how long a lock stays ungrantable after its holder's
	// lease expired (not after a clean release): a holder that lost its
	// lease without knowing it gets that much extra time to notice before
	// another session acts under the lock (Chubby §2.4). 0, the default,
	// disables it; fencing tokens are the real protection.
	LockDelay time.Duration
	// MinTTL and MaxTTL bound the TTL a session may ask for.
	MinTTL, MaxTTL time.Duration
}

// DefaultTableConfig returns TTLs between 10 ms and 10 minutes and no
// lock-delay.
func DefaultTableConfig() TableConfig {
	return TableConfig{MinTTL: 10 * time.Millisecond, MaxTTL: 10 * time.Minute}
}

// Validate reports the first problem with c.
func (c TableConfig) Validate() error {
	switch {
	case c.LockDelay < 0:
		return fmt.Errorf("%w: LockDelay is %v; want >= 0", ErrInvalidConfig, c.LockDelay)
	case c.MinTTL <= 0:
		return fmt.Errorf("%w: MinTTL is %v; want > 0", ErrInvalidConfig, c.MinTTL)
	case c.MaxTTL < c.MinTTL:
		return fmt.Errorf("%w: MaxTTL (%v) is below MinTTL (%v)", ErrInvalidConfig, c.MaxTTL, c.MinTTL)
	}
	return nil
}

// Table is the lock service's state: sessions with leases, named locks,
// their FIFO queues of waiters and the fencing-token counter. It is a
// deterministic core: no goroutines, no I/O and no clock. Every method takes
// the service's current time as an argument, and leases expire only by that
// time (a client's clock never decides). The same sequence of calls with
// the same arguments always leaves the same state, which is what lets the
// table be the state machine of a replicated log.
//
// Time given to a Table never moves backwards: an earlier time than one
// already seen counts as the latest seen. Rebase is the one exception, for a
// new leader whose clock is another machine's.
//
// A Table is not safe for concurrent use.
type Table struct {
	cfg       TableConfig
	now       int64 // Unix nanoseconds: the latest time seen
	lastToken Token
	sessions  map[SessionID]*session
	expiry    expiryHeap // sessions by lease expiry
	locks     map[string]*lockState
	delayed   []string   // locks in lock-delay, in no particular order
	granted   []Grant    // grants to waiters not yet drained by Granted
	spare     *lockState // one forgotten record, reused to spare an allocation per acquire
}

type session struct {
	id      SessionID
	owner   string
	ttl     int64 // nanoseconds
	expires int64
	held    map[string]struct{}
	queued  map[string]struct{}
	index   int // in the expiry heap
}

type lockState struct {
	holder     SessionID // 0 when free
	token      Token
	waiters    []SessionID // FIFO
	delayUntil int64       // lock-delay end; 0 when none
}

// NewTable returns an empty table.
func NewTable(cfg TableConfig) (*Table, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Table{
		cfg:      cfg,
		sessions: make(map[SessionID]*session),
		locks:    make(map[string]*lockState),
	}, nil
}

// Config returns the table's configuration.
func (t *Table) Config() TableConfig {
	if t == nil {
		return TableConfig{}
	}
	return t.cfg
}

// Now returns the latest time the table has seen.
func (t *Table) Now() time.Time {
	if t == nil {
		return time.Time{}
	}
	return time.Unix(0, t.now)
}

// LastToken returns the highest fencing token issued so far.
func (t *Table) LastToken() Token {
	if t == nil {
		return 0
	}
	return t.lastToken
}

// advance moves the table's time to now (never backwards) and expires every
// lease and lock-delay that ended by then.
func (t *Table) advance(now time.Time) {
	if t.sessions == nil { // a zero Table: usable, though NewTable validates the config
		t.sessions = make(map[SessionID]*session)
		t.locks = make(map[string]*lockState)
	}
	if n := now.UnixNano(); n > t.now {
		t.now = n
	}
	for len(t.expiry) > 0 && t.expiry[0].expires <= t.now {
		t.expire(t.expiry[0])
	}
	if len(t.delayed) > 0 {
		t.endDelays()
	}
}

func checkName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("%w: lock name of %d bytes; want 1..%d", ErrInvalidArgument, len(name), MaxNameLen)
	}
	return nil
}

// Open starts session id with a lease of ttl from now, labelled owner.
// Opening a session that already exists with the same TTL renews it, so a
// retried Open is harmless. It returns the lease's expiry by the table's
// clock.
func (t *Table) Open(now time.Time, id SessionID, owner string, ttl time.Duration) (time.Time, error) {
	if t == nil {
		return time.Time{}, errNilTable
	}
	switch {
	case id == 0:
		return time.Time{}, fmt.Errorf("%w: session ID 0", ErrInvalidArgument)
	case ttl < t.cfg.MinTTL || ttl > t.cfg.MaxTTL:
		return time.Time{}, fmt.Errorf("%w: TTL %v outside [%v, %v]", ErrInvalidArgument, ttl, t.cfg.MinTTL, t.cfg.MaxTTL)
	case len(owner) > MaxOwnerLen:
		return time.Time{}, fmt.Errorf("%w: owner of %d bytes; limit %d", ErrInvalidArgument, len(owner), MaxOwnerLen)
	}
	t.advance(now)
	if s := t.sessions[id]; s != nil {
		if s.ttl != int64(ttl) || s.owner != owner {
			return time.Time{}, fmt.Errorf("%w: session %d already open with another TTL or owner", ErrInvalidArgument, id)
		}
		return t.renew(s), nil
	}
	s := &session{id: id, owner: owner, ttl: int64(ttl), expires: t.now + int64(ttl)}
	t.sessions[id] = s
	heap.Push(&t.expiry, s)
	return time.Unix(0, s.expires), nil
}

// KeepAlive renews session id's lease: it now expires one TTL after now.
// It fails with ErrNoSession if the lease already expired.
func (t *Table) KeepAlive(now time.Time, id SessionID) (time.Time, error) {
	if t == nil {
		return time.Time{}, errNilTable
	}
	t.advance(now)
	s := t.sessions[id]
	if s == nil {
		return time.Time{}, fmt.Errorf("%w: session %d", ErrNoSession, id)
	}
	return t.renew(s), nil
}

func (t *Table) renew(s *session) time.Time {
	s.expires = t.now + s.ttl
	heap.Fix(&t.expiry, s.index)
	return time.Unix(0, s.expires)
}

// End ends session id at once: its locks are released (without lock-delay:
// the holder let go knowingly) and it leaves every queue. Ending an unknown
// session is not an error, so a retried End is harmless.
func (t *Table) End(now time.Time, id SessionID) {
	if t == nil {
		return
	}
	t.advance(now)
	if s := t.sessions[id]; s != nil {
		t.remove(s, false)
	}
}

// Acquire asks for lock name on behalf of session id. If the lock is free
// the session gets it with a new fencing token; if the session already
// holds it, the existing grant is returned (so a retried Acquire is
// harmless). Otherwise, with wait the session joins the back of the lock's
// FIFO queue (or keeps its place if already queued) and Acquire reports
// granted == false; the grant, when it comes, is reported by Granted.
// Without wait it fails with ErrLocked.
func (t *Table) Acquire(now time.Time, id SessionID, name string, wait bool) (g Grant, granted bool, err error) {
	if t == nil {
		return Grant{}, false, errNilTable
	}
	if err := checkName(name); err != nil {
		return Grant{}, false, err
	}
	t.advance(now)
	s := t.sessions[id]
	if s == nil {
		return Grant{}, false, fmt.Errorf("%w: session %d", ErrNoSession, id)
	}
	l := t.locks[name]
	if l == nil {
		if l = t.spare; l != nil {
			t.spare = nil
		} else {
			l = &lockState{}
		}
		t.locks[name] = l
	}
	switch {
	case l.holder == id:
		return Grant{Name: name, Session: id, Owner: s.owner, Token: l.token}, true, nil
	case l.holder == 0 && l.delayUntil == 0 && len(l.waiters) == 0:
		return t.grant(name, l, s), true, nil
	case !wait:
		if len(l.waiters) == 0 && l.holder == 0 {
			return Grant{}, false, fmt.Errorf("%w: %q is in its lock-delay", ErrLocked, name)
		}
		return Grant{}, false, fmt.Errorf("%w: %q", ErrLocked, name)
	}
	if _, ok := s.queued[name]; !ok {
		l.waiters = append(l.waiters, id)
		if s.queued == nil {
			s.queued = make(map[string]struct{})
		}
		s.queued[name] = struct{}{}
	}
	return Grant{}, false, nil
}

func (t *Table) grant(name string, l *lockState, s *session) Grant {
	t.lastToken++
	l.holder, l.token = s.id, t.lastToken
	if s.held == nil {
		s.held = make(map[string]struct{}, 1)
	}
	s.held[name] = struct{}{}
	return Grant{Name: name, Session: s.id, Owner: s.owner, Token: l.token}
}

// Release frees lock name if session id holds it with token, and grants it
// to the next waiter. Anything else (another holder, an older token, a
// lock that is free) fails with ErrNotHolder and changes nothing: a stale
// or duplicated release can never free someone else's grant.
func (t *Table) Release(now time.Time, id SessionID, name string, token Token) error {
	if t == nil {
		return errNilTable
	}
	t.advance(now)
	l := t.locks[name]
	if l == nil || l.holder != id || l.token != token || id == 0 {
		return fmt.Errorf("%w: session %d, lock %q, token %d", ErrNotHolder, id, name, token)
	}
	s := t.sessions[id]
	delete(s.held, name)
	t.free(name, l, false)
	return nil
}

// Cancel withdraws session id's interest in lock name: it leaves the queue,
// or, if the lock was granted to it meanwhile, releases it. A client calls
// it when it gave up waiting and so does not know whether the grant came.
// Cancelling what the session neither holds nor waits for does nothing.
func (t *Table) Cancel(now time.Time, id SessionID, name string) {
	if t == nil {
		return
	}
	t.advance(now)
	s := t.sessions[id]
	l := t.locks[name]
	if s == nil || l == nil {
		return
	}
	if l.holder == id {
		delete(s.held, name)
		t.free(name, l, false)
		return
	}
	if _, ok := s.queued[name]; ok {
		delete(s.queued, name)
		l.waiters = slices.DeleteFunc(l.waiters, func(w SessionID) bool { return w == id })
		t.gc(name, l)
	}
}

// Tick advances the table's time to now, expiring leases and lock-delays
// that ended. Grants it causes are reported by Granted.
func (t *Table) Tick(now time.Time) {
	if t != nil {
		t.advance(now)
	}
}

// Rebase is for a new leader of a replicated table, whose clock is not the
// old leader's: it sets the table's time to now (even if earlier) and gives
// every lease a full TTL, and every lock-delay its full length, from now.
// The new leader cannot know how long ago the old one last renewed a lease,
// and an extension is always safe: a client's own bound on its lease lies
// before the expiry the old leader would have enforced, which lies before
// now plus a TTL.
func (t *Table) Rebase(now time.Time) {
	if t == nil {
		return
	}
	t.now = now.UnixNano()
	for _, s := range t.expiry {
		s.expires = t.now + s.ttl
	}
	heap.Init(&t.expiry)
	for _, name := range t.delayed {
		t.locks[name].delayUntil = t.now + int64(t.cfg.LockDelay)
	}
}

// NextDeadline returns the earliest time at which a lease or a lock-delay
// ends, so a driver knows when to call Tick; ok is false when nothing is
// pending.
func (t *Table) NextDeadline() (deadline time.Time, ok bool) {
	if t == nil {
		return time.Time{}, false
	}
	var next int64
	if len(t.expiry) > 0 {
		next, ok = t.expiry[0].expires, true
	}
	for _, name := range t.delayed {
		if d := t.locks[name].delayUntil; !ok || d < next {
			next, ok = d, true
		}
	}
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(0, next), true
}

// Granted returns the grants made to waiting sessions since the last call
// (by Release, Cancel, End or expiry), in the order they were made, and
// forgets them. A driver uses it to wake the waiters.
func (t *Table) Granted() []Grant {
	if t == nil {
		return nil
	}
	g := t.granted
	t.granted = nil
	return g
}

// Holder returns the current grant of lock name, if it is held.
func (t *Table) Holder(name string) (Grant, bool) {
	if t == nil {
		return Grant{}, false
	}
	l := t.locks[name]
	if l == nil || l.holder == 0 {
		return Grant{}, false
	}
	return Grant{Name: name, Session: l.holder, Owner: t.sessions[l.holder].owner, Token: l.token}, true
}

// HeldBy returns session id's grants, sorted by lock name.
func (t *Table) HeldBy(id SessionID) []Grant {
	if t == nil {
		return nil
	}
	s := t.sessions[id]
	if s == nil || len(s.held) == 0 {
		return nil
	}
	grants := make([]Grant, 0, len(s.held))
	for _, name := range sortedKeys(s.held) {
		grants = append(grants, Grant{Name: name, Session: id, Owner: s.owner, Token: t.locks[name].token})
	}
	return grants
}

// Waiters returns the sessions queued for lock name, first in line first.
func (t *Table) Waiters(name string) []SessionID {
	if t == nil {
		return nil
	}
	if l := t.locks[name]; l != nil {
		return slices.Clone(l.waiters)
	}
	return nil
}

// Expires returns when session id's lease ends by the table's clock.
func (t *Table) Expires(id SessionID) (time.Time, bool) {
	if t == nil {
		return time.Time{}, false
	}
	s := t.sessions[id]
	if s == nil {
		return time.Time{}, false
	}
	return time.Unix(0, s.expires), true
}

// Sessions returns the number of open sessions.
func (t *Table) Sessions() int {
	if t == nil {
		return 0
	}
	return len(t.sessions)
}

// Stats are a table's counts.
type Stats struct {
	Sessions  int   // open sessions
	Held      int   // locks held
	Waiting   int   // sessions queued, summed over locks
	Delayed   int   // locks in their lock-delay
	LastToken Token // highest fencing token issued
}

// Stats returns the table's counts. It walks every lock: O(locks).
func (t *Table) Stats() Stats {
	if t == nil {
		return Stats{}
	}
	st := Stats{Sessions: len(t.sessions), Delayed: len(t.delayed), LastToken: t.lastToken}
	for _, l := range t.locks {
		if l.holder != 0 {
			st.Held++
		}
		st.Waiting += len(l.waiters)
	}
	return st
}

// expire ends a session whose lease ran out: its locks go to their next
// waiters, after the lock-delay if one is configured.
func (t *Table) expire(s *session) { t.remove(s, true) }

func (t *Table) remove(s *session, expired bool) {
	heap.Remove(&t.expiry, s.index)
	delete(t.sessions, s.id)
	// Sorted, so the tokens handed to the next holders do not depend on map
	// iteration order: replicas must agree.
	for _, name := range sortedKeys(s.queued) {
		l := t.locks[name]
		l.waiters = slices.DeleteFunc(l.waiters, func(w SessionID) bool { return w == s.id })
		t.gc(name, l)
	}
	for _, name := range sortedKeys(s.held) {
		t.free(name, t.locks[name], expired)
	}
}

// free releases l and hands it to the next waiter, unless a lock-delay
// starts (the holder's lease expired) or nobody waits.
func (t *Table) free(name string, l *lockState, expired bool) {
	l.holder, l.token = 0, 0
	if expired && t.cfg.LockDelay > 0 {
		l.delayUntil = t.now + int64(t.cfg.LockDelay)
		t.delayed = append(t.delayed, name)
		return
	}
	t.handOver(name, l)
}

func (t *Table) handOver(name string, l *lockState) {
	if len(l.waiters) == 0 {
		t.gc(name, l)
		return
	}
	next := t.sessions[l.waiters[0]]
	l.waiters = l.waiters[1:]
	delete(next.queued, name)
	t.granted = append(t.granted, t.grant(name, l, next))
}

func (t *Table) endDelays() {
	var ended []string
	t.delayed = slices.DeleteFunc(t.delayed, func(name string) bool {
		if t.locks[name].delayUntil <= t.now {
			ended = append(ended, name)
			return true
		}
		return false
	})
	slices.Sort(ended)
	for _, name := range ended {
		l := t.locks[name]
		l.delayUntil = 0
		t.handOver(name, l)
	}
}

// gc forgets a lock nobody holds or waits for. Tokens come from the
// table-wide counter, so forgetting a lock loses nothing.
func (t *Table) gc(name string, l *lockState) {
	if l.holder == 0 && len(l.waiters) == 0 && l.delayUntil == 0 {
		delete(t.locks, name)
		l.waiters = l.waiters[:0]
		t.spare = l
	}
}

func sortedKeys(m map[string]struct{}) []string {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// expiryHeap orders sessions by lease expiry, then by ID (deterministic).
type expiryHeap []*session

func (h expiryHeap) Len() int { return len(h) }
func (h expiryHeap) Less(i, j int) bool {
	if h[i].expires != h[j].expires {
		return h[i].expires < h[j].expires
	}
	return h[i].id < h[j].id
}
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *expiryHeap) Push(x any) {
	s := x.(*session)
	s.index = len(*h)
	*h = append(*h, s)
}
func (h *expiryHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return s
}

// errNilTable is what the methods of a nil *Table report (its reads see an
// empty table).
var errNilTable = fmt.Errorf("%w: nil *Table, create it with NewTable", ErrInvalidConfig)
