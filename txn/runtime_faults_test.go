package txn_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

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

// signalStore is a Store that reports its Prepare and Abort calls.
type signalStore struct {
	*txn.Store
	prepared chan struct{} // size 1: the test waits for the first only
	aborted  chan struct{} // size 1: likewise
}

func (s *signalStore) Prepare(ctx context.Context, id uuid.UUID, ops []byte) ([]byte, error) {
	intent, err := s.Store.Prepare(ctx, id, ops)
	select {
	case s.prepared <- struct{}{}:
	default:
	}
	return intent, err
}

func (s *signalStore) Abort(id uuid.UUID, intent []byte) error {
	err := s.Store.Abort(id, intent)
	select {
	case s.aborted <- struct{}{}:
	default:
	}
	return err
}

// TestRuntimeRestartAbortsUndecided: a coordinator closed while it waits
// for a vote leaves a BEGIN record; the next coordinator on the same log
// sends ABORT at once, so the participant that voted YES releases its
// locks without asking (its own queries are an hour apart here).
func TestRuntimeRestartAbortsUndecided(t *testing.T) {
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	trs := map[transport.NodeID]*memnet.Transport{}
	for _, id := range []transport.NodeID{"c", "bank1", "ghost"} {
		if trs[id], err = net.Join(id); err != nil {
			t.Fatal(err)
		}
	}
	pcfg := runtimeConfig()
	pcfg.RetryInterval = time.Hour
	pcfg.VoteTimeout = time.Hour
	pcfg.FinishedTTL = 2 * time.Hour
	st := &signalStore{Store: txn.NewStore(), prepared: make(chan struct{}, 1), aborted: make(chan struct{}, 1)}
	p, err := txn.NewParticipant(trs["bank1"], txn.NewMemoryLog(), st, pcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	st.Set("a", 100) // after NewParticipant, whose recovery resets the store
	clog := txn.NewMemoryLog()
	ccfg := runtimeConfig()
	ccfg.VoteTimeout = time.Hour // "ghost" never votes: only the restart ends it
	ccfg.FinishedTTL = 2 * time.Hour
	c1, err := txn.NewCoordinator(trs["c"], clog, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	debit, err := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: "a", Amount: -10})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c1.Run(context.Background(), txn.Work{Participant: "bank1", Ops: debit}, txn.Work{Participant: "ghost", Ops: debit})
		done <- err
	}()
	waitFor(t, st.prepared, "bank1 to prepare")
	if err := c1.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if err := <-done; !errors.Is(err, txn.ErrClosed) {
		t.Fatalf("Run after Close = %v; want ErrClosed", err)
	}
	recs, err := clog.Load()
	if err != nil || len(recs) != 1 || recs[0].Type != txn.RecBegin {
		t.Fatalf("coordinator log after Close = %v, %v; want one BEGIN record", recs, err)
	}

	c2, err := txn.NewCoordinator(trs["c"], clog, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	waitFor(t, st.aborted, "bank1 to receive the recovered coordinator's ABORT")
	if got := st.Locked(); got != 0 {
		t.Errorf("bank1 holds %d locks after the ABORT; want 0", got)
	}
	wantBalance(t, st.Store, "a", 100)
}

// waitFor waits for a signal on ch; the timeout only turns a hang into a
// failure.
func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// slowStore is a Store whose Prepare waits for its context to end (a
// resource it needs never becomes available).
type slowStore struct{ *txn.Store }

func (s slowStore) Prepare(ctx context.Context, _ uuid.UUID, _ []byte) ([]byte, error) {
	<-ctx.Done()
	return nil, fmt.Errorf("resource not available: %w", ctx.Err())
}

// TestRuntimePrepareTimesOut: a participant whose resource manager cannot
// prepare within its VoteTimeout aborts on its own and votes NO, before
// the coordinator (here far more patient) would time the vote out.
func TestRuntimePrepareTimesOut(t *testing.T) {
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	trc, err := net.Join("c")
	if err != nil {
		t.Fatal(err)
	}
	trp, err := net.Join("bank1")
	if err != nil {
		t.Fatal(err)
	}
	pcfg := runtimeConfig()
	pcfg.VoteTimeout = 50 * time.Millisecond
	p, err := txn.NewParticipant(trp, txn.NewMemoryLog(), slowStore{txn.NewStore()}, pcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ccfg := runtimeConfig()
	ccfg.VoteTimeout = time.Hour
	ccfg.FinishedTTL = 2 * time.Hour
	c, err := txn.NewCoordinator(trc, txn.NewMemoryLog(), ccfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ops, err := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: "a", Amount: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Run(context.Background(), txn.Work{Participant: "bank1", Ops: ops})
	var ae *txn.AbortError
	if !errors.As(err, &ae) || !errors.Is(err, txn.ErrVotedNo) || !strings.Contains(ae.Reason, "deadline exceeded") {
		t.Fatalf("Run() = %v; want a NO vote from bank1's expired preparation", err)
	}
}
