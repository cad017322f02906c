package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/distkit/distkit/lock"
	"github.com/distkit/distkit/transport"
)

func init() {
	register(chapter{order: 90, name: "lock", title: "Locks: leases, fencing tokens and a lease-based election", run: runLock})
}

// frozenLink is a lock.Service through which a client can be "paused": while
// frozen its requests (keepalives included) get no answer, as when a
// process stops for a long garbage collection.
type frozenLink struct {
	svc lock.Service

	mu     sync.Mutex    // guards frozen
	frozen chan struct{} // closed when the pause ends; nil when running
}

func (f *frozenLink) freeze() {
	f.mu.Lock()
	f.frozen = make(chan struct{})
	f.mu.Unlock()
}

func (f *frozenLink) thaw() {
	f.mu.Lock()
	close(f.frozen)
	f.frozen = nil
	f.mu.Unlock()
}

func (f *frozenLink) Do(ctx context.Context, req lock.Request) (lock.Response, error) {
	f.mu.Lock()
	frozen := f.frozen
	f.mu.Unlock()
	if frozen != nil {
		select {
		case <-frozen:
		case <-ctx.Done():
			return lock.Response{}, ctx.Err()
		}
	}
	return f.svc.Do(ctx, req)
}

func runLock(ctx context.Context, t *tour) error {
	svc, err := lock.NewLocal(lock.DefaultLocalConfig())
	if err != nil {
		return err
	}
	defer svc.Close()
	const ttl = 200 * time.Millisecond
	open := func(s lock.Service, owner string) (*lock.Session, error) {
		cfg := lock.DefaultSessionConfig()
		cfg.TTL, cfg.Owner = ttl, owner
		return lock.NewSession(ctx, s, cfg)
	}

	// Part 1: Kleppmann's scenario. A lease alone cannot stop a paused
	// client from writing after its lease ran out; a fencing token can.
	t.Detail("Alice and Bob share a lock service (leases of %v) and a store that checks", ttl)
	t.Detail("fencing tokens: it refuses a token lower than one it has already accepted.")
	link := &frozenLink{svc: svc}
	alice, err := open(link, "alice")
	if err != nil {
		return err
	}
	defer alice.Close()
	bob, err := open(svc, "bob")
	if err != nil {
		return err
	}
	defer bob.Close()
	var store lock.Fence

	ga, err := alice.Lock(ctx, "store")
	if err != nil {
		return err
	}
	t.Say("alice holds the lock with token %d and writes: %v", ga.Token, outcome(store.Check(ga.Token)))
	bobGrant := make(chan lock.Grant, 1)
	bobErr := make(chan error, 1)
	go func() {
		g, err := bob.Lock(ctx, "store")
		if err != nil {
			bobErr <- err
			return
		}
		bobGrant <- g
	}()
	t.Detail("Bob waits for the lock. Alice checks her lease (valid: %v), then freezes,", alice.Valid())
	t.Detail("keepalives and all, for longer than her lease, just before her second write.")
	link.freeze()
	<-alice.Done()
	t.Say("alice's own bound passes first: she would know her lease is lost (%v) if she were running", errors.Is(alice.Err(), lock.ErrLeaseLost))
	var gb lock.Grant
	select {
	case gb = <-bobGrant:
	case err := <-bobErr:
		return err
	}
	t.Say("the service expires her lease; bob gets the lock with token %d and writes: %v", gb.Token, outcome(store.Check(gb.Token)))
	link.thaw()
	t.Say("alice wakes and writes with token %d: %v", ga.Token, outcome(store.Check(ga.Token)))
	if store.Highest() != gb.Token {
		return fmt.Errorf("store accepted token %d; want bob's %d", store.Highest(), gb.Token)
	}
	if err := bob.Unlock(ctx, gb); err != nil {
		return err
	}

	// Part 2: leader election as a lock: the epoch is the fencing token.
	t.Detail("An election is a lock too: campaign = acquire, epoch = token, resign = unlock.")
	elect := func(id string) (*lock.Elector, error) {
		cfg := lock.DefaultElectorConfig()
		cfg.ID = transport.NodeID(id)
		cfg.Session.TTL = ttl
		return lock.NewElector(svc, cfg)
	}
	n1, err := elect("n1")
	if err != nil {
		return err
	}
	defer n1.Close()
	n2, err := elect("n2")
	if err != nil {
		return err
	}
	defer n2.Close()
	l1, err := n1.Campaign(ctx)
	if err != nil {
		return err
	}
	t.Say("n1 wins the election with epoch %d", l1.Epoch)
	won := make(chan error, 1)
	go func() {
		l2, err := n2.Campaign(ctx)
		if err == nil {
			t.Say("n1 resigns; n2, next in line, leads with epoch %d", l2.Epoch)
		}
		won <- err
	}()
	if err := n1.Resign(ctx); err != nil {
		return err
	}
	return <-won
}

func outcome(err error) string {
	if err != nil {
		return "REJECTED (" + err.Error() + ")"
	}
	return "accepted"
}
