package lock_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/distkit/distkit/clock"
	"github.com/distkit/distkit/lock"
)

// TestUnlockOfAnOlderGrantKeepsTheCurrentOne: Unlock of a grant the session
// no longer holds (an earlier grant of the same lock) fails with
// ErrNotHolder and leaves the current grant held, at the client and at the
// service.
func TestUnlockOfAnOlderGrantKeepsTheCurrentOne(t *testing.T) {
	ctx := context.Background()
	local := newLocal(t)
	s := newSession(t, local, 10*time.Second)
	old, err := s.Lock(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Unlock(ctx, old); err != nil {
		t.Fatal(err)
	}
	cur, err := s.Lock(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Unlock(ctx, old); !errors.Is(err, lock.ErrNotHolder) {
		t.Errorf("Unlock(the older grant) = %v; want ErrNotHolder", err)
	}
	if tok, ok := s.Holds("x"); !ok || tok != cur.Token {
		t.Errorf("Holds(x) = %d, %v after unlocking the older grant; want %d, true", tok, ok, cur.Token)
	}
	if g, ok := local.Holder("x"); !ok || g.Token != cur.Token {
		t.Errorf("service's holder of x = %+v, %v; want token %d", g, ok, cur.Token)
	}
	if err := s.Unlock(ctx, cur); err != nil {
		t.Errorf("Unlock(the current grant) = %v; want success", err)
	}
}

// TestLockAnsweredAfterTheBoundFails: a grant that reaches the client after
// its lease bound passed is not trusted (the service may have expired the
// lease and given the lock on in between): Lock fails with ErrLeaseLost and
// the session does not count the lock as held.
func TestLockAnsweredAfterTheBoundFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.NewManual(time.Now())
		cfg := lock.DefaultSessionConfig() // the session's own timers run on the bubble's clock
		cfg.Clock = clk
		s, err := lock.NewSession(context.Background(), &slowAnswer{svc: newLocal(t), op: lock.OpAcquire, clk: clk, delay: cfg.TTL}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if g, err := s.Lock(context.Background(), "x"); !errors.Is(err, lock.ErrLeaseLost) {
			t.Errorf("Lock answered after the bound = %+v, %v; want ErrLeaseLost", g, err)
		}
		if tok, ok := s.Holds("x"); ok {
			t.Errorf("Holds(x) = %d, true; want false", tok)
		}
	})
}

// TestKeepAliveNoSessionLosesTheLease: when a keepalive is answered "no
// such session" (the service ended or expired it), the session is lost at
// once, with that cause, not only when its bound passes.
func TestKeepAliveNoSessionLosesTheLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		local := newLocal(t)
		cfg := lock.DefaultSessionConfig()
		cfg.TTL = 3 * time.Second // keepalives every second; the bound is 2.7 s after each
		s, err := lock.NewSession(context.Background(), local, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := local.Do(context.Background(), lock.Request{Op: lock.OpEnd, Session: s.ID()}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond) // past the first keepalive, well before the bound
		synctest.Wait()
		if err := s.Err(); !errors.Is(err, lock.ErrLeaseLost) || !errors.Is(err, lock.ErrNoSession) {
			t.Errorf("Err() after a keepalive answered ErrNoSession = %v; want ErrLeaseLost wrapping ErrNoSession", err)
		}
	})
}

// grantAfterKeepAlive is a Service whose acquire answers are held back
// until after the next keepalive (sleeping past the keepalive interval,
// in a synctest bubble): the keepalive's answer then lists a grant the
// client has not learned of yet.
type grantAfterKeepAlive struct {
	svc  lock.Service
	hold time.Duration
}

func (g *grantAfterKeepAlive) Do(ctx context.Context, req lock.Request) (lock.Response, error) {
	resp, err := g.svc.Do(ctx, req)
	if req.Op == lock.OpAcquire {
		time.Sleep(g.hold)
	}
	return resp, err
}

// TestOrphanCleanupSparesAGrantInFlight: the keepalive's answer lists the
// session's grants, and the client releases those it does not know of
// (orphans); a grant whose acquire is still on its way back is not one of
// them: releasing it would leave the client trusting a lock the service
// has freed.
func TestOrphanCleanupSparesAGrantInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		local := newLocal(t)
		cfg := lock.DefaultSessionConfig()
		cfg.TTL = 3 * time.Second // keepalives every second
		s, err := lock.NewSession(context.Background(), &grantAfterKeepAlive{svc: local, hold: 1500 * time.Millisecond}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		g, err := s.Lock(context.Background(), "x")
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if h, ok := local.Holder("x"); !ok || h.Session != s.ID() || h.Token != g.Token {
			t.Errorf("service's holder of x = %+v, %v; want the client's grant %+v, which it trusts", h, ok, g)
		}
	})
}

// TestDefaultSafetyMarginIsATenthOfTheTTL: by default a client trusts its
// lease for 0.9 TTL from the send time of the acknowledged request, which
// is what tolerates a client clock up to 10% slower than the service's
// (package documentation, "The lease-lost bound"); a margin set in the
// config is used as given.
func TestDefaultSafetyMarginIsATenthOfTheTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tests := []struct {
			ttl, margin time.Duration
			want        time.Duration // Expiry − send time of the Open
		}{
			{10 * time.Second, 0, 9 * time.Second},
			{time.Minute, 0, 54 * time.Second},
			{10 * time.Second, 3 * time.Second, 7 * time.Second},
		}
		for _, tt := range tests {
			clk := clock.NewManual(time.Now())
			cfg := lock.DefaultSessionConfig()
			cfg.TTL, cfg.SafetyMargin, cfg.Clock = tt.ttl, tt.margin, clk
			sent := clk.Now()
			s, err := lock.NewSession(context.Background(), newLocal(t), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Expiry().Sub(sent); got != tt.want {
				t.Errorf("TTL %v, SafetyMargin %v: Expiry = send time + %v; want + %v", tt.ttl, tt.margin, got, tt.want)
			}
			s.Close()
		}
	})
}

// TestLockAnsweredNoSessionLosesTheLease: a Lock answered "no such session"
// (the service ended or expired it) ends the session at once: Done closes
// with ErrLeaseLost, without waiting for a keepalive or the bound.
func TestLockAnsweredNoSessionLosesTheLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		local := newLocal(t)
		s, err := lock.NewSession(context.Background(), local, lock.DefaultSessionConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := local.Do(context.Background(), lock.Request{Op: lock.OpEnd, Session: s.ID()}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Lock(context.Background(), "x"); !errors.Is(err, lock.ErrNoSession) {
			t.Errorf("Lock in an ended session = %v; want ErrNoSession", err)
		}
		select {
		case <-s.Done():
		default:
			t.Errorf("Done still open after Lock was answered ErrNoSession (Err() = %v)", s.Err())
		}
	})
}
