package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
	"github.com/distkit/distkit/txn"
)

func init() {
	register(chapter{order: 70, name: "txn", title: "Two-phase commit: atomic transfers between banks, through a crash", run: runTxn})
}

// crashingLog is a txn.Log that, once armed, runs crash right after the
// next COMMIT record it makes durable.
type crashingLog struct {
	txn.Log
	mu    sync.Mutex // guards crash
	crash func()
}

func (l *crashingLog) arm(crash func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.crash = crash
}

func (l *crashingLog) Append(recs []txn.Record) error {
	if err := l.Log.Append(recs); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range recs {
		if r.Type == txn.RecCommit && l.crash != nil {
			l.crash()
			l.crash = nil
		}
	}
	return nil
}

// runTxn moves money between accounts at three banks with two-phase
// commit over a lossy network: a batch of concurrent random transfers, a
// transfer refused for lack of funds, and a coordinator that crashes right
// after deciding to commit.
func runTxn(ctx context.Context, t *tour) error {
	rng := rand.New(rand.NewPCG(uint64(t.seed), 70))
	ncfg := memnet.DefaultConfig()
	ncfg.Seed = t.seed
	ncfg.Faults = memnet.Faults{Drop: 0.05, Duplicate: 0.05, MinDelay: 100 * time.Microsecond, MaxDelay: 2 * time.Millisecond}
	net, err := memnet.New(ncfg)
	if err != nil {
		return err
	}
	defer net.Close()
	cfg := txn.DefaultConfig()
	cfg.RetryInterval = 20 * time.Millisecond
	cfg.TickInterval = 5 * time.Millisecond

	banks := []transport.NodeID{"bank1", "bank2", "bank3"}
	accounts := []string{"alice", "bob", "carol", "dave", "erin", "frank"}
	stores := map[transport.NodeID]*txn.Store{}
	for _, b := range banks {
		tr, err := net.Join(b)
		if err != nil {
			return err
		}
		stores[b] = txn.NewStore()
		p, err := txn.NewParticipant(tr, txn.NewMemoryLog(), stores[b], cfg)
		if err != nil {
			return err
		}
		defer p.Close()
		for _, a := range accounts {
			stores[b].Set(a, 100)
		}
	}
	total := func() (sum int64) {
		for _, b := range banks {
			for _, v := range stores[b].Values() {
				sum += v
			}
		}
		return sum
	}
	ctr, err := net.Join("coordinator")
	if err != nil {
		return err
	}
	mem := txn.NewMemoryLog()
	crashing := &crashingLog{Log: mem}
	coord, err := txn.NewCoordinator(ctr, crashing, cfg)
	if err != nil {
		return err
	}
	defer func() { coord.Close() }()

	transfer := func(from, to transport.NodeID, fromAcct, toAcct string, amount int64) []txn.Work {
		debit, _ := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: fromAcct, Amount: -amount})
		credit, _ := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: toAcct, Amount: amount})
		return []txn.Work{{Participant: from, Ops: debit}, {Participant: to, Ops: credit}}
	}

	t.Detail("Three banks hold six accounts of 100 each. A coordinator moves money between")
	t.Detail("banks: PREPARE → votes → COMMIT or ABORT → ACK, over a network that loses and")
	t.Detail("duplicates 5%% of messages. Locks are taken at PREPARE; a busy key votes NO.")
	var wg sync.WaitGroup
	var mu sync.Mutex // guards committed, aborted, reasons
	committed, aborted := 0, 0
	reasons := map[string]int{}
	for range 4 {
		works := make([][]txn.Work, 10)
		for i := range works {
			from, to := banks[rng.IntN(3)], banks[rng.IntN(3)]
			for to == from {
				to = banks[rng.IntN(3)]
			}
			works[i] = transfer(from, to, accounts[rng.IntN(len(accounts))], accounts[rng.IntN(len(accounts))], 10+rng.Int64N(90))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, work := range works {
				_, err := coord.Run(ctx, work...)
				var abort *txn.AbortError
				mu.Lock()
				switch {
				case err == nil:
					committed++
				case errors.As(err, &abort):
					aborted++
					why := fmt.Sprintf("%v (%s)", abort.Cause, abort.Reason)
					switch {
					case strings.Contains(abort.Reason, "locked"):
						why = "a key was locked by a concurrent transfer"
					case strings.Contains(abort.Reason, "insufficient"):
						why = "insufficient funds"
					}
					reasons[why]++
				default:
					reasons[err.Error()]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := coord.Quiesce(ctx); err != nil {
		return err
	}
	t.Say("40 concurrent random transfers: %d committed, %d aborted; total money %d (started at 1800)", committed, aborted, total())
	for _, reason := range slices.Sorted(maps.Keys(reasons)) {
		t.Detail("  %d aborted: %s", reasons[reason], reason)
	}

	t.Detail("bank1 tries to send 1000 from alice, who has far less: bank1 votes NO.")
	_, err = coord.Run(ctx, transfer("bank1", "bank2", "alice", "bob", 1000)...)
	var abort *txn.AbortError
	if !errors.As(err, &abort) {
		return fmt.Errorf("txn chapter: a 1000 transfer returned %v; want an abort", err)
	}
	t.Say("transfer of 1000: aborted, %v voted NO (%s)", abort.Participants, abort.Reason)
	if err := coord.Quiesce(ctx); err != nil { // bank2 releases bob's lock
		return err
	}

	t.Detail("Now the coordinator crashes right after making its COMMIT durable, before any")
	t.Detail("COMMIT leaves. Both banks voted YES: they are in doubt and keep their locks.")
	before2, _ := stores["bank2"].Get("bob")
	done := make(chan struct{})
	crashed := make(chan struct{})
	crashing.arm(func() { _ = net.Crash("coordinator"); close(crashed) })
	var runErr error
	go func() {
		defer close(done)
		_, runErr = coord.Run(ctx, transfer("bank1", "bank2", "carol", "bob", 1)...) // lost with the process
	}()
	select {
	case <-crashed:
	case <-done:
		return fmt.Errorf("txn chapter: the transfer ended without a COMMIT record: %v", runErr)
	}
	coord.Close()
	<-done
	locks := stores["bank1"].Locked() + stores["bank2"].Locked()
	t.Say("coordinator crashed after its decision: banks in doubt, holding %d locks", locks)
	if err := net.Restart("coordinator"); err != nil {
		return err
	}
	if coord, err = txn.NewCoordinator(ctr, mem, cfg); err != nil {
		return err
	}
	if err := coord.Quiesce(ctx); err != nil {
		return err
	}
	after2, _ := stores["bank2"].Get("bob")
	t.Say("a new coordinator read the COMMIT from its log and finished it: bob@bank2 %d → %d, %d locks held, total %d",
		before2, after2, stores["bank1"].Locked()+stores["bank2"].Locked(), total())
	coord.Close()
	return replicatedTxn(ctx, t, net, cfg, stores, transfer, total)
}

// commitKiller wraps a coordinator replica's transport: the first COMMIT
// message for the armed transaction takes its sender off the network
// instead of leaving (the decision is in the replicated log by then).
type commitKiller struct {
	transport.Transport
	net   *memnet.Network
	mu    *sync.Mutex // guards *armed
	armed *uuid.UUID
	hit   chan struct{} // size 1
}

func (k *commitKiller) Send(ctx context.Context, to transport.NodeID, service string, payload []byte) error {
	if m, err := txn.UnmarshalMessage(payload); err == nil && service == txn.ServiceParticipant && m.Type == txn.MsgDecision && m.Outcome == txn.Committed {
		k.mu.Lock()
		fire := *k.armed == m.Txn
		if fire {
			*k.armed = uuid.UUID{}
		}
		k.mu.Unlock()
		if fire {
			_ = k.net.Crash(k.ID())
			k.hit <- struct{}{}
			return nil
		}
	}
	return k.Transport.Send(ctx, to, service, payload)
}

// replicatedTxn repeats the crash with a ReplicatedCoordinator: three
// replicas in a Raft group; the leader dies after the COMMIT is in the
// replicated log and before any participant hears of it, and the next
// leader finishes the transfer without waiting for it.
func replicatedTxn(ctx context.Context, t *tour, net *memnet.Network, cfg txn.Config, stores map[transport.NodeID]*txn.Store,
	transfer func(from, to transport.NodeID, fromAcct, toAcct string, amount int64) []txn.Work, total func() int64) error {
	t.Detail("The same crash with a replicated coordinator: three replicas keep each COMMIT")
	t.Detail("(and later its END) in a Raft log, one log round per transaction, no BEGIN; the")
	t.Detail("leader drives the transaction; when it dies, the next leader finds the COMMIT")
	t.Detail("in the replicated table and sends it again.")
	replicas := []transport.NodeID{"r1", "r2", "r3"}
	coords := map[transport.NodeID]*txn.ReplicatedCoordinator{}
	defer func() {
		for _, c := range coords {
			c.Close()
		}
	}()
	var mu sync.Mutex
	var armed uuid.UUID
	hit := make(chan struct{}, 1)
	for i, id := range replicas {
		tr, err := net.Join(id)
		if err != nil {
			return err
		}
		rc := consensus.DefaultConfig()
		rc.ID, rc.Peers, rc.Service, rc.Seed = id, replicas, "txn/raft", uint64(t.seed)*10+uint64(i)+1
		c, err := txn.NewReplicatedCoordinator(&commitKiller{Transport: tr, net: net, mu: &mu, armed: &armed, hit: hit}, rc, cfg)
		if err != nil {
			return err
		}
		coords[id] = c
	}
	run := func(id uuid.UUID, work []txn.Work) error {
		for {
			var leader *txn.ReplicatedCoordinator
			for leader == nil {
				for _, rid := range replicas {
					if !net.Crashed(rid) && coords[rid].Stats().Leading {
						leader = coords[rid]
					}
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(5 * time.Millisecond):
				}
			}
			_, err := leader.RunID(ctx, id, work...)
			if !errors.Is(err, txn.ErrNotLeader) {
				return err
			}
		}
	}
	before, _ := stores["bank2"].Get("bob")
	id := uuid.New()
	mu.Lock()
	armed = id
	mu.Unlock()
	if err := run(id, transfer("bank1", "bank2", "carol", "bob", 1)); err != nil {
		return fmt.Errorf("txn chapter: replicated transfer: %w", err)
	}
	<-hit
	t.Say("replicated coordinator: the leader crashed right after the COMMIT reached the replicated log")
	for {
		if stores["bank1"].Locked()+stores["bank2"].Locked() == 0 {
			if v, _ := stores["bank2"].Get("bob"); v == before+1 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("txn chapter: banks still in doubt: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	after, _ := stores["bank2"].Get("bob")
	t.Say("the next leader finished it without the crashed one: bob@bank2 %d → %d, %d locks held, total %d",
		before, after, stores["bank1"].Locked()+stores["bank2"].Locked(), total())
	return nil
}
