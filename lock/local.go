package lock

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/distkit/distkit/clock"
)

// LocalConfig configures a Local service.
type LocalConfig struct {
	// Table configures the lock table (TTL bounds, lock-delay).
	Table TableConfig
	// Clock is the service's clock, which alone decides lease expiry. nil
	// means clock.System, of which only the monotonic elapsed time counts
	// (a wall-clock step moves no lease). Expiry timers are real timers
	// armed for the clock's distance to the next deadline.
	Clock clock.Source
	// Logger receives expiries at debug level. nil is silent.
	Logger *slog.Logger
}

// DefaultLocalConfig returns DefaultTableConfig on the system clock.
func DefaultLocalConfig() LocalConfig { return LocalConfig{Table: DefaultTableConfig()} }

// Validate reports the first problem with c.
func (c LocalConfig) Validate() error { return c.Table.Validate() }

// Local is a lock service in this process: a Table behind a mutex, with a
// goroutine that expires leases on time. It suits a single service instance
// and tests; for a lock service that survives machine failures use Server.
// It is safe for concurrent use.
type Local struct {
	clock  steadyClock
	logger *slog.Logger

	mu      sync.Mutex // guards table, waiters, closed and armed
	table   *Table
	waiters map[waitKey]chan Grant // each of size 1: one grant per wait
	closed  bool
	armed   time.Time // the deadline the expiry goroutine sleeps until

	onQueued func(Request) // test hook: called (under mu) when an acquire starts waiting

	wake chan struct{} // size 1: coalesced "an earlier deadline exists"
	stop chan struct{}
	done chan struct{}
}

type waitKey struct {
	session SessionID
	name    string
}

var _ Service = (*Local)(nil)

// errLocalNotNew is what the methods of a Local not made by NewLocal report.
var errLocalNotNew = fmt.Errorf("%w: Local not created by NewLocal", ErrInvalidConfig)

// NewLocal starts a Local service. Close stops it.
func NewLocal(cfg LocalConfig) (*Local, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t, err := NewTable(cfg.Table)
	if err != nil {
		return nil, err
	}
	l := &Local{
		logger:  cfg.Logger,
		table:   t,
		waiters: make(map[waitKey]chan Grant),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System{}
	}
	l.clock = newSteadyClock(cfg.Clock)
	go l.expireLoop()
	return l, nil
}

// Do performs req (see Service). An OpAcquire that has to wait blocks until
// the grant, ctx's end or Close.
func (l *Local) Do(ctx context.Context, req Request) (Response, error) {
	if l == nil || l.stop == nil {
		return Response{}, errLocalNotNew
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return Response{}, ErrClosed
	}
	// Expire first what this request's time ends, and notice it: a waiter
	// whose lease expires here, not in expireLoop, must be woken too
	// (the etcd-io/etcd#19597 trap).
	now := l.clock.Now()
	before := l.table.Sessions()
	l.table.Tick(now)
	expired := l.table.Sessions() < before
	resp, err := apply(l.table, now, req)
	l.deliver()
	if expired || req.Op == OpEnd || req.Op == OpCancel {
		l.sweep()
	}
	if err != nil || req.Op != OpAcquire || resp.Granted {
		l.mu.Unlock()
		return resp, err
	}
	key := waitKey{req.Session, req.Name}
	ch := l.waiters[key]
	if ch == nil {
		ch = make(chan Grant, 1)
		l.waiters[key] = ch
	}
	if l.onQueued != nil {
		l.onQueued(req)
	}
	l.mu.Unlock()
	select {
	case g := <-ch:
		if g.Session == 0 { // see sweep
			return Response{}, fmt.Errorf("%w: session %d ended while waiting for %q", ErrNoSession, req.Session, req.Name)
		}
		return Response{Granted: true, Grant: g}, nil
	case <-ctx.Done():
	case <-l.stop:
	}
	l.mu.Lock()
	if l.waiters[key] == ch {
		delete(l.waiters, key)
	}
	l.mu.Unlock()
	select {
	case g := <-ch: // granted while we were leaving: report it
		if g.Session != 0 {
			return Response{Granted: true, Grant: g}, nil
		}
	default:
	}
	if ctx.Err() != nil {
		return Response{}, fmt.Errorf("lock: acquire %q: %w", req.Name, ctx.Err())
	}
	return Response{}, ErrClosed
}

// Holder returns the current holder of lock name.
func (l *Local) Holder(name string) (Grant, bool) {
	if l == nil || l.stop == nil {
		return Grant{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.table.Tick(l.clock.Now())
	l.deliver()
	return l.table.Holder(name)
}

// Waiters returns the sessions queued for lock name, first in line first.
func (l *Local) Waiters(name string) []SessionID {
	if l == nil || l.stop == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.table.Waiters(name)
}

// Stats returns the table's counts.
func (l *Local) Stats() Stats {
	if l == nil || l.stop == nil {
		return Stats{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.table.Stats()
}

// Expires returns when session id's lease ends by the service's clock.
func (l *Local) Expires(id SessionID) (time.Time, bool) {
	if l == nil || l.stop == nil {
		return time.Time{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.table.Expires(id)
}

// deliver wakes the waiters of new grants and, if a deadline now comes
// before the one the expiry goroutine sleeps until, wakes it. Callers hold
// mu.
func (l *Local) deliver() {
	for _, g := range l.table.Granted() {
		key := waitKey{g.Session, g.Name}
		if ch := l.waiters[key]; ch != nil {
			delete(l.waiters, key)
			ch <- g
		}
	}
	if d, ok := l.table.NextDeadline(); ok && (l.armed.IsZero() || d.Before(l.armed)) {
		l.armed = d
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// sweep wakes, with a zero Grant, the waiters that no longer wait at the
// table: their session expired or ended, or they were cancelled. Callers
// hold mu. O(waiters): it runs on expiries, ends and cancels only.
func (l *Local) sweep() {
	for key, ch := range l.waiters {
		if !slices.Contains(l.table.Waiters(key.name), key.session) {
			delete(l.waiters, key)
			ch <- Grant{}
		}
	}
}

// expireLoop ticks the table at each lease or lock-delay deadline.
func (l *Local) expireLoop() {
	defer close(l.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		l.mu.Lock()
		before := l.table.Sessions()
		l.table.Tick(l.clock.Now())
		if expired := before - l.table.Sessions(); expired > 0 {
			if l.logger != nil {
				l.logger.Debug("lock: leases expired", "sessions", expired)
			}
			l.deliver() // grants first: a granted waiter is no longer queued
			l.sweep()
		}
		l.armed = time.Time{}
		l.deliver() // re-arms from the table's next deadline
		select {
		case <-l.wake: // our own re-arming: nothing earlier is pending
		default:
		}
		wait := time.Hour
		if !l.armed.IsZero() {
			wait = max(l.armed.Sub(l.clock.Now()), 0)
		}
		l.mu.Unlock()
		// Since Go 1.23 Reset discards a stale expiry: no drain needed.
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-l.wake:
		case <-l.stop:
			return
		}
	}
}

// Close stops the service: waiting acquisitions fail with ErrClosed and
// later calls too. It waits for the expiry goroutine and is idempotent.
func (l *Local) Close() error {
	if l == nil || l.stop == nil {
		return errLocalNotNew
	}
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.stop)
	}
	l.mu.Unlock()
	<-l.done
	return nil
}
