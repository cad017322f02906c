package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/idempotency"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
	"github.com/distkit/distkit/txn"
	"github.com/distkit/distkit/txn/saga"
)

// crashOnFirstCommit wraps a coordinator replica's transport: when armed,
// the first COMMIT message any replica tries to send takes that replica
// off the network instead. A replicated leader sends COMMIT only once the
// decision is in the replicated log, so this is scene 3's crash: decision
// durable, no participant told.
type crashOnFirstCommit struct {
	transport.Transport
	net   *memnet.Network
	mu    *sync.Mutex // guards *armed, shared by the replicas
	armed *uuid.UUID  // the transaction whose first COMMIT kills its sender

	hit chan transport.NodeID // receives the crashed replica
}

func (t *crashOnFirstCommit) Send(ctx context.Context, to transport.NodeID, service string, payload []byte) error {
	if service == txn.ServiceParticipant {
		if m, err := txn.UnmarshalMessage(payload); err == nil && m.Type == txn.MsgDecision && m.Outcome == txn.Committed {
			t.mu.Lock()
			fire := *t.armed == m.Txn
			if fire {
				*t.armed = uuid.UUID{}
			}
			t.mu.Unlock()
			if fire {
				t.net.Crash(t.ID())
				t.hit <- t.ID()
				return nil
			}
		}
	}
	return t.Transport.Send(ctx, to, service, payload)
}

func replicatedScene(out *printer, seed int64) error {
	out.printf("Scene 5: scene 3's crash again, with a replicated coordinator (three replicas, one Raft group)\n")
	rng := rand.New(rand.NewPCG(uint64(seed), 5))
	newID := func() uuid.UUID {
		var u uuid.UUID
		for i := range u {
			u[i] = byte(rng.Uint32())
		}
		u[6], u[8] = u[6]&0x0f|0x40, u[8]&0x3f|0x80
		return u
	}
	say := func(id uuid.UUID, format string, args ...any) {
		out.printf("  [txn %s] %s\n", id.String()[:8], fmt.Sprintf(format, args...))
	}
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		return err
	}
	defer net.Close()
	cfg := txn.DefaultConfig()
	cfg.RetryInterval = 60 * time.Millisecond
	cfg.TickInterval = 10 * time.Millisecond

	stores := map[transport.NodeID]*txn.Store{}
	var parts []*txn.Participant
	defer func() {
		for _, p := range parts {
			p.Close()
		}
	}()
	for _, id := range []transport.NodeID{"bank1", "bank2"} {
		tr, err := net.Join(id)
		if err != nil {
			return err
		}
		stores[id] = txn.NewStore()
		p, err := txn.NewParticipant(tr, txn.NewMemoryLog(), stores[id], cfg)
		if err != nil {
			return err
		}
		parts = append(parts, p)
	}
	replicas := []transport.NodeID{"r1", "r2", "r3"}
	coords := map[transport.NodeID]*txn.ReplicatedCoordinator{}
	defer func() {
		for _, c := range coords {
			c.Close()
		}
	}()
	var mu sync.Mutex
	var armed uuid.UUID
	hit := make(chan transport.NodeID, 1)
	for i, id := range replicas {
		tr, err := net.Join(id)
		if err != nil {
			return err
		}
		rc := consensus.DefaultConfig()
		rc.ID, rc.Peers, rc.Service, rc.Seed = id, replicas, "txn/raft", uint64(seed)*10+uint64(i)+1
		c, err := txn.NewReplicatedCoordinator(&crashOnFirstCommit{Transport: tr, net: net, mu: &mu, armed: &armed, hit: hit}, rc, cfg)
		if err != nil {
			return err
		}
		coords[id] = c
	}
	leader := func() (*txn.ReplicatedCoordinator, error) {
		for range 1000 {
			for _, id := range replicas {
				if !net.Crashed(id) && coords[id].Stats().Leading {
					return coords[id], nil
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		return nil, errors.New("no replica took the lead")
	}
	run := func(id uuid.UUID, work ...txn.Work) (txn.Result, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for {
			l, err := leader()
			if err != nil {
				return txn.Result{}, err
			}
			r, err := l.RunID(ctx, id, work...)
			if !errors.Is(err, txn.ErrNotLeader) {
				return r, err
			}
		}
	}

	id := newID()
	if _, err := run(id, add("bank1", "A", 100), add("bank2", "B", 0)); err != nil {
		return err
	}
	// Wait until both banks have acknowledged it (on whichever replica leads).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		l, err := leader()
		if err == nil {
			err = l.Quiesce(ctx)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, txn.ErrNotLeader) {
			return err
		}
	}
	say(id, "opening balances committed: the COMMIT went through the replicated log")
	out.printf("  balances: A@bank1 = 100, B@bank2 = 0\n")

	id = newID()
	mu.Lock()
	armed = id
	mu.Unlock()
	say(id, "the leader begins the transfer of 100 from A@bank1 to B@bank2")
	r, err := run(id, add("bank1", "A", -100), add("bank2", "B", 100))
	if err != nil || r.Outcome != txn.Committed {
		return fmt.Errorf("transfer: %v, %v", r.Outcome, err)
	}
	<-hit
	say(id, "both banks voted YES; COMMIT is in the replicated log (a majority of replicas hold it)")
	say(id, "the leader CRASHES before any COMMIT message leaves: both banks are in doubt, holding their locks")
	start := time.Now()
	for time.Since(start) < 10*time.Second {
		n := 0
		for _, p := range parts {
			n += p.Stats().InDoubt
		}
		if n == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	bound := 2*time.Duration(consensus.DefaultConfig().ElectionTicks)*consensus.DefaultConfig().TickInterval + 2*cfg.RetryInterval
	if took := time.Since(start); took > 5*bound {
		return fmt.Errorf("banks in doubt for %v", took)
	}
	if _, err := leader(); err != nil {
		return err
	}
	say(id, "another replica is elected, reads the replicated table, finds the COMMIT and sends it again")
	say(id, "both banks apply it and release their locks: nobody waited for the crashed replica to come back")
	a, _ := stores["bank1"].Get("A")
	b, _ := stores["bank2"].Get("B")
	out.printf("  balances: A@bank1 = %d, B@bank2 = %d\n\n", a, b)
	return nil
}

// sagaScene books a trip with a saga: the car cannot be rented, so the
// hotel and the flight are cancelled. The services sit behind a barrier.
func sagaScene(out *printer) error {
	out.printf("Scene 6: a saga (no locks held across services): book a flight, a hotel and a car; the car fails\n")
	const id = "trip-1"
	say := func(format string, args ...any) {
		out.printf("  [saga %s] %s\n", id, fmt.Sprintf(format, args...))
	}
	store, err := idempotency.NewMemoryStore(idempotency.DefaultMemoryConfig())
	if err != nil {
		return err
	}
	barrier, err := saga.NewBarrier(store, time.Hour, time.Minute, nil)
	if err != nil {
		return err
	}
	var steps []saga.Step
	for i, name := range []string{"flight", "hotel", "car"} {
		steps = append(steps, saga.Step{Name: name,
			Action: func(ctx context.Context, id string) error {
				return barrier.Action(ctx, id, i, func(context.Context) error {
					if name == "car" {
						say("book %-6s -> refused: no car left", name)
						return saga.Permanent(errors.New("no car left"))
					}
					say("book %-6s -> booked", name)
					return nil
				})
			},
			Compensate: func(ctx context.Context, id string) error {
				ran := false
				err := barrier.Compensate(ctx, id, i, func(context.Context) error {
					ran = true
					say("cancel %-6s -> cancelled", name)
					return nil
				})
				if err == nil && !ran {
					say("cancel %-6s -> nothing to undo (null compensation: the booking never happened, and a late one will be refused)", name)
				}
				return err
			}})
	}
	r, err := saga.NewRunner(saga.NewMemoryLog(), saga.DefaultConfig())
	if err != nil {
		return err
	}
	if err := r.Register(saga.Saga{Name: "trip", Steps: steps}); err != nil {
		return err
	}
	o, err := r.Run(context.Background(), "trip", id)
	if err != nil {
		return err
	}
	say("outcome: %v (%s)", o, r.Cause(id))
	if err := barrier.Action(context.Background(), id, 2, func(context.Context) error { return nil }); errors.Is(err, saga.ErrHanging) {
		say("a late, retried 'book car' request arrives: refused (%v)", err)
	}
	out.printf("\n")
	return nil
}
