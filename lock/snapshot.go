package lock

import (
	"container/heap"
	"fmt"
	"slices"
)

const snapshotVersion = 1

// Snapshot encodes the table's whole state (time, token counter, sessions,
// locks, queues and lock-delays) deterministically: equal tables give equal
// bytes. Grants not yet drained by Granted are not part of it.
func (t *Table) Snapshot() []byte {
	if t == nil {
		return nil
	}
	e := encoder{b: make([]byte, 0, 64)}
	e.uvarint(snapshotVersion)
	e.varint(t.now)
	e.uvarint(uint64(t.lastToken))
	ids := make([]SessionID, 0, len(t.sessions))
	for id := range t.sessions {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	e.uvarint(uint64(len(ids)))
	for _, id := range ids {
		s := t.sessions[id]
		e.uvarint(uint64(s.id))
		e.str(s.owner)
		e.varint(s.ttl)
		e.varint(s.expires)
	}
	names := make([]string, 0, len(t.locks))
	for name := range t.locks {
		names = append(names, name)
	}
	slices.Sort(names)
	e.uvarint(uint64(len(names)))
	for _, name := range names {
		l := t.locks[name]
		e.str(name)
		e.uvarint(uint64(l.holder))
		e.uvarint(uint64(l.token))
		e.varint(l.delayUntil)
		e.uvarint(uint64(len(l.waiters)))
		for _, w := range l.waiters {
			e.uvarint(uint64(w))
		}
	}
	return e.b
}

// Restore replaces the table's state with one encoded by Snapshot (the
// configuration stays the table's own). It checks the state is consistent
// (holders and waiters are open sessions, tokens within the counter, no
// session queued twice) and fails with an error wrapping ErrCorrupt
// otherwise, leaving the table unchanged.
func (t *Table) Restore(b []byte) error {
	if t == nil {
		return errNilTable
	}
	d := decoder{b: b}
	if v := d.uvarint("version"); d.err == nil && v != snapshotVersion {
		return fmt.Errorf("%w: snapshot version %d; want %d", ErrCorrupt, v, snapshotVersion)
	}
	n := &Table{cfg: t.cfg, sessions: make(map[SessionID]*session), locks: make(map[string]*lockState)}
	n.now = d.varint("time")
	n.lastToken = Token(d.uvarint("token counter"))
	for range d.count("session count", 4) {
		s := &session{id: SessionID(d.uvarint("session ID"))}
		s.owner = d.str("owner", MaxOwnerLen)
		s.ttl = d.varint("TTL")
		s.expires = d.varint("expiry")
		if d.err != nil {
			break
		}
		if s.id == 0 || s.ttl <= 0 || n.sessions[s.id] != nil {
			d.fail("session")
			break
		}
		n.sessions[s.id] = s
		heap.Push(&n.expiry, s)
	}
	for range d.count("lock count", 5) {
		name := d.str("lock name", MaxNameLen)
		l := &lockState{holder: SessionID(d.uvarint("holder")), token: Token(d.uvarint("token"))}
		l.delayUntil = d.varint("lock-delay")
		waiters := d.count("waiter count", 1)
		if d.err != nil {
			break
		}
		if name == "" || n.locks[name] != nil || l.token > n.lastToken || (l.holder == 0) != (l.token == 0) ||
			(l.holder != 0 && l.delayUntil != 0) {
			d.fail("lock " + name)
			break
		}
		if l.holder != 0 {
			s := n.sessions[l.holder]
			if s == nil {
				d.fail("holder of " + name)
				break
			}
			if s.held == nil {
				s.held = make(map[string]struct{})
			}
			s.held[name] = struct{}{}
		}
		for range waiters {
			s := n.sessions[SessionID(d.uvarint("waiter"))]
			if d.err != nil {
				break
			}
			if s == nil || s.id == l.holder {
				d.fail("waiter of " + name)
				break
			}
			if _, dup := s.queued[name]; dup {
				d.fail("waiter of " + name)
				break
			}
			if s.queued == nil {
				s.queued = make(map[string]struct{})
			}
			s.queued[name] = struct{}{}
			l.waiters = append(l.waiters, s.id)
		}
		if d.err != nil {
			break
		}
		if l.holder == 0 && l.delayUntil == 0 {
			// Free and not delayed: it would have been granted or forgotten.
			d.fail("free lock " + name)
			break
		}
		if l.delayUntil != 0 {
			n.delayed = append(n.delayed, name)
		}
		n.locks[name] = l
	}
	if err := d.done(); err != nil {
		return err
	}
	*t = *n
	return nil
}
