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

// TestLocalWakesWaiterExpiredByAnotherRequest pins the etcd-io/etcd#19597
// trap on Local deterministically: the waiter's lease runs out while the
// service clock (a manual one) is moved by another session's keepalive,
// not by Local's own expiry timer. That keepalive's request expires the
// waiter, and must wake it (ErrNoSession), or it would stay queued until
// the holder let go.
func TestLocalWakesWaiterExpiredByAnotherRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = time.Second
		m := clock.NewManual(time.Unix(1_000_000, 0))
		cfg := lock.DefaultLocalConfig()
		cfg.Clock = m
		l, err := lock.NewLocal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		holdX(ctx, t, l, ttl)
		done := make(chan error, 1)
		go func() {
			_, err := l.Do(ctx, lock.Request{Op: lock.OpAcquire, Session: waiterSession, Name: "x"})
			done <- err
		}()
		synctest.Wait()
		if len(l.Waiters("x")) == 0 {
			t.Fatal("the waiter never queued")
		}
		// The holder renews twice, 0.9 TTL apart: the second renewal's request
		// passes the waiter's deadline.
		for range 2 {
			m.Advance(ttl * 9 / 10)
			if _, err := l.Do(ctx, lock.Request{Op: lock.OpKeepAlive, Session: holderSession}); err != nil {
				t.Fatalf("holder's keepalive: %v", err)
			}
		}
		select {
		case err := <-done:
			if !errors.Is(err, lock.ErrNoSession) {
				t.Fatalf("expired waiter's Acquire = %v; want ErrNoSession", err)
			}
		case <-ctx.Done():
			t.Fatal("the waiter whose lease expired during another session's request was never woken")
		}
	})
}

// TestLocalWakesWaiterOfEndedSession: a waiter whose session is ended
// (OpEnd, as Session.Close sends) is woken with ErrNoSession at once; it
// must not stay blocked on a queue it is no longer in.
func TestLocalWakesWaiterOfEndedSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLocal(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		holdX(ctx, t, l, time.Minute)
		done := make(chan error, 1)
		go func() {
			_, err := l.Do(ctx, lock.Request{Op: lock.OpAcquire, Session: waiterSession, Name: "x"})
			done <- err
		}()
		synctest.Wait()
		if _, err := l.Do(ctx, lock.Request{Op: lock.OpEnd, Session: waiterSession}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		select {
		case err := <-done:
			if !errors.Is(err, lock.ErrNoSession) {
				t.Errorf("ended waiter's Acquire = %v; want ErrNoSession", err)
			}
		default:
			t.Error("the waiter whose session ended is still blocked")
		}
	})
}

// TestLocalWakesWaiterOnRelease: a release hands the lock to the first
// waiter, and Local wakes it with the grant at once.
func TestLocalWakesWaiterOnRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLocal(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		openHolderAndWaiter(ctx, t, l, time.Minute)
		first, err := l.Do(ctx, lock.Request{Op: lock.OpAcquire, Session: holderSession, Name: "x"})
		if err != nil || !first.Granted {
			t.Fatalf("holder's acquire = %+v, %v", first, err)
		}
		type result struct {
			resp lock.Response
			err  error
		}
		done := make(chan result, 1)
		go func() {
			resp, err := l.Do(ctx, lock.Request{Op: lock.OpAcquire, Session: waiterSession, Name: "x"})
			done <- result{resp, err}
		}()
		synctest.Wait()
		if _, err := l.Do(ctx, lock.Request{Op: lock.OpRelease, Session: holderSession, Name: "x", Token: first.Grant.Token}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		select {
		case r := <-done:
			if r.err != nil || !r.resp.Granted || r.resp.Grant.Session != waiterSession || r.resp.Grant.Token <= first.Grant.Token {
				t.Errorf("waiter's Acquire = %+v, %v; want a grant to session %d above token %d", r.resp, r.err, waiterSession, first.Grant.Token)
			}
		default:
			t.Error("the waiter granted the released lock is still blocked")
		}
	})
}

// The sessions of the tests above: holderSession holds "x",
// waiterSession will want it.
const holderSession, waiterSession lock.SessionID = 1, 2

// openHolderAndWaiter opens holderSession and waiterSession on l, each
// with a lease of ttl.
func openHolderAndWaiter(ctx context.Context, t *testing.T, l *lock.Local, ttl time.Duration) {
	t.Helper()
	for _, s := range []lock.SessionID{holderSession, waiterSession} {
		if _, err := l.Do(ctx, lock.Request{Op: lock.OpOpen, Session: s, TTL: ttl}); err != nil {
			t.Fatalf("open %d: %v", s, err)
		}
	}
}

// holdX opens the two sessions on l (openHolderAndWaiter) and has
// holderSession acquire "x".
func holdX(ctx context.Context, t *testing.T, l *lock.Local, ttl time.Duration) {
	t.Helper()
	openHolderAndWaiter(ctx, t, l, ttl)
	if resp, err := l.Do(ctx, lock.Request{Op: lock.OpAcquire, Session: holderSession, Name: "x"}); err != nil || !resp.Granted {
		t.Fatalf("holder's acquire = %+v, %v", resp, err)
	}
}
