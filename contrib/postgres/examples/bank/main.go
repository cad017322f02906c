// Command bank is examples/bank's two-phase-commit story on real
// PostgreSQL: two databases are the two banks, each a distkit participant
// whose resource manager is dkpostgres.ResourceManager, so every YES vote
// is a real PREPARE TRANSACTION and every commit a COMMIT PREPARED.
//
//	go run ./examples/bank -a 'postgres://postgres@127.0.0.1:5432/bank_a' -b 'postgres://postgres@127.0.0.1:5432/bank_b'
//
// (run from contrib/postgres; the databases need max_prepared_transactions
// > 0; -a and -b default to $DISTKIT_POSTGRES_URL_A and _B). It lives in
// the contrib/postgres module, not next to examples/bank, so that the core
// module does not depend on pgx.
//
// Three scenes:
//
//  1. Success: both banks PREPARE, the coordinator logs COMMIT, both
//     COMMIT PREPARED.
//  2. Insufficient funds: bank_a's UPDATE would go below zero, it votes
//     NO, nothing moves.
//  3. The coordinator crashes right after logging COMMIT. Both banks hold a
//     prepared transaction (visible in pg_prepared_xacts, its row locks
//     held by PostgreSQL) until a new coordinator recovers the decision
//     from its log and the banks commit.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
	"github.com/distkit/distkit/txn"

	dkpostgres "github.com/distkit/distkit/contrib/postgres"
)

func main() {
	a := flag.String("a", os.Getenv("DISTKIT_POSTGRES_URL_A"), "connection URL of bank_a's database")
	b := flag.String("b", os.Getenv("DISTKIT_POSTGRES_URL_B"), "connection URL of bank_b's database")
	flag.Parse()
	if *a == "" || *b == "" {
		fmt.Fprintln(os.Stderr, "bank: give -a and -b (or set DISTKIT_POSTGRES_URL_A and _B); see `bash .ci/contrib/postgres.sh` for starting a PostgreSQL")
		os.Exit(2)
	}
	if err := run(context.Background(), os.Stdout, *a, *b); err != nil {
		fmt.Fprintln(os.Stderr, "bank:", err)
		os.Exit(1)
	}
}

// crashAfterCommit is a txn.Log that takes the coordinator off the network
// right after its COMMIT record is durable.
type crashAfterCommit struct {
	txn.Log
	mu      sync.Mutex // guards armed
	armed   bool
	crash   func()
	crashed chan struct{}
}

func (l *crashAfterCommit) Append(recs []txn.Record) error {
	if err := l.Log.Append(recs); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range recs {
		if r.Type == txn.RecCommit && l.armed {
			l.armed = false
			l.crash()
			close(l.crashed)
		}
	}
	return nil
}

type bank struct {
	id   transport.NodeID
	pool *pgxpool.Pool
	rm   *dkpostgres.ResourceManager
}

func (b *bank) prepared(ctx context.Context) int {
	var n int
	_ = b.pool.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database() AND starts_with(gid, $1)",
		"distkit-"+string(b.id)+"-").Scan(&n)
	return n
}

func run(ctx context.Context, w io.Writer, urlA, urlB string) error {
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		return err
	}
	defer net.Close()
	cfg := txn.DefaultConfig()
	cfg.RetryInterval = 60 * time.Millisecond
	cfg.TickInterval = 10 * time.Millisecond

	// A fresh account key per run, so reruns on the same databases start clean.
	run := uuid.NewString()[:8]
	keyA, keyB := "A-"+run, "B-"+run
	banks := []*bank{{id: "bank_a"}, {id: "bank_b"}}
	for i, url := range []string{urlA, urlB} {
		b := banks[i]
		if b.pool, err = pgxpool.New(ctx, url); err != nil {
			return err
		}
		defer b.pool.Close()
		if b.rm, err = dkpostgres.NewResourceManager(b.pool, dkpostgres.DefaultRMConfig(string(b.id))); err != nil {
			return err
		}
		if err := b.rm.CreateTable(ctx); err != nil {
			return err
		}
		tr, err := net.Join(b.id)
		if err != nil {
			return err
		}
		p, err := txn.NewParticipant(tr, txn.NewMemoryLog(), b.rm, cfg)
		if err != nil {
			return err
		}
		defer p.Close()
	}
	ctr, err := net.Join("coordinator")
	if err != nil {
		return err
	}
	clog := &crashAfterCommit{Log: txn.NewMemoryLog(), crash: func() { net.Crash("coordinator") }, crashed: make(chan struct{})}
	coord, err := txn.NewCoordinator(ctr, clog, cfg)
	if err != nil {
		return err
	}
	defer func() { coord.Close() }()

	balances := func() {
		a, _, _ := banks[0].rm.Get(ctx, keyA)
		b, _, _ := banks[1].rm.Get(ctx, keyB)
		fmt.Fprintf(w, "  balances: A@bank_a = %d, B@bank_b = %d\n\n", a, b)
	}
	ops := func(o txn.Op) []byte { b, _ := txn.EncodeOps(o); return b }
	deposit := func(amount int64) error {
		_, err := coord.Run(ctx, txn.Work{Participant: "bank_a", Ops: ops(txn.Op{Kind: txn.OpAdd, Key: keyA, Amount: amount})},
			txn.Work{Participant: "bank_b", Ops: ops(txn.Op{Kind: txn.OpAdd, Key: keyB, Amount: 0})})
		return err
	}
	work := []txn.Work{
		{Participant: "bank_a", Ops: ops(txn.Op{Kind: txn.OpAdd, Key: keyA, Amount: -100})},
		{Participant: "bank_b", Ops: ops(txn.Op{Kind: txn.OpAdd, Key: keyB, Amount: 100})},
	}
	if err := deposit(100); err != nil {
		return fmt.Errorf("opening deposit: %w", err)
	}
	if err := coord.Quiesce(ctx); err != nil {
		return err
	}

	fmt.Fprintf(w, "Scene 1: transfer 100 from A@bank_a to B@bank_b (PREPARE TRANSACTION in both databases)\n")
	balances()
	if _, err := coord.Run(ctx, work...); err != nil {
		return fmt.Errorf("scene 1: %w", err)
	}
	if err := coord.Quiesce(ctx); err != nil {
		return err
	}
	fmt.Fprintf(w, "  outcome: committed (COMMIT PREPARED in both)\n")
	balances()

	fmt.Fprintf(w, "Scene 2: transfer 100 again; A holds 0\n")
	_, err = coord.Run(ctx, work...)
	var abort *txn.AbortError
	if !errors.As(err, &abort) {
		return fmt.Errorf("scene 2: %v; want an abort", err)
	}
	if err := coord.Quiesce(ctx); err != nil {
		return err
	}
	fmt.Fprintf(w, "  outcome: aborted, %v voted NO: %s\n", abort.Participants, abort.Reason)
	balances()

	fmt.Fprintf(w, "Scene 3: A receives 100; transfer it; the coordinator crashes right after logging COMMIT\n")
	if err := deposit(100); err != nil {
		return fmt.Errorf("scene 3 deposit: %w", err)
	}
	if err := coord.Quiesce(ctx); err != nil {
		return err
	}
	clog.mu.Lock()
	clog.armed = true
	clog.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = coord.Run(ctx, work...) // its answer dies with the process
	}()
	<-clog.crashed
	coord.Close()
	<-done
	fmt.Fprintf(w, "  -- coordinator crashed; prepared transactions in pg_prepared_xacts: bank_a %d, bank_b %d --\n",
		banks[0].prepared(ctx), banks[1].prepared(ctx))
	fmt.Fprintf(w, "  -- coordinator restarts and reads its log --\n")
	if err := net.Restart("coordinator"); err != nil {
		return err
	}
	if coord, err = txn.NewCoordinator(ctr, clog.Log, cfg); err != nil {
		return err
	}
	if err := coord.Quiesce(ctx); err != nil {
		return err
	}
	fmt.Fprintf(w, "  outcome: committed by the recovered coordinator; prepared transactions left: bank_a %d, bank_b %d\n",
		banks[0].prepared(ctx), banks[1].prepared(ctx))
	balances()
	return nil
}
