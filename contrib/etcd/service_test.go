package dketcd_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distkit/distkit/lock"
	"github.com/distkit/distkit/lock/locktest"

	dketcd "github.com/distkit/distkit/contrib/etcd"
)

// TestConformance runs the lock.Service conformance suite against etcd.
// etcd leases have whole-second TTLs (and a server minimum), so the suite
// runs with 2s sessions: 1s would do for etcd (the test server's short
// election timeout makes its minimum 1s) but leaves a keepalive only 0.57s
// to come back under -race on a loaded machine.
func TestConformance(t *testing.T) {
	svc := newService(t, newClient(t))
	locktest.Run(t, locktest.Harness{
		Open: func(t *testing.T) lock.Service { return svc },
		TTL:  2 * time.Second,
		Waiters: func(_ lock.Service, name string) int {
			return svc.Waiters(context.Background(), name)
		},
	})
}

// TestLeaseRevokedUnderHolder: the holder's lease is revoked behind its
// back (an operator, or expiry during a partition): the next keepalive
// learns the session is gone, Done closes with ErrLeaseLost, and the lock
// passes on with a higher token.
func TestLeaseRevokedUnderHolder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := newClient(t)
	svc := newService(t, c)
	cfg := lock.DefaultSessionConfig()
	cfg.TTL = 2 * time.Second
	a, err := lock.NewSession(ctx, svc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := lock.NewSession(ctx, svc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ga, err := a.Lock(ctx, "revoked")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Do(ctx, lock.Request{Op: lock.OpEnd, Session: a.ID()}); err != nil { // revoke a's lease
		t.Fatal(err)
	}
	gb, err := b.Lock(ctx, "revoked")
	if err != nil {
		t.Fatal(err)
	}
	if gb.Token <= ga.Token {
		t.Fatalf("token after the revoke %d; want above %d", gb.Token, ga.Token)
	}
	select {
	case <-a.Done():
	case <-ctx.Done():
		t.Fatal("a's Done never closed after its lease was revoked")
	}
	if !errors.Is(a.Err(), lock.ErrLeaseLost) {
		t.Fatalf("a.Err() = %v; want ErrLeaseLost", a.Err())
	}
	if err := a.Unlock(ctx, ga); err == nil {
		t.Fatalf("Unlock by the session that lost its lease succeeded")
	}
	if g, _ := svc.Do(ctx, lock.Request{Op: lock.OpHolder, Name: "revoked"}); g.Grant.Token != gb.Token {
		t.Fatalf("holder = %+v; want b's grant %+v", g.Grant, gb)
	}
}

// TestElector: two candidates on etcd; one leads, resigns, the other leads
// with a higher epoch.
func TestElector(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc := newService(t, newClient(t))
	cfg := lock.DefaultElectorConfig()
	cfg.Name = "elector-test-" + time.Now().Format("150405.000000")
	cfg.Session.TTL = 2 * time.Second
	var electors []*lock.Elector
	for _, id := range []string{"n1", "n2"} {
		c := cfg
		c.ID = nodeID(id)
		e, err := dketcd.NewElector(svc, c)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		electors = append(electors, e)
	}
	l1, err := electors[0].Campaign(ctx)
	if err != nil || l1.ID != "n1" {
		t.Fatalf("n1 Campaign = %+v, %v", l1, err)
	}
	won := make(chan error, 1)
	go func() {
		l2, err := electors[1].Campaign(ctx)
		if err == nil && (l2.ID != "n2" || l2.Epoch <= l1.Epoch) {
			err = errors.New("n2 won with a bad view")
		}
		won <- err
	}()
	if err := electors[0].Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-won; err != nil {
		t.Fatal(err)
	}
	if _, err := dketcd.NewElector(nil, cfg); !errors.Is(err, dketcd.ErrInvalidConfig) {
		t.Fatalf("NewElector(nil) = %v; want ErrInvalidConfig", err)
	}
}

func TestNewRefusesBadInput(t *testing.T) {
	if _, err := dketcd.New(nil, dketcd.DefaultConfig()); !errors.Is(err, dketcd.ErrInvalidConfig) {
		t.Fatalf("New(nil) = %v; want ErrInvalidConfig", err)
	}
	var zero *dketcd.Service
	if _, err := zero.Do(context.Background(), lock.Request{Op: lock.OpHolder, Name: "x"}); !errors.Is(err, dketcd.ErrInvalidConfig) {
		t.Fatalf("nil Service Do = %v; want ErrInvalidConfig", err)
	}
}
