package txn_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
	"github.com/distkit/distkit/txn"
)

// TestRuntimeLossyNetwork runs concurrent transfers between three banks
// over a network that drops, duplicates and reorders messages, then checks
// the bank invariants once the coordinator is quiet.
func TestRuntimeLossyNetwork(t *testing.T) {
	ncfg := memnet.DefaultConfig()
	ncfg.Faults = memnet.Faults{Drop: 0.1, Duplicate: 0.1, MinDelay: 0, MaxDelay: 2 * time.Millisecond, Reorder: 0.1}
	net, err := memnet.New(ncfg)
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	cfg := runtimeConfig()
	banks := []transport.NodeID{"bank1", "bank2", "bank3"}
	accounts := []string{"a", "b", "c", "d"}
	stores := map[transport.NodeID]*txn.Store{}
	for _, b := range banks {
		tr, err := net.Join(b)
		if err != nil {
			t.Fatal(err)
		}
		stores[b] = txn.NewStore()
		p, err := txn.NewParticipant(tr, txn.NewMemoryLog(), stores[b], cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		for _, a := range accounts {
			stores[b].Set(a, 100)
		}
	}
	ctr, _ := net.Join("c")
	coord, err := txn.NewCoordinator(ctr, txn.NewMemoryLog(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer coord.Close()

	type transfer struct {
		from, to         transport.NodeID
		fromAcct, toAcct string
		amount           int64
	}
	var mu sync.Mutex // guards done
	var done []transfer
	var wg sync.WaitGroup
	for w := range 4 {
		rng := rand.New(rand.NewPCG(uint64(w), 2))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				tr := transfer{from: banks[rng.IntN(3)], to: banks[rng.IntN(3)], fromAcct: accounts[rng.IntN(4)], toAcct: accounts[rng.IntN(4)], amount: 1 + rng.Int64N(50)}
				if tr.from == tr.to {
					continue
				}
				debit, _ := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: tr.fromAcct, Amount: -tr.amount})
				credit, _ := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: tr.toAcct, Amount: tr.amount})
				_, err := coord.Run(context.Background(), txn.Work{Participant: tr.from, Ops: debit}, txn.Work{Participant: tr.to, Ops: credit})
				if err != nil && !errors.Is(err, txn.ErrAborted) {
					t.Errorf("Run() = %v", err)
					return
				}
				if err == nil {
					mu.Lock()
					done = append(done, tr)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	quiesce(t, coord)
	want := map[string]int64{}
	for _, b := range banks {
		for _, a := range accounts {
			want[fmt.Sprint(b, "/", a)] = 100
		}
	}
	for _, tr := range done {
		want[fmt.Sprint(tr.from, "/", tr.fromAcct)] -= tr.amount
		want[fmt.Sprint(tr.to, "/", tr.toAcct)] += tr.amount
	}
	for _, b := range banks {
		for _, a := range accounts {
			if got, _ := stores[b].Get(a); got != want[fmt.Sprint(b, "/", a)] {
				t.Errorf("%s/%s = %d; want %d", b, a, got, want[fmt.Sprint(b, "/", a)])
			}
		}
	}
	if len(done) == 0 {
		t.Fatal("no transfer committed")
	}
}

// TestRuntimeParticipantRecoversInDoubt: a bank that voted YES restarts
// from its FileLog while the coordinator is down, comes back in doubt with
// its locks, and applies the commit once the coordinator recovers.
func TestRuntimeParticipantRecoversInDoubt(t *testing.T) {
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	cfg := runtimeConfig()
	ct, _ := net.Join("c")
	pt, _ := net.Join("p")
	dir := t.TempDir()
	plog, err := txn.OpenFileLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	store := txn.NewStore()
	p, err := txn.NewParticipant(pt, plog, store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmem := txn.NewMemoryLog()
	crashing := &crashAfterCommitLog{Log: cmem, crash: func() { net.Crash("c") }}
	coord, err := txn.NewCoordinator(ct, crashing, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ops, _ := txn.EncodeOps(txn.Op{Kind: txn.OpPut, Key: "k", Amount: 42})
	if _, err := coord.Run(context.Background(), txn.Work{Participant: "p", Ops: ops}); err != nil {
		t.Fatalf("Run() = %v", err)
	}
	coord.Close()
	// The participant restarts while the coordinator is down.
	p.Close()
	plog.Close()
	if plog, err = txn.OpenFileLog(dir); err != nil {
		t.Fatal(err)
	}
	defer plog.Close()
	store = txn.NewStore()
	if p, err = txn.NewParticipant(pt, plog, store, cfg); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if got := p.Stats().InDoubt; got != 1 {
		t.Fatalf("in doubt after restart = %d; want 1", got)
	}
	if got := store.Locked(); got != 1 {
		t.Fatalf("locks after restart = %d; want 1", got)
	}
	net.Restart("c")
	if coord, err = txn.NewCoordinator(ct, cmem, cfg); err != nil {
		t.Fatal(err)
	}
	defer coord.Close()
	quiesce(t, coord)
	wantBalance(t, store, "k", 42)
	if got := store.Locked(); got != 0 {
		t.Errorf("locks after the commit = %d; want 0", got)
	}
}
