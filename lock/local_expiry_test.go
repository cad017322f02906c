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
	const holder, waiter lock.SessionID = 1, 2
	for _, s := range []lock.SessionID{holder, waiter} {
		if _, err := l.Do(ctx, lock.Request{Op: lock.OpOpen, Session: s, TTL: ttl}); err != nil {
			t.Fatalf("open %d: %v", s, err)
		}
	}
	if resp, err := l.Do(ctx, lock.Request{Op: lock.OpAcquire, Session: holder, Name: "x"}); err != nil || !resp.Granted {
		t.Fatalf("holder's acquire = %+v, %v", resp, err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := l.Do(ctx, lock.Request{Op: lock.OpAcquire, Session: waiter, Name: "x"})
		done <- err
	}()
	for len(l.Waiters("x")) == 0 {
		if ctx.Err() != nil {
			t.Fatal("the waiter never queued")
		}
		time.Sleep(time.Millisecond)
	}
	// The holder renews twice, 0.9 TTL apart: the second renewal's request
	// passes the waiter's deadline.
	for range 2 {
		m.Advance(ttl * 9 / 10)
		if _, err := l.Do(ctx, lock.Request{Op: lock.OpKeepAlive, Session: holder}); err != nil {
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
}

// TestLocalWakesWaiterOfEndedSession: a waiter whose session is ended
// (OpEnd, as Session.Close sends) is woken with ErrNoSession at once; it
// must not stay blocked on a queue it is no longer in.
func TestLocalWakesWaiterOfEndedSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, err := lock.NewLocal(lock.DefaultLocalConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		const holder, waiter lock.SessionID = 1, 2
		for _, s := range []lock.SessionID{holder, waiter} {
			if _, err := l.Do(ctx, lock.Request{Op: lock.OpOpen, Session: s, TTL: time.Minute}); err != nil {
				t.Fatalf("open %d: %v", s, err)
			}
		}
		if resp, err := l.Do(ctx, lock.Request{Op: lock.OpAcquire, Session: holder, Name: "x"}); err != nil || !resp.Granted {
			t.Fatalf("holder's acquire = %+v, %v", resp, err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := l.Do(ctx, lock.Request{Op: lock.OpAcquire, Session: waiter, Name: "x"})
			done <- err
		}()
		synctest.Wait()
		if _, err := l.Do(ctx, lock.Request{Op: lock.OpEnd, Session: waiter}); err != nil {
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
		l, err := lock.NewLocal(lock.DefaultLocalConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		const holder, waiter lock.SessionID = 1, 2
		for _, s := range []lock.SessionID{holder, waiter} {
			if _, err := l.Do(ctx, lock.Request{Op: lock.OpOpen, Session: s, TTL: time.Minute}); err != nil {
				t.Fatalf("open %d: %v", s, err)
			}
		}
		first, err := l.Do(ctx, lock.Request{Op: lock.OpAcquire, Session: holder, Name: "x"})
		if err != nil || !first.Granted {
			t.Fatalf("holder's acquire = %+v, %v", first, err)
		}
		type result struct {
			resp lock.Response
			err  error
		}
		done := make(chan result, 1)
		go func() {
			resp, err := l.Do(ctx, lock.Request{Op: lock.OpAcquire, Session: waiter, Name: "x"})
			done <- result{resp, err}
		}()
		synctest.Wait()
		if _, err := l.Do(ctx, lock.Request{Op: lock.OpRelease, Session: holder, Name: "x", Token: first.Grant.Token}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		select {
		case r := <-done:
			if r.err != nil || !r.resp.Granted || r.resp.Grant.Session != waiter || r.resp.Grant.Token <= first.Grant.Token {
				t.Errorf("waiter's Acquire = %+v, %v; want a grant to session %d above token %d", r.resp, r.err, waiter, first.Grant.Token)
			}
		default:
			t.Error("the waiter granted the released lock is still blocked")
		}
	})
}
