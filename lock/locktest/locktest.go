// Package locktest is the conformance suite of a lock.Service: what the
// built-in Local and replicated services do, as a test suite that any
// implementation's tests run against it (contrib/etcd runs it against a
// real etcd).
//
// Usage, in a service's _test.go file:
//
//	func TestConformance(t *testing.T) {
//		locktest.Run(t, locktest.Harness{Open: func(t *testing.T) lock.Service { return svc }, TTL: time.Second})
//	}
//
// # What the suite checks
//
//   - Sessions: Open is idempotent, a KeepAlive of an unknown or expired
//     session is ErrNoSession, End releases the session's locks, and a
//     lease that is not renewed expires and frees its locks.
//   - Grants: Acquire grants a free lock with a fencing token, a repeated
//     Acquire by the holder returns the same grant, TryAcquire of a held
//     lock is ErrLocked, the tokens of successive grants of a lock strictly
//     increase, KeepAlive reports the session's grants.
//   - Release: only the holder's current grant is released; a wrong token,
//     a retried release, or a release of an earlier grant of the same
//     session after it re-acquired the lock fails with ErrNotHolder and
//     leaves the newer grant alone (etcd-io/etcd#22082).
//   - Waiting: waiters are granted in FIFO order (with Harness.Waiters),
//     Cancel withdraws a waiter, and a waiter whose session expires stops
//     waiting with an error instead of blocking forever
//     (etcd-io/etcd#19597).
//   - Lease loss: a lock.Session whose keepalives stop reaching the service
//     has its Done closed, and no longer Holds its lock, before another
//     session is granted that lock (the lease-bound rule that the Jepsen
//     analysis of etcd 3.4.3 found missing in etcd's own lock recipe).
//   - Mutual exclusion under contention, with fencing tokens increasing
//     across critical sections.
//   - Bad input (an empty name, a non-positive TTL, session ID 0, an unknown
//     operation) is ErrInvalidArgument.
//
// Keys and session IDs are random per run, so subtests, and several runs,
// may share one service.
package locktest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/distkit/distkit/lock"
)

// Harness describes the service under test.
type Harness struct {
	// Open returns the service for one subtest (the same one every time
	// is fine). Cleanup is Open's business, via t.Cleanup.
	Open func(t *testing.T) lock.Service
	// TTL is the lease length the suite's sessions use (default 1s). The
	// expiry tests wait a few TTLs of real time, so keep it short, but
	// at least the service's minimum.
	TTL time.Duration
	// Waiters, if not nil, returns how many sessions wait for lock name on
	// svc; the FIFO test needs it to order its waiters and is skipped
	// without it.
	Waiters func(svc lock.Service, name string) int
	// KnownIssues maps subtest names to the reason they are skipped: a
	// known bug of the service that is being fixed. Keep it empty.
	KnownIssues map[string]string
}

// Run runs the conformance suite against the service h describes.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Open == nil {
		t.Fatal("locktest: Harness.Open is nil")
	}
	if h.TTL <= 0 {
		h.TTL = time.Second
	}
	run := fmt.Sprintf("lt%08x", rand.Uint32())
	tests := []struct {
		name string
		fn   func(t *testing.T, c *suite)
	}{
		{"AcquireAndRelease", testAcquireRelease},
		{"RepeatedAcquireReturnsTheGrant", testRepeatedAcquire},
		{"TryAcquireHeldIsLocked", testTryLocked},
		{"TokensIncrease", testTokensIncrease},
		{"ReleaseChecksToken", testReleaseChecksToken},
		{"RetriedReleaseKeepsNewerGrant", testRetriedRelease},
		{"KeepAliveReportsHeld", testKeepAliveHeld},
		{"EndReleasesLocks", testEnd},
		{"UnrenewedLeaseExpires", testExpiry},
		{"ExpiredWaiterStopsWaiting", testExpiredWaiter},
		{"CancelWithdrawsWaiter", testCancel},
		{"FIFO", testFIFO},
		{"LeaseLossNoticedBeforeRegrant", testLeaseLoss},
		{"MutualExclusion", testMutualExclusion},
		{"BadInput", testBadInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if why, ok := h.KnownIssues[tt.name]; ok {
				t.Skip("locktest: known issue: " + why)
			}
			tt.fn(t, &suite{h: h, svc: h.Open(t), prefix: run + "/" + tt.name})
		})
	}
}

type suite struct {
	h      Harness
	svc    lock.Service
	prefix string
}

func (c *suite) name(n string) string { return c.prefix + "/" + n }

func (c *suite) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*c.h.TTL+10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// open opens a raw session (no keepalives) and ends it at cleanup.
func (c *suite) open(t *testing.T) lock.SessionID {
	t.Helper()
	id := lock.SessionID(rand.Uint64() | 1)
	if _, err := c.svc.Do(c.ctx(t), lock.Request{Op: lock.OpOpen, Session: id, Owner: "locktest", TTL: c.h.TTL}); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = c.svc.Do(ctx, lock.Request{Op: lock.OpEnd, Session: id})
	})
	return id
}

// session opens a lock.Session with keepalives.
func (c *suite) session(t *testing.T) *lock.Session {
	t.Helper()
	cfg := lock.DefaultSessionConfig()
	cfg.TTL = c.h.TTL
	cfg.Owner = "locktest"
	s, err := lock.NewSession(c.ctx(t), c.svc, cfg)
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func (c *suite) do(t *testing.T, req lock.Request) (lock.Response, error) {
	t.Helper()
	return c.svc.Do(c.ctx(t), req)
}

func (c *suite) acquire(t *testing.T, id lock.SessionID, name string) lock.Grant {
	t.Helper()
	resp, err := c.do(t, lock.Request{Op: lock.OpAcquire, Session: id, Name: name})
	if err != nil || !resp.Granted {
		t.Fatalf("Acquire(%q) = %+v, %v; want a grant", name, resp, err)
	}
	if resp.Grant.Session != id || resp.Grant.Name != name || resp.Grant.Token == 0 {
		t.Fatalf("Acquire(%q) granted %+v; want session %d, the name and a non-zero token", name, resp.Grant, id)
	}
	return resp.Grant
}

func (c *suite) holder(t *testing.T, name string) (lock.Grant, bool) {
	t.Helper()
	resp, err := c.do(t, lock.Request{Op: lock.OpHolder, Name: name})
	if err != nil {
		t.Fatalf("Holder(%q): %v", name, err)
	}
	return resp.Grant, resp.Granted
}

func (c *suite) wantHolder(t *testing.T, name string, want lock.Grant) {
	t.Helper()
	g, ok := c.holder(t, name)
	if !ok || g.Session != want.Session || g.Token != want.Token {
		t.Fatalf("Holder(%q) = %+v, %v; want session %d token %d", name, g, ok, want.Session, want.Token)
	}
}

func (c *suite) wantFree(t *testing.T, name string) {
	t.Helper()
	if g, ok := c.holder(t, name); ok {
		t.Fatalf("Holder(%q) = %+v; want free", name, g)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s = %v; want %v", what, err, want)
	}
}

func testAcquireRelease(t *testing.T, c *suite) {
	a := c.open(t)
	name := c.name("x")
	c.wantFree(t, name)
	g := c.acquire(t, a, name)
	if g.Owner != "locktest" {
		t.Fatalf("grant owner = %q; want %q", g.Owner, "locktest")
	}
	c.wantHolder(t, name, g)
	if _, err := c.do(t, lock.Request{Op: lock.OpRelease, Session: a, Name: name, Token: g.Token}); err != nil {
		t.Fatalf("Release = %v", err)
	}
	c.wantFree(t, name)
	// Open again is a renewal, not an error.
	if _, err := c.do(t, lock.Request{Op: lock.OpOpen, Session: a, Owner: "locktest", TTL: c.h.TTL}); err != nil {
		t.Fatalf("repeated Open = %v", err)
	}
}

func testRepeatedAcquire(t *testing.T, c *suite) {
	a := c.open(t)
	name := c.name("x")
	g := c.acquire(t, a, name)
	if again := c.acquire(t, a, name); again.Token != g.Token {
		t.Fatalf("repeated Acquire token %d; want the same grant's %d", again.Token, g.Token)
	}
	resp, err := c.do(t, lock.Request{Op: lock.OpTryAcquire, Session: a, Name: name})
	if err != nil || !resp.Granted || resp.Grant.Token != g.Token {
		t.Fatalf("TryAcquire by the holder = %+v, %v; want the same grant", resp, err)
	}
}

func testTryLocked(t *testing.T, c *suite) {
	a, b := c.open(t), c.open(t)
	name := c.name("x")
	g := c.acquire(t, a, name)
	_, err := c.do(t, lock.Request{Op: lock.OpTryAcquire, Session: b, Name: name})
	wantErr(t, "TryAcquire of a held lock", err, lock.ErrLocked)
	c.wantHolder(t, name, g)
	// The failed try left no place in a queue: once released, b's try wins.
	if _, err := c.do(t, lock.Request{Op: lock.OpRelease, Session: a, Name: name, Token: g.Token}); err != nil {
		t.Fatal(err)
	}
	resp, err := c.do(t, lock.Request{Op: lock.OpTryAcquire, Session: b, Name: name})
	if err != nil || !resp.Granted || resp.Grant.Session != b {
		t.Fatalf("TryAcquire of a free lock = %+v, %v; want granted to b", resp, err)
	}
}

func testTokensIncrease(t *testing.T, c *suite) {
	a, b := c.open(t), c.open(t)
	name := c.name("x")
	var last lock.Token
	for i := range 6 {
		id := []lock.SessionID{a, b}[i%2]
		g := c.acquire(t, id, name)
		if g.Token <= last {
			t.Fatalf("grant %d has token %d after %d; want strictly increasing", i, g.Token, last)
		}
		last = g.Token
		if _, err := c.do(t, lock.Request{Op: lock.OpRelease, Session: id, Name: name, Token: g.Token}); err != nil {
			t.Fatal(err)
		}
	}
}

func testReleaseChecksToken(t *testing.T, c *suite) {
	a, b := c.open(t), c.open(t)
	name := c.name("x")
	g := c.acquire(t, a, name)
	_, err := c.do(t, lock.Request{Op: lock.OpRelease, Session: a, Name: name, Token: g.Token + 1})
	wantErr(t, "Release with a wrong token", err, lock.ErrNotHolder)
	_, err = c.do(t, lock.Request{Op: lock.OpRelease, Session: b, Name: name, Token: g.Token})
	wantErr(t, "Release by another session", err, lock.ErrNotHolder)
	c.wantHolder(t, name, g)
}

func testRetriedRelease(t *testing.T, c *suite) {
	a := c.open(t)
	name := c.name("x")
	g1 := c.acquire(t, a, name)
	if _, err := c.do(t, lock.Request{Op: lock.OpRelease, Session: a, Name: name, Token: g1.Token}); err != nil {
		t.Fatal(err)
	}
	g2 := c.acquire(t, a, name)
	// A retry of the first release (its answer was lost) arrives late.
	_, err := c.do(t, lock.Request{Op: lock.OpRelease, Session: a, Name: name, Token: g1.Token})
	wantErr(t, "late retry of an earlier grant's Release", err, lock.ErrNotHolder)
	c.wantHolder(t, name, g2)
}

func testKeepAliveHeld(t *testing.T, c *suite) {
	a := c.open(t)
	g := c.acquire(t, a, c.name("x"))
	resp, err := c.do(t, lock.Request{Op: lock.OpKeepAlive, Session: a})
	if err != nil {
		t.Fatalf("KeepAlive = %v", err)
	}
	found := false
	for _, h := range resp.Held {
		found = found || (h.Name == g.Name && h.Token == g.Token)
	}
	if !found {
		t.Fatalf("KeepAlive Held = %+v; want it to include %+v", resp.Held, g)
	}
	_, err = c.do(t, lock.Request{Op: lock.OpKeepAlive, Session: lock.SessionID(rand.Uint64() | 1)})
	wantErr(t, "KeepAlive of an unknown session", err, lock.ErrNoSession)
}

func testEnd(t *testing.T, c *suite) {
	a, b := c.open(t), c.open(t)
	name := c.name("x")
	c.acquire(t, a, name)
	got := make(chan lock.Grant, 1)
	go func() {
		resp, err := c.svc.Do(context.Background(), lock.Request{Op: lock.OpAcquire, Session: b, Name: name})
		if err != nil {
			t.Errorf("waiting Acquire = %v", err)
		}
		got <- resp.Grant
	}()
	if _, err := c.do(t, lock.Request{Op: lock.OpEnd, Session: a}); err != nil {
		t.Fatalf("End = %v", err)
	}
	if g := <-got; g.Session != b {
		t.Fatalf("after End the lock went to %+v; want session b", g)
	}
	_, err := c.do(t, lock.Request{Op: lock.OpKeepAlive, Session: a})
	wantErr(t, "KeepAlive of an ended session", err, lock.ErrNoSession)
	if _, err := c.do(t, lock.Request{Op: lock.OpEnd, Session: a}); err != nil {
		t.Fatalf("repeated End = %v; want nil", err)
	}
}

func testExpiry(t *testing.T, c *suite) {
	a, b := c.open(t), c.session(t)
	name := c.name("x")
	ga := c.acquire(t, a, name)
	// a sends no keepalives: its lease expires and b gets the lock.
	gb, err := b.Lock(c.ctx(t), name)
	if err != nil {
		t.Fatalf("Lock after the holder's lease expired = %v", err)
	}
	if gb.Token <= ga.Token {
		t.Fatalf("token after expiry %d; want above the expired grant's %d", gb.Token, ga.Token)
	}
	_, err = c.do(t, lock.Request{Op: lock.OpKeepAlive, Session: a})
	wantErr(t, "KeepAlive of an expired session", err, lock.ErrNoSession)
	_, err = c.do(t, lock.Request{Op: lock.OpRelease, Session: a, Name: name, Token: ga.Token})
	wantErr(t, "Release by an expired holder", err, lock.ErrNotHolder)
}

func testExpiredWaiter(t *testing.T, c *suite) {
	holder := c.session(t)
	w := c.open(t)
	name := c.name("x")
	if _, err := holder.Lock(c.ctx(t), name); err != nil {
		t.Fatal(err)
	}
	// w waits without renewing its lease: when it expires, the wait must
	// end (with an error), not block until the holder lets go.
	_, err := c.do(t, lock.Request{Op: lock.OpAcquire, Session: w, Name: name})
	if err == nil {
		t.Fatalf("Acquire by a waiter whose lease expired succeeded; want an error")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire by a waiter whose lease expired blocked until the test's deadline: %v", err)
	}
	if _, held := holder.Holds(name); !held {
		t.Fatalf("holder lost its lock while a waiter expired: %v", holder.Err())
	}
}

func testCancel(t *testing.T, c *suite) {
	a, b := c.open(t), c.open(t)
	name := c.name("x")
	ga := c.acquire(t, a, name)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.svc.Do(ctx, lock.Request{Op: lock.OpAcquire, Session: b, Name: name})
		done <- err
	}()
	cancel()
	<-done
	if _, err := c.do(t, lock.Request{Op: lock.OpCancel, Session: b, Name: name}); err != nil {
		t.Fatalf("Cancel = %v", err)
	}
	if _, err := c.do(t, lock.Request{Op: lock.OpRelease, Session: a, Name: name, Token: ga.Token}); err != nil {
		t.Fatal(err)
	}
	// b withdrew: the lock is free, not granted to b.
	c.wantFree(t, name)
}

func testFIFO(t *testing.T, c *suite) {
	if c.h.Waiters == nil {
		t.Skip("locktest: Harness.Waiters is nil; FIFO order cannot be arranged")
	}
	holder := c.open(t)
	name := c.name("x")
	g := c.acquire(t, holder, name)
	const n = 4
	order := make(chan int, n)
	ids := make([]lock.SessionID, n)
	for i := range n {
		ids[i] = c.open(t)
		go func() {
			resp, err := c.svc.Do(context.Background(), lock.Request{Op: lock.OpAcquire, Session: ids[i], Name: name})
			if err != nil {
				t.Errorf("waiter %d: %v", i, err)
				order <- -1
				return
			}
			order <- i
			_, _ = c.svc.Do(context.Background(), lock.Request{Op: lock.OpRelease, Session: ids[i], Name: name, Token: resp.Grant.Token})
		}()
		c.waitFor(t, name, i+1)
	}
	if _, err := c.do(t, lock.Request{Op: lock.OpRelease, Session: holder, Name: name, Token: g.Token}); err != nil {
		t.Fatal(err)
	}
	for want := range n {
		if got := <-order; got != want {
			t.Fatalf("grant %d went to waiter %d; want waiter %d (FIFO)", want, got, want)
		}
	}
}

// waitFor waits until n sessions wait for name.
func (c *suite) waitFor(t *testing.T, name string, n int) {
	t.Helper()
	ctx := c.ctx(t)
	for c.h.Waiters(c.svc, name) < n {
		select {
		case <-ctx.Done():
			t.Fatalf("%d waiters for %q never queued", n, name)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// partitioned passes every request but the keepalives of one session,
// which fail as if the network dropped them.
type partitioned struct {
	lock.Service
	mu  sync.Mutex // guards cut
	cut lock.SessionID
}

func (p *partitioned) Do(ctx context.Context, req lock.Request) (lock.Response, error) {
	p.mu.Lock()
	cut := p.cut
	p.mu.Unlock()
	if req.Op == lock.OpKeepAlive && req.Session == cut {
		return lock.Response{}, errors.New("locktest: keepalive dropped by a partition")
	}
	return p.Service.Do(ctx, req)
}

func testLeaseLoss(t *testing.T, c *suite) {
	p := &partitioned{Service: c.svc}
	cfg := lock.DefaultSessionConfig()
	cfg.TTL = c.h.TTL
	a, err := lock.NewSession(c.ctx(t), p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b := c.session(t)
	name := c.name("x")
	ga, err := a.Lock(c.ctx(t), name)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.cut = a.ID()
	p.mu.Unlock()
	gb, err := b.Lock(c.ctx(t), name)
	if err != nil {
		t.Fatalf("Lock after the holder's lease ran out = %v", err)
	}
	// The moment b holds the lock, a must already know it lost it.
	if tok, held := a.Holds(name); held {
		t.Fatalf("a still Holds %q (token %d) after b was granted it (token %d): lease loss not noticed within the bound", name, tok, gb.Token)
	}
	select {
	case <-a.Done():
	case <-c.ctx(t).Done():
		t.Fatal("a's Done never closed after its lease was lost")
	}
	if !errors.Is(a.Err(), lock.ErrLeaseLost) {
		t.Fatalf("a.Err() = %v; want ErrLeaseLost", a.Err())
	}
	if gb.Token <= ga.Token {
		t.Fatalf("b's token %d is not above a's %d", gb.Token, ga.Token)
	}
}

func testMutualExclusion(t *testing.T, c *suite) {
	const workers, rounds = 4, 5
	name := c.name("x")
	var mu sync.Mutex // guards inside, fence
	inside := 0
	var fence lock.Fence
	var wg sync.WaitGroup
	for range workers {
		s := c.session(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				g, err := s.Lock(context.Background(), name)
				if err != nil {
					t.Errorf("Lock: %v", err)
					return
				}
				mu.Lock()
				inside++
				if inside != 1 {
					t.Errorf("%d sessions inside the critical section", inside)
				}
				if err := fence.Check(g.Token); err != nil {
					t.Errorf("fence: %v", err)
				}
				inside--
				mu.Unlock()
				if err := s.Unlock(context.Background(), g); err != nil {
					t.Errorf("Unlock: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func testBadInput(t *testing.T, c *suite) {
	a := c.open(t)
	bad := []struct {
		name string
		req  lock.Request
	}{
		{"empty name", lock.Request{Op: lock.OpAcquire, Session: a, Name: ""}},
		{"zero TTL", lock.Request{Op: lock.OpOpen, Session: lock.SessionID(rand.Uint64() | 1), TTL: 0}},
		{"negative TTL", lock.Request{Op: lock.OpOpen, Session: lock.SessionID(rand.Uint64() | 1), TTL: -time.Second}},
		{"session 0", lock.Request{Op: lock.OpOpen, Session: 0, TTL: c.h.TTL}},
		{"unknown op", lock.Request{Op: lock.Op(200), Session: a, Name: "x"}},
	}
	for _, b := range bad {
		if _, err := c.do(t, b.req); !errors.Is(err, lock.ErrInvalidArgument) {
			t.Errorf("%s: Do = %v; want ErrInvalidArgument", b.name, err)
		}
	}
}
