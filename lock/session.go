package lock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/distkit/distkit/clock"
)

// SessionConfig configures a Session.
type SessionConfig struct {
	// TTL is the lease's length: the service ends the session (and frees
	// its locks) when it has not heard a keepalive for that long.
	TTL time.Duration
	// KeepAliveInterval is the time between keepalives. 0 means TTL/3, so
	// two keepalives in a row can be lost before the lease is in danger.
	KeepAliveInterval time.Duration
	// SafetyMargin is taken off the client's bound on its lease to cover
	// the difference between the client's and the service's clock rates
	// (see Session.Expiry). 0 means TTL/10.
	SafetyMargin time.Duration
	// Owner labels the session at the service (an elector uses its node
	// ID); at most MaxOwnerLen bytes.
	Owner string
	// Clock is the client's clock for send times and the lease bound. nil
	// means clock.System, whose monotonic readings make the bound immune
	// to wall-clock jumps.
	Clock clock.Source
	// Logger receives lease loss and background failures. nil is silent.
	Logger *slog.Logger
}

// DefaultSessionConfig returns a 10 s TTL with keepalives every 3.3 s and
// a 1 s safety margin.
func DefaultSessionConfig() SessionConfig { return SessionConfig{TTL: 10 * time.Second} }

// withDefaults fills the zero fields.
func (c SessionConfig) withDefaults() SessionConfig {
	if c.KeepAliveInterval == 0 {
		c.KeepAliveInterval = c.TTL / 3
	}
	if c.SafetyMargin == 0 {
		c.SafetyMargin = c.TTL / 10
	}
	if c.Clock == nil {
		c.Clock = clock.System{}
	}
	return c
}

// Validate reports the first problem with c.
func (c SessionConfig) Validate() error {
	d := c.withDefaults()
	switch {
	case c.TTL <= 0:
		return fmt.Errorf("%w: TTL is %v; want > 0", ErrInvalidConfig, c.TTL)
	case c.KeepAliveInterval < 0 || c.SafetyMargin < 0:
		return fmt.Errorf("%w: negative KeepAliveInterval (%v) or SafetyMargin (%v)", ErrInvalidConfig,
			c.KeepAliveInterval, c.SafetyMargin)
	case d.SafetyMargin >= c.TTL:
		return fmt.Errorf("%w: SafetyMargin (%v) must be below TTL (%v)", ErrInvalidConfig, d.SafetyMargin, c.TTL)
	case d.KeepAliveInterval >= c.TTL-d.SafetyMargin:
		return fmt.Errorf("%w: KeepAliveInterval (%v) must be below TTL - SafetyMargin (%v)", ErrInvalidConfig,
			d.KeepAliveInterval, c.TTL-d.SafetyMargin)
	case len(c.Owner) > MaxOwnerLen:
		return fmt.Errorf("%w: Owner of %d bytes; limit %d", ErrInvalidConfig, len(c.Owner), MaxOwnerLen)
	}
	return nil
}

// Session is a client's lease at a lock service, and the locks it holds
// under that lease. A keepalive goroutine renews the lease; the locks are
// valid exactly as long as the lease.
//
// The client trusts its lease until a conservative bound (Expiry): the send
// time of the last acknowledged keepalive, plus the TTL, minus the safety
// margin. The service cannot expire the lease before that instant, so while
// Expiry has not passed no other session holds this session's locks. When
// the bound passes without a renewal, or the service reports the session
// gone, the lease is lost: Done is closed, Context is cancelled, and every
// grant is void. A lost session stays lost; open a new one.
//
// A bound is only as good as the process's ability to act on it: a pause
// between checking it and touching a resource (GC, swapping, a slow
// disk) can outlast it. Pass the grant's fencing token to the resource and
// let it reject stale tokens (Fence).
//
// A Session is safe for concurrent use.
type Session struct {
	svc    Service
	cfg    SessionConfig
	id     SessionID
	ctx    context.Context // cancelled when the lease is lost or the session closed
	cancel context.CancelCauseFunc

	mu       sync.Mutex // guards the fields below
	bound    leaseBound
	held     map[string]Token    // locks this session holds
	busy     map[string]struct{} // names being acquired, or being withdrawn after a failed acquire
	withdraw map[string]struct{} // names whose withdrawal (OpCancel) must be retried
	release  map[string]Token    // grants whose release must be retried
	seen     map[string]Token    // the last grant of each name this client learned of
	stats    SessionStats
	closed   bool

	// bg bounds the requests of the keepalive goroutine and of
	// withdrawals; Close cancels it, so Close need not wait out a request
	// to an unreachable service.
	bg       context.Context
	bgCancel context.CancelFunc

	stop chan struct{}
	wg   sync.WaitGroup // the keepalive and watchdog goroutines
}

// NewSession opens a session at svc and starts keeping it alive. ctx
// bounds the Open request only. An Open answered so late that the lease
// bound has already passed fails with ErrLeaseLost.
func NewSession(ctx context.Context, svc Service, cfg SessionConfig) (*Session, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if svc == nil {
		return nil, fmt.Errorf("%w: nil Service", ErrInvalidArgument)
	}
	cfg = cfg.withDefaults()
	s := &Session{
		svc:      svc,
		cfg:      cfg,
		id:       SessionID(rand.Uint64() | 1), // random, never 0; an Open retried after a lost reply is idempotent
		bound:    leaseBound{ttl: cfg.TTL, margin: cfg.SafetyMargin},
		held:     make(map[string]Token),
		busy:     make(map[string]struct{}),
		withdraw: make(map[string]struct{}),
		release:  make(map[string]Token),
		seen:     make(map[string]Token),
		stop:     make(chan struct{}),
	}
	sent := cfg.Clock.Now()
	if _, err := svc.Do(ctx, Request{Op: OpOpen, Session: s.id, Owner: cfg.Owner, TTL: cfg.TTL}); err != nil {
		return nil, fmt.Errorf("lock: open session: %w", err)
	}
	if now := cfg.Clock.Now(); !s.bound.acked(sent, now) || !s.bound.valid(now) {
		// Too slow to be of use: the lease may lapse before any keepalive.
		// The service expires the session, which holds nothing, after a TTL.
		return nil, fmt.Errorf("lock: open session: %w: answered %v after it was sent, beyond the bound (TTL %v - margin %v)",
			ErrLeaseLost, now.Sub(sent), cfg.TTL, cfg.SafetyMargin)
	}
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	s.bg, s.bgCancel = context.WithCancel(s.ctx)
	s.wg.Add(2)
	go s.keepAlive()
	go s.watchdog()
	return s, nil
}

// ID returns the session's ID at the service.
func (s *Session) ID() SessionID {
	if s == nil || s.stop == nil {
		return 0
	}
	return s.id
}

// Done is closed when the lease is lost or the session closed.
// For a Session not made by NewSession it is closed at once.
func (s *Session) Done() <-chan struct{} { return s.Context().Done() }

// Context is cancelled when Done is closed; context.Cause tells why
// (ErrLeaseLost or ErrSessionClosed). Derive the contexts of work done
// under the session's locks from it.
// For a Session not made by NewSession it is already cancelled.
func (s *Session) Context() context.Context {
	if s == nil || s.stop == nil {
		return deadContext
	}
	return s.ctx
}

// errSessionNotNew is what the methods of a Session not made by NewSession
// report.
var errSessionNotNew = fmt.Errorf("%w: Session not created by NewSession", ErrInvalidConfig)

// deadContext is the Context of a Session not made by NewSession: it was
// never valid, so it is cancelled with errSessionNotNew as its cause.
var deadContext = func() context.Context {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errSessionNotNew)
	return ctx
}()

// Err returns nil while the lease is trusted, then ErrLeaseLost or
// ErrSessionClosed (possibly wrapped).
func (s *Session) Err() error {
	if s == nil || s.stop == nil {
		return errSessionNotNew
	}
	return context.Cause(s.ctx)
}

// Expiry returns the client's bound on its lease: until then the session
// certainly holds its locks at the service.
func (s *Session) Expiry() time.Time {
	if s == nil || s.stop == nil {
		return time.Time{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bound.until
}

// Valid reports whether the lease is trusted now (Expiry has not passed
// and the session is neither lost nor closed).
func (s *Session) Valid() bool {
	if s == nil || s.stop == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ctx.Err() == nil && s.bound.valid(s.cfg.Clock.Now())
}

// SessionStats are a Session's counters and state.
type SessionStats struct {
	Held              int       // locks held
	KeepAlives        uint64    // keepalives acknowledged
	KeepAliveFailures uint64    // keepalives that failed (the lease may still be trusted)
	Expiry            time.Time // the client's bound on its lease (see Session.Expiry)
	Err               error     // nil while trusted; then why not (see Session.Err)
}

// Stats returns the session's counters and state.
func (s *Session) Stats() SessionStats {
	if s == nil || s.stop == nil {
		return SessionStats{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Held, st.Expiry, st.Err = len(s.held), s.bound.until, context.Cause(s.ctx)
	return st
}

// Holds returns the token of this session's grant of name, if it holds it
// and the lease is trusted now (see Valid): the watchdog may not have
// noticed yet that the bound passed, Holds does not rely on it.
func (s *Session) Holds(name string) (Token, bool) {
	if s == nil || s.stop == nil {
		return 0, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.held[name]
	return t, ok && s.ctx.Err() == nil && s.bound.valid(s.cfg.Clock.Now())
}

// Lock acquires lock name, waiting behind earlier waiters (FIFO), and
// returns the grant with its fencing token. If ctx ends or the lease is
// lost first, the session leaves the queue (and releases the lock if it was
// granted meanwhile) and Lock returns the cause. Locks are not reentrant:
// a name this session holds or is acquiring fails with ErrAlreadyHeld.
func (s *Session) Lock(ctx context.Context, name string) (Grant, error) {
	if s == nil || s.stop == nil {
		return Grant{}, errSessionNotNew
	}
	return s.acquire(ctx, name, OpAcquire)
}

// TryLock acquires lock name if it is free now, and fails with ErrLocked
// otherwise.
func (s *Session) TryLock(ctx context.Context, name string) (Grant, error) {
	if s == nil || s.stop == nil {
		return Grant{}, errSessionNotNew
	}
	return s.acquire(ctx, name, OpTryAcquire)
}

func (s *Session) acquire(ctx context.Context, name string, op Op) (Grant, error) {
	if err := checkName(name); err != nil {
		return Grant{}, err
	}
	if err := ctx.Err(); err != nil {
		return Grant{}, fmt.Errorf("lock: acquire %q: %w", name, err) // ask nothing of the service
	}
	if err := s.reserve(name); err != nil {
		return Grant{}, err
	}
	// The attempt ends with the lease or with the caller's ctx (watched
	// only if it can end at all: Background costs nothing).
	actx, cancel := context.WithCancel(s.ctx)
	if ctx.Done() != nil {
		stopAfter := context.AfterFunc(ctx, cancel)
		defer stopAfter()
	}
	resp, err := s.svc.Do(actx, Request{Op: op, Session: s.id, Name: name})
	cancel()
	if err == nil && resp.Granted {
		s.mu.Lock()
		if s.ctx.Err() == nil && s.bound.valid(s.cfg.Clock.Now()) {
			s.held[name] = resp.Grant.Token
			s.seen[name] = resp.Grant.Token
			delete(s.busy, name)
			s.mu.Unlock()
			return resp.Grant, nil
		}
		s.mu.Unlock()
		err = s.lostErr()
	}
	if errors.Is(err, ErrLocked) || errors.Is(err, ErrInvalidArgument) {
		s.unreserve(name)
		return Grant{}, err
	}
	if errors.Is(err, ErrNoSession) {
		s.lose(err)
	}
	if cause := s.ctx.Err(); cause != nil {
		s.unreserve(name) // the session is gone: so are its queue places
		return Grant{}, s.lostErr()
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w (%v)", cerr, err) // report the caller's deadline, not our derived cancel
	}
	// Outcome unknown: we may be queued, or even hold the lock. Withdraw
	// before giving the name back, so a later Lock cannot be undone by it.
	s.withdrawName(name)
	return Grant{}, fmt.Errorf("lock: acquire %q: %w", name, err)
}

func (s *Session) lostErr() error {
	if cause := context.Cause(s.ctx); cause != nil {
		return cause
	}
	return ErrLeaseLost
}

func (s *Session) reserve(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrSessionClosed
	}
	if s.ctx.Err() != nil {
		return s.lostErr()
	}
	if _, ok := s.held[name]; ok {
		return fmt.Errorf("%w: %q", ErrAlreadyHeld, name)
	}
	if _, ok := s.busy[name]; ok {
		return fmt.Errorf("%w: %q", ErrAlreadyHeld, name)
	}
	s.busy[name] = struct{}{}
	return nil
}

func (s *Session) unreserve(name string) {
	s.mu.Lock()
	delete(s.busy, name)
	s.mu.Unlock()
}

// withdrawName sends OpCancel for name, and leaves it to the keepalive
// goroutine to retry if that fails; the name stays reserved until the
// service has confirmed.
func (s *Session) withdrawName(name string) {
	ctx, cancel := s.requestContext(s.bg)
	defer cancel()
	if _, err := s.svc.Do(ctx, Request{Op: OpCancel, Session: s.id, Name: name}); err == nil {
		s.unreserve(name)
		return
	}
	s.mu.Lock()
	s.withdraw[name] = struct{}{}
	s.mu.Unlock()
}

// requestContext bounds a background request, made under parent, by the
// lease: after the bound the session is lost anyway. The time left is
// measured on the session's clock (which may not be the wall clock context
// deadlines use).
func (s *Session) requestContext(parent context.Context) (context.Context, context.CancelFunc) {
	s.mu.Lock()
	left := s.bound.until.Sub(s.cfg.Clock.Now())
	s.mu.Unlock()
	return context.WithTimeout(parent, left)
}

// Unlock releases g, which must be a grant of this session. It fails with
// ErrNotHolder if the lock is not held under g (released already, or the
// lease was lost and the lock passed on). If the service cannot be
// reached, the release is retried in the background and Unlock returns the
// error; either way the session no longer counts g as held.
func (s *Session) Unlock(ctx context.Context, g Grant) error {
	if s == nil || s.stop == nil {
		return errSessionNotNew
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrSessionClosed
	}
	if tok, ok := s.held[g.Name]; !ok || tok != g.Token || g.Session != s.id {
		s.mu.Unlock()
		return fmt.Errorf("%w: %q with token %d", ErrNotHolder, g.Name, g.Token)
	}
	delete(s.held, g.Name)
	lost := s.ctx.Err() != nil
	if !lost {
		// Reserved until the release is settled: a Lock overtaking it on
		// the way to the service would get this very grant back, then
		// lose it to the release while trusting it.
		s.busy[g.Name] = struct{}{}
	}
	s.mu.Unlock()
	if lost {
		return fmt.Errorf("%w: %q: %w", ErrNotHolder, g.Name, s.lostErr())
	}
	_, err := s.svc.Do(ctx, Request{Op: OpRelease, Session: s.id, Name: g.Name, Token: g.Token})
	switch {
	case err == nil:
		s.unreserve(g.Name)
		return nil
	case errors.Is(err, ErrNotHolder):
		s.unreserve(g.Name)
		return err
	case errors.Is(err, ErrNoSession):
		s.lose(err)
		s.unreserve(g.Name)
		return fmt.Errorf("%w: %w", ErrNotHolder, err)
	}
	// The release may or may not have happened: the keepalive goroutine
	// retries it, and the name stays reserved until then.
	s.mu.Lock()
	s.release[g.Name] = g.Token
	s.mu.Unlock()
	return fmt.Errorf("lock: unlock %q (will retry): %w", g.Name, err)
}

// keepAlive renews the lease every KeepAliveInterval, and retries pending
// releases and withdrawals.
func (s *Session) keepAlive() {
	defer s.wg.Done()
	timer := time.NewTimer(s.nextKeepAlive())
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
		case <-s.stop:
			return
		case <-s.ctx.Done():
			return
		}
		sent := s.cfg.Clock.Now()
		ctx, cancel := s.requestContext(s.bg)
		resp, err := s.svc.Do(ctx, Request{Op: OpKeepAlive, Session: s.id})
		cancel()
		switch {
		case err == nil:
			s.mu.Lock()
			renewed := s.bound.acked(sent, s.cfg.Clock.Now())
			if renewed {
				s.orphans(resp.Held)
				s.stats.KeepAlives++
			}
			until := s.bound.until
			s.mu.Unlock()
			if !renewed {
				s.lose(fmt.Errorf("%w: keepalive sent at %v answered after the bound %v had passed", ErrLeaseLost,
					sent.Format(time.RFC3339Nano), until.Format(time.RFC3339Nano)))
				return
			}
		case errors.Is(err, ErrNoSession):
			s.lose(err)
			return
		default:
			s.mu.Lock()
			s.stats.KeepAliveFailures++
			s.mu.Unlock()
			s.log("lock: keepalive failed", "session", s.id, "err", err)
		}
		s.retryCleanup()
		timer.Reset(s.nextKeepAlive())
	}
}

// nextKeepAlive is the wait before the next keepalive: the interval, or
// half the time left on the bound if that is shorter (after a slow Open or
// failed keepalives), so the lease is renewed before it is lost.
func (s *Session) nextKeepAlive() time.Duration {
	s.mu.Lock()
	left := s.bound.until.Sub(s.cfg.Clock.Now())
	s.mu.Unlock()
	return max(min(s.cfg.KeepAliveInterval, left/2), time.Millisecond)
}

// orphans queues for release the grants the service says this session
// holds but the client never learned of: an acquire the network delayed or
// duplicated past the client's own release. Names being acquired (busy)
// are left alone, and the release is token-checked, so a grant the client
// is about to learn of, or a newer one, is never touched. Callers hold mu.
func (s *Session) orphans(held []Grant) {
	for _, g := range held {
		_, busy := s.busy[g.Name]
		if tok, ok := s.seen[g.Name]; (ok && tok == g.Token) || busy {
			continue // known to the client: held, or being released by Unlock
		}
		s.release[g.Name] = g.Token
		s.busy[g.Name] = struct{}{}
	}
}

func (s *Session) retryCleanup() {
	s.mu.Lock()
	var names []string
	for name := range s.withdraw {
		names = append(names, name)
	}
	releases := make(map[string]Token, len(s.release))
	for name, tok := range s.release {
		releases[name] = tok
	}
	s.mu.Unlock()
	for _, name := range names {
		ctx, cancel := s.requestContext(s.bg)
		_, err := s.svc.Do(ctx, Request{Op: OpCancel, Session: s.id, Name: name})
		cancel()
		if err == nil {
			s.mu.Lock()
			delete(s.withdraw, name)
			delete(s.busy, name)
			s.mu.Unlock()
		}
	}
	for name, tok := range releases {
		ctx, cancel := s.requestContext(s.bg)
		_, err := s.svc.Do(ctx, Request{Op: OpRelease, Session: s.id, Name: name, Token: tok})
		cancel()
		if err == nil || errors.Is(err, ErrNotHolder) {
			s.mu.Lock()
			delete(s.release, name)
			delete(s.busy, name)
			s.mu.Unlock()
		}
	}
}

// watchdog declares the lease lost the moment the bound passes.
func (s *Session) watchdog() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		now, until := s.cfg.Clock.Now(), s.bound.until
		s.mu.Unlock()
		if !now.Before(until) {
			s.lose(fmt.Errorf("%w: no keepalive acknowledged in time (bound %v passed)", ErrLeaseLost,
				until.Format(time.RFC3339Nano)))
			return
		}
		timer.Reset(until.Sub(now))
		select {
		case <-timer.C:
		case <-s.stop:
			return
		case <-s.ctx.Done():
			return
		}
	}
}

// lose marks the lease lost with cause (which should wrap ErrLeaseLost or
// ErrNoSession): Done closes and every grant is void.
func (s *Session) lose(cause error) {
	if !errors.Is(cause, ErrLeaseLost) {
		cause = fmt.Errorf("%w: %w", ErrLeaseLost, cause)
	}
	s.mu.Lock()
	first := s.ctx.Err() == nil
	s.cancel(cause)
	clear(s.held)
	s.mu.Unlock()
	if first {
		s.log("lock: lease lost", "session", s.id, "err", cause)
	}
}

func (s *Session) log(msg string, args ...any) {
	if s.cfg.Logger != nil {
		s.cfg.Logger.Warn(msg, args...)
	}
}

// Close ends the session: the background goroutines stop (Close waits for
// them), the service is told to end the session, which releases its locks
// at once instead of after the TTL, and Done closes. Close is idempotent;
// it returns the error of the End request, if any (the locks are then
// freed when the lease expires).
func (s *Session) Close() error {
	if s == nil || s.stop == nil {
		return errSessionNotNew
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stop)
	s.mu.Unlock()
	s.bgCancel() // a request stuck on an unreachable service must not hold Close up
	s.wg.Wait()
	var err error
	if s.ctx.Err() == nil {
		ctx, cancel := s.requestContext(s.ctx)
		_, err = s.svc.Do(ctx, Request{Op: OpEnd, Session: s.id})
		cancel()
	}
	s.cancel(ErrSessionClosed)
	s.mu.Lock()
	clear(s.held)
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("lock: end session: %w", err)
	}
	return nil
}
