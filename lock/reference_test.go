package lock_test

import (
	"slices"
	"time"

	"github.com/distkit/distkit/lock"
)

// refTable is a dumb reference lock table: linear scans, no heap, no
// indexes. The property test runs it next to lock.Table and compares.
type refTable struct {
	now     int64
	last    lock.Token
	delay   int64
	sess    map[lock.SessionID]*refSession
	locks   map[string]*refLock
	granted []lock.Grant
}

type refSession struct {
	owner    string
	ttl, exp int64
}

type refLock struct {
	holder     lock.SessionID
	token      lock.Token
	waiters    []lock.SessionID
	delayUntil int64
}

func newRef(delay time.Duration) *refTable {
	return &refTable{delay: int64(delay), sess: map[lock.SessionID]*refSession{}, locks: map[string]*refLock{}}
}

func (r *refTable) names() []string {
	var ns []string
	for n := range r.locks {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	return ns
}

func (r *refTable) lk(name string) *refLock {
	if r.locks[name] == nil {
		r.locks[name] = &refLock{}
	}
	return r.locks[name]
}

func (r *refTable) advance(now time.Time) {
	if n := now.UnixNano(); n > r.now {
		r.now = n
	}
	for {
		var victim lock.SessionID
		for id, s := range r.sess {
			if s.exp <= r.now && (victim == 0 || s.exp < r.sess[victim].exp || (s.exp == r.sess[victim].exp && id < victim)) {
				victim = id
			}
		}
		if victim == 0 {
			break
		}
		r.remove(victim, true)
	}
	for _, n := range r.names() {
		if l := r.locks[n]; l.delayUntil != 0 && l.delayUntil <= r.now {
			l.delayUntil = 0
			r.handOver(n)
		}
	}
}

func (r *refTable) remove(id lock.SessionID, expired bool) {
	delete(r.sess, id)
	for _, n := range r.names() {
		l := r.locks[n]
		l.waiters = slices.DeleteFunc(l.waiters, func(w lock.SessionID) bool { return w == id })
	}
	for _, n := range r.names() {
		if r.locks[n].holder == id {
			r.free(n, expired)
		}
	}
}

func (r *refTable) free(n string, expired bool) {
	l := r.locks[n]
	l.holder, l.token = 0, 0
	if expired && r.delay > 0 {
		l.delayUntil = r.now + r.delay
		return
	}
	r.handOver(n)
}

func (r *refTable) handOver(n string) {
	l := r.locks[n]
	if len(l.waiters) == 0 {
		return
	}
	next := l.waiters[0]
	l.waiters = l.waiters[1:]
	r.last++
	l.holder, l.token = next, r.last
	r.granted = append(r.granted, lock.Grant{Name: n, Session: next, Owner: r.sess[next].owner, Token: r.last})
}

func (r *refTable) open(now time.Time, id lock.SessionID, owner string, ttl time.Duration) bool {
	r.advance(now)
	if s := r.sess[id]; s != nil {
		if s.ttl != int64(ttl) || s.owner != owner {
			return false
		}
		s.exp = r.now + s.ttl
		return true
	}
	r.sess[id] = &refSession{owner: owner, ttl: int64(ttl), exp: r.now + int64(ttl)}
	return true
}

func (r *refTable) keepAlive(now time.Time, id lock.SessionID) bool {
	r.advance(now)
	s := r.sess[id]
	if s == nil {
		return false
	}
	s.exp = r.now + s.ttl
	return true
}

func (r *refTable) end(now time.Time, id lock.SessionID) {
	r.advance(now)
	if r.sess[id] != nil {
		r.remove(id, false)
	}
}

// acquire returns the grant, whether granted, and an error class: "" ok,
// "nosession", "locked".
func (r *refTable) acquire(now time.Time, id lock.SessionID, n string, wait bool) (lock.Grant, bool, string) {
	r.advance(now)
	s := r.sess[id]
	if s == nil {
		return lock.Grant{}, false, "nosession"
	}
	l := r.lk(n)
	switch {
	case l.holder == id:
		return lock.Grant{Name: n, Session: id, Owner: s.owner, Token: l.token}, true, ""
	case l.holder == 0 && l.delayUntil == 0:
		r.last++
		l.holder, l.token = id, r.last
		return lock.Grant{Name: n, Session: id, Owner: s.owner, Token: l.token}, true, ""
	case !wait:
		return lock.Grant{}, false, "locked"
	}
	if !slices.Contains(l.waiters, id) {
		l.waiters = append(l.waiters, id)
	}
	return lock.Grant{}, false, ""
}

func (r *refTable) release(now time.Time, id lock.SessionID, n string, tok lock.Token) bool {
	r.advance(now)
	l := r.locks[n]
	if l == nil || id == 0 || l.holder != id || l.token != tok {
		return false
	}
	r.free(n, false)
	return true
}

func (r *refTable) cancel(now time.Time, id lock.SessionID, n string) {
	r.advance(now)
	l := r.locks[n]
	if r.sess[id] == nil || l == nil {
		return
	}
	if l.holder == id {
		r.free(n, false)
		return
	}
	l.waiters = slices.DeleteFunc(l.waiters, func(w lock.SessionID) bool { return w == id })
}

func (r *refTable) rebase(now time.Time) {
	r.now = now.UnixNano()
	for _, s := range r.sess {
		s.exp = r.now + s.ttl
	}
	for _, l := range r.locks {
		if l.delayUntil != 0 {
			l.delayUntil = r.now + r.delay
		}
	}
}

func (r *refTable) takeGranted() []lock.Grant {
	g := r.granted
	r.granted = nil
	return g
}
