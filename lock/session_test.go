package lock_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/distkit/distkit/clock"
	"github.com/distkit/distkit/lock"
)

func newLocal(t testing.TB) *lock.Local {
	t.Helper()
	l, err := lock.NewLocal(lock.DefaultLocalConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func newSession(t testing.TB, svc lock.Service, ttl time.Duration) *lock.Session {
	t.Helper()
	cfg := lock.DefaultSessionConfig()
	cfg.TTL = ttl
	s, err := lock.NewSession(context.Background(), svc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// queuedSignal returns a channel that receives the name of every acquire
// that starts waiting at l.
func queuedSignal(l *lock.Local) <-chan lock.SessionID {
	ch := make(chan lock.SessionID, 16) // more than any test queues
	l.SetOnQueued(func(r lock.Request) { ch <- r.Session })
	return ch
}

func TestSessionLockUnlock(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	s := newSession(t, l, 10*time.Second)
	g, err := s.Lock(ctx, "x")
	if err != nil {
		t.Fatalf("Lock = %v", err)
	}
	if tok, ok := s.Holds("x"); !ok || tok != g.Token {
		t.Errorf("Holds(x) = %d, %v; want %d, true", tok, ok, g.Token)
	}
	if _, err := s.Lock(ctx, "x"); !errors.Is(err, lock.ErrAlreadyHeld) {
		t.Errorf("second Lock = %v; want ErrAlreadyHeld", err)
	}
	if err := s.Unlock(ctx, g); err != nil {
		t.Fatalf("Unlock = %v", err)
	}
	if err := s.Unlock(ctx, g); !errors.Is(err, lock.ErrNotHolder) {
		t.Errorf("second Unlock = %v; want ErrNotHolder", err)
	}
	g2, err := s.Lock(ctx, "x")
	if err != nil || g2.Token <= g.Token {
		t.Errorf("Lock again = %+v, %v; want a token above %d", g2, err, g.Token)
	}
}

func TestTryLockOfHeldLockFails(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	a, b := newSession(t, l, 10*time.Second), newSession(t, l, 10*time.Second)
	if _, err := a.Lock(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.TryLock(ctx, "x"); !errors.Is(err, lock.ErrLocked) {
		t.Errorf("TryLock = %v; want ErrLocked", err)
	}
	if _, err := b.TryLock(ctx, "x"); !errors.Is(err, lock.ErrLocked) {
		t.Errorf("TryLock again = %v; want ErrLocked (the name is not left reserved)", err)
	}
}

func TestLockWaitersAreServedInOrder(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	queued := queuedSignal(l)
	holder := newSession(t, l, 10*time.Second)
	g, err := holder.Lock(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	order := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		s := newSession(t, l, 10*time.Second)
		wg.Add(1)
		go func() {
			defer wg.Done()
			g, err := s.Lock(ctx, "x")
			if err != nil {
				t.Errorf("waiter %d: Lock = %v", i, err)
				return
			}
			order <- i
			s.Unlock(ctx, g)
		}()
		<-queued // the next waiter joins only once this one is in line
	}
	holder.Unlock(ctx, g)
	wg.Wait()
	close(order)
	want := 0
	for got := range order {
		if got != want {
			t.Errorf("grant %d went to waiter %d; want FIFO order", want, got)
		}
		want++
	}
}

func TestCancelledLockLeavesTheQueue(t *testing.T) {
	l := newLocal(t)
	queued := queuedSignal(l)
	a, b := newSession(t, l, 10*time.Second), newSession(t, l, 10*time.Second)
	g, err := a.Lock(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := b.Lock(ctx, "x")
		errc <- err
	}()
	<-queued
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Lock = %v; want context.Canceled", err)
	}
	if w := l.Waiters("x"); len(w) != 0 {
		t.Errorf("Waiters after cancel = %v; want none", w)
	}
	a.Unlock(context.Background(), g)
	if h, ok := l.Holder("x"); ok {
		t.Errorf("Holder after unlock = %+v; want free (the cancelled waiter must not get it)", h)
	}
}

func TestCloseReleasesLocks(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	a, b := newSession(t, l, 10*time.Second), newSession(t, l, 10*time.Second)
	if _, err := a.Lock(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if _, err := a.Lock(ctx, "y"); !errors.Is(err, lock.ErrSessionClosed) {
		t.Errorf("Lock after Close = %v; want ErrSessionClosed", err)
	}
	if !errors.Is(a.Err(), lock.ErrSessionClosed) {
		t.Errorf("Err after Close = %v; want ErrSessionClosed", a.Err())
	}
	if _, err := b.TryLock(ctx, "x"); err != nil {
		t.Errorf("TryLock after the holder closed = %v; want the lock", err)
	}
}

// flaky is a Service whose link to the real one can be cut: requests then
// get no answer until their context ends, like requests lost in a
// partition.
type flaky struct {
	svc lock.Service

	mu         sync.Mutex // guards down and keepalives
	down       bool
	keepalives chan struct{}
}

func (f *flaky) cut() {
	f.mu.Lock()
	f.down = true
	f.mu.Unlock()
}

func (f *flaky) Do(ctx context.Context, req lock.Request) (lock.Response, error) {
	f.mu.Lock()
	down, ka := f.down, f.keepalives
	f.mu.Unlock()
	if down {
		<-ctx.Done()
		return lock.Response{}, ctx.Err()
	}
	resp, err := f.svc.Do(ctx, req)
	if req.Op == lock.OpKeepAlive && err == nil && ka != nil {
		select {
		case ka <- struct{}{}:
		default:
		}
	}
	return resp, err
}

func TestKeepAliveRenewsTheLease(t *testing.T) {
	l := newLocal(t)
	f := &flaky{svc: l, keepalives: make(chan struct{}, 1)}
	// A TTL with room for a loaded machine's scheduling delays: a keepalive
	// that comes too late loses the lease, and then no more keepalives come.
	s := newSession(t, f, 300*time.Millisecond)
	if _, err := s.Lock(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	first := s.Expiry()
	for i := range 4 { // four renewals: longer than the TTL in total
		select {
		case <-f.keepalives:
		case <-s.Done():
			// Fail, never hang: a lost lease stops the keepalives.
			t.Fatalf("session lost after %d renewals: %v", i, context.Cause(s.Context()))
		}
	}
	if err := s.Err(); err != nil {
		t.Fatalf("session lost despite keepalives: %v", err)
	}
	if s.Expiry().Sub(first) <= 0 {
		t.Errorf("Expiry did not move: %v then %v", first, s.Expiry())
	}
	if _, ok := s.Holds("x"); !ok {
		t.Errorf("Holds(x) = false after renewals")
	}
	// The fourth may not be counted yet: flaky signals as the answer
	// arrives, before the session has processed it.
	if st := s.Stats(); st.Held != 1 || st.KeepAlives < 3 || st.Err != nil {
		t.Errorf("Stats() = %+v; want 1 held, at least 3 keepalives counted, no error", st)
	}
}

func TestLeaseLostBeforeTheServiceExpiresIt(t *testing.T) {
	l := newLocal(t)
	f := &flaky{svc: l}
	s := newSession(t, f, 60*time.Millisecond)
	if _, err := s.Lock(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	bound := s.Expiry()
	serviceExpiry, ok := l.Expires(s.ID())
	if !ok {
		t.Fatal("service does not know the session")
	}
	f.cut()
	<-s.Done()
	if !errors.Is(s.Err(), lock.ErrLeaseLost) {
		t.Errorf("Err = %v; want ErrLeaseLost", s.Err())
	}
	// The client's bound must lie before any expiry the service enforces.
	if final := s.Expiry(); !final.Before(serviceExpiry) && !bound.Before(serviceExpiry) {
		t.Errorf("client bound %v is not before the service's expiry %v", final, serviceExpiry)
	}
	if _, ok := s.Holds("x"); ok {
		t.Errorf("Holds(x) = true after the lease was lost")
	}
	if _, err := s.Lock(context.Background(), "y"); !errors.Is(err, lock.ErrLeaseLost) {
		t.Errorf("Lock after loss = %v; want ErrLeaseLost", err)
	}
}

func TestSessionConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  lock.SessionConfig
	}{
		{"zero TTL", lock.SessionConfig{}},
		{"margin above TTL", lock.SessionConfig{TTL: time.Second, SafetyMargin: 2 * time.Second}},
		{"interval above TTL minus margin", lock.SessionConfig{TTL: time.Second, KeepAliveInterval: 950 * time.Millisecond}},
		{"negative interval", lock.SessionConfig{TTL: time.Second, KeepAliveInterval: -1}},
		{"owner too long", lock.SessionConfig{TTL: time.Second, Owner: string(make([]byte, lock.MaxOwnerLen+1))}},
	}
	l := newLocal(t)
	for _, tt := range tests {
		if _, err := lock.NewSession(context.Background(), l, tt.cfg); !errors.Is(err, lock.ErrInvalidConfig) {
			t.Errorf("%s: NewSession err = %v; want ErrInvalidConfig", tt.name, err)
		}
	}
	if _, err := lock.NewSession(context.Background(), nil, lock.DefaultSessionConfig()); !errors.Is(err, lock.ErrInvalidArgument) {
		t.Errorf("NewSession(nil service) err = %v; want ErrInvalidArgument", err)
	}
}

func TestFence(t *testing.T) {
	tests := []struct {
		tokens []lock.Token
		want   []bool // accepted
	}{
		{[]lock.Token{1, 2, 3}, []bool{true, true, true}},
		{[]lock.Token{5, 5, 5}, []bool{true, true, true}},
		{[]lock.Token{3, 2, 4, 3}, []bool{true, false, true, false}},
	}
	for _, tt := range tests {
		var f lock.Fence
		for i, tok := range tt.tokens {
			if got := f.Check(tok) == nil; got != tt.want[i] {
				t.Errorf("tokens %v: Check(%d) accepted = %v; want %v", tt.tokens, tok, got, tt.want[i])
			}
		}
	}
}

func BenchmarkLockLocal(b *testing.B) {
	for _, sessions := range []int{1, 100} {
		b.Run(map[int]string{1: "sessions=1", 100: "sessions=100"}[sessions], func(b *testing.B) {
			l := newLocal(b)
			var s *lock.Session
			for range sessions {
				s = newSession(b, l, 10*time.Second)
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				g, err := s.Lock(ctx, "x")
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Unlock(ctx, g); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestKeepAliveReleasesOrphanedGrants: an acquire that reaches the service
// after the client gave the lock up (here: sent behind the session's back)
// leaves a grant the client does not know of; the next keepalive finds it
// and releases it, so the lock does not stay taken for the session's life.
func TestKeepAliveReleasesOrphanedGrants(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	f := &flaky{svc: l, keepalives: make(chan struct{}, 1)}
	// A TTL with room for a loaded machine's scheduling delays (at 150 ms a
	// keepalive answered late under -race lost the lease).
	s := newSession(t, f, time.Second)
	if _, err := l.Do(ctx, lock.Request{Op: lock.OpAcquire, Session: s.ID(), Name: "x"}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // the keepalive that reports the orphan, then the next: the cleanup has run
		select {
		case <-f.keepalives:
		case <-s.Done():
			t.Fatalf("session lost after %d keepalives: %v", i, context.Cause(s.Context()))
		}
	}
	if h, ok := l.Holder("x"); ok {
		t.Errorf("orphaned grant %+v still held after two keepalives", h)
	}
	if _, err := s.Lock(ctx, "x"); err != nil {
		t.Errorf("Lock after the orphan was released = %v", err)
	}
}

func TestLockDeadlineIsReported(t *testing.T) {
	l := newLocal(t)
	a, b := newSession(t, l, 10*time.Second), newSession(t, l, 10*time.Second)
	if _, err := a.Lock(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := b.Lock(ctx, "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Lock past its deadline = %v; want context.DeadlineExceeded", err)
	}
}

// TestLocalWakesWaitersOfExpiredSessions: a waiter whose session expires
// at the service gets ErrNoSession instead of waiting forever.
func TestLocalWakesWaitersOfExpiredSessions(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	queued := queuedSignal(l)
	holder := newSession(t, l, 10*time.Second)
	if _, err := holder.Lock(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Do(ctx, lock.Request{Op: lock.OpOpen, Session: 42, TTL: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := l.Do(ctx, lock.Request{Op: lock.OpAcquire, Session: 42, Name: "x"})
		errc <- err
	}()
	<-queued
	if err := <-errc; !errors.Is(err, lock.ErrNoSession) {
		t.Errorf("waiting Do after the session expired = %v; want ErrNoSession", err)
	}
}

func TestHoldsIsFalseOnceTheBoundPassed(t *testing.T) {
	clk := clock.NewManual(time.Now())
	cfg := lock.DefaultSessionConfig() // a 10 s TTL: the watchdog's real timer stays out of the way
	cfg.Clock = clk
	s, err := lock.NewSession(context.Background(), newLocal(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	g, err := s.Lock(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	if tok, ok := s.Holds("x"); !ok || tok != g.Token {
		t.Fatalf("Holds(x) = %d, %v; want %d, true", tok, ok, g.Token)
	}
	clk.Set(s.Expiry()) // the bound passes; the watchdog has not run yet
	if tok, ok := s.Holds("x"); ok {
		t.Errorf("Holds(x) = %d, true at the bound; want false: the lease can no longer be trusted", tok)
	}
	if s.Valid() {
		t.Errorf("Valid() = true at the bound; want false")
	}
}

// stuckKeepAlives is a Service whose keepalives get no answer: each blocks
// until its context ends and reports why on ended.
type stuckKeepAlives struct {
	svc     lock.Service
	started chan struct{}
	ended   chan error
}

func (s *stuckKeepAlives) Do(ctx context.Context, req lock.Request) (lock.Response, error) {
	if req.Op != lock.OpKeepAlive {
		return s.svc.Do(ctx, req)
	}
	select {
	case s.started <- struct{}{}:
	default:
	}
	<-ctx.Done()
	select {
	case s.ended <- ctx.Err():
	default:
	}
	return lock.Response{}, ctx.Err()
}

func TestCloseCancelsAKeepAliveInFlight(t *testing.T) {
	svc := &stuckKeepAlives{svc: newLocal(t), started: make(chan struct{}, 1), ended: make(chan error, 1)}
	cfg := lock.DefaultSessionConfig()
	cfg.KeepAliveInterval = time.Millisecond
	s, err := lock.NewSession(context.Background(), svc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	<-svc.started
	s.Close()
	// Close must not wait out the request (up to the lease bound, 9 s here)
	// before the session's goroutines stop.
	if err := <-svc.ended; !errors.Is(err, context.Canceled) {
		t.Errorf("the keepalive in flight ended with %v; want context.Canceled by Close", err)
	}
}

// heldRelease is a Service that holds every OpRelease until let is closed,
// signalling on releasing when one arrives.
type heldRelease struct {
	svc       lock.Service
	releasing chan struct{}
	let       chan struct{}
}

func (h *heldRelease) Do(ctx context.Context, req lock.Request) (lock.Response, error) {
	if req.Op == lock.OpRelease {
		h.releasing <- struct{}{}
		<-h.let
	}
	return h.svc.Do(ctx, req)
}

// TestLockDuringUnlockDoesNotGetTheReleasedGrant plays a Lock that
// overtakes the same session's Unlock of the same name on its way to the
// service: the service would answer the acquire with the grant about to be
// released, and the session would go on trusting a lock it no longer has.
func TestLockDuringUnlockDoesNotGetTheReleasedGrant(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	svc := &heldRelease{svc: l, releasing: make(chan struct{}), let: make(chan struct{})}
	s := newSession(t, svc, 10*time.Second)
	g, err := s.Lock(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	unlocked := make(chan error, 1)
	go func() { unlocked <- s.Unlock(ctx, g) }()
	<-svc.releasing
	_, tryErr := s.TryLock(ctx, "x") // overtakes the release
	close(svc.let)
	if err := <-unlocked; err != nil {
		t.Fatalf("Unlock = %v", err)
	}
	tok, believes := s.Holds("x")
	holder, held := l.Holder("x")
	if believes && (!held || holder.Session != s.ID() || holder.Token != tok) {
		t.Errorf("TryLock during Unlock = %v; the session holds x with token %d, but the service says %+v, %v",
			tryErr, tok, holder, held)
	}
}

func TestLockWithAnEndedContextDoesNotAcquire(t *testing.T) {
	l := newLocal(t)
	s := newSession(t, l, 10*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, op := range []struct {
		name string
		lock func(context.Context, string) (lock.Grant, error)
	}{{"Lock", s.Lock}, {"TryLock", s.TryLock}} {
		if g, err := op.lock(ctx, "x"); !errors.Is(err, context.Canceled) {
			t.Errorf("%s(cancelled ctx) = %+v, %v; want context.Canceled", op.name, g, err)
		}
		if g, held := l.Holder("x"); held {
			t.Errorf("after %s(cancelled ctx): Holder(x) = %+v; want free", op.name, g)
		}
	}
	if _, err := s.Lock(context.Background(), "x"); err != nil {
		t.Errorf("Lock after the cancelled attempts = %v; want the lock", err)
	}
}

// slowAnswer is a Service whose answers to requests of kind op come back
// only after the client's clock moved on by delay.
type slowAnswer struct {
	svc   lock.Service
	op    lock.Op
	clk   *clock.Manual
	delay time.Duration
}

func (s *slowAnswer) Do(ctx context.Context, req lock.Request) (lock.Response, error) {
	resp, err := s.svc.Do(ctx, req)
	if req.Op == s.op {
		s.clk.Advance(s.delay)
	}
	return resp, err
}

func TestNewSessionAnsweredAfterTheBoundFails(t *testing.T) {
	clk := clock.NewManual(time.Now())
	cfg := lock.DefaultSessionConfig()
	cfg.Clock = clk
	s, err := lock.NewSession(context.Background(), &slowAnswer{svc: newLocal(t), op: lock.OpOpen, clk: clk, delay: cfg.TTL}, cfg)
	if err == nil {
		s.Close()
	}
	if !errors.Is(err, lock.ErrLeaseLost) {
		t.Errorf("NewSession answered after its bound = %v; want ErrLeaseLost", err)
	}
}

// steppedKeepAlives is a Service that acknowledges everything; each
// keepalive signals on calls and waits on proceed before answering, so a
// test can move the client's clock while it is in flight. quit releases it.
type steppedKeepAlives struct {
	calls, proceed, quit chan struct{}
}

func (a *steppedKeepAlives) Do(_ context.Context, req lock.Request) (lock.Response, error) {
	if req.Op == lock.OpKeepAlive {
		select {
		case a.calls <- struct{}{}:
			select {
			case <-a.proceed:
			case <-a.quit:
			}
		case <-a.quit:
		}
	}
	return lock.Response{}, nil
}

// TestLapsedLeaseIsNotRevived: a keepalive answered after the client's
// bound passed cannot keep the lease, though it was sent in time (and so,
// a fortiori, one sent later): for a while the client could not be sure of
// its lease, so it is lost (the service might have expired the session and
// met a late duplicate of its Open since).
func TestLapsedLeaseIsNotRevived(t *testing.T) {
	clk := clock.NewManual(time.Now())
	svc := &steppedKeepAlives{calls: make(chan struct{}), proceed: make(chan struct{}), quit: make(chan struct{})}
	cfg := lock.DefaultSessionConfig() // a 10 s TTL: the watchdog's real timer stays out of the way
	cfg.KeepAliveInterval = 10 * time.Millisecond
	cfg.Clock = clk
	s, err := lock.NewSession(context.Background(), svc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		close(svc.quit)
		s.Close()
	})
	bound := s.Expiry()
	<-svc.calls
	svc.proceed <- struct{}{}                   // answered in time, before or after the next line
	clk.Set(bound.Add(-100 * time.Millisecond)) // the next keepalive leaves just before the bound
	<-svc.calls
	clk.Advance(200 * time.Millisecond) // and is answered just after it
	svc.proceed <- struct{}{}
	select {
	case <-s.Done():
	case <-svc.calls:
		t.Fatalf("the lapsed lease was renewed: Expiry = %v (bound was %v)", s.Expiry(), bound)
	}
	if !errors.Is(s.Err(), lock.ErrLeaseLost) {
		t.Errorf("Err = %v; want ErrLeaseLost", s.Err())
	}
}
