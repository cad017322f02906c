package dkpostgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/distkit/distkit/idempotency"
	"github.com/distkit/distkit/idempotency/storetest"

	dkpostgres "github.com/distkit/distkit/contrib/postgres"
)

func newStore(tb testing.TB, db dkpostgres.Querier, table string) *dkpostgres.Store {
	tb.Helper()
	cfg := dkpostgres.DefaultStoreConfig()
	cfg.Table = table
	s, err := dkpostgres.NewStore(db, cfg)
	if err != nil {
		tb.Fatalf("NewStore: %v", err)
	}
	if err := s.CreateTable(context.Background()); err != nil {
		tb.Fatalf("CreateTable: %v", err)
	}
	return s
}

// TestStoreContract runs the idempotency.Store contract against a table.
func TestStoreContract(t *testing.T) {
	pool := newPool(t, "DISTKIT_POSTGRES_URL")
	table := unique("idem")
	s := newStore(t, pool, table)
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T) idempotency.Store { return s },
		Reopen: func(t *testing.T, _ idempotency.Store) idempotency.Store {
			return newStore(t, newPool(t, "DISTKIT_POSTGRES_URL"), table)
		},
		Concurrency: 32,
	})
}

// transfer is the business write of the in-transaction tests: a row in a
// ledger table, committed with the idempotency record.
func transfer(ctx context.Context, t testing.TB, s *dkpostgres.Store, tx pgx.Tx, ledger, key string) error {
	if _, err := tx.Exec(ctx, "INSERT INTO "+ledger+" (key) VALUES ($1)", key); err != nil {
		return err
	}
	return s.CompleteInTx(ctx, tx, []byte("receipt-"+key))
}

func ledgerRows(t testing.TB, db dkpostgres.Querier, ledger, key string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), "SELECT count(*) FROM "+ledger+" WHERE key = $1", key).Scan(&n); err != nil {
		t.Fatalf("count ledger rows: %v", err)
	}
	return n
}

func newLedger(t testing.TB, db dkpostgres.Querier) string {
	t.Helper()
	ledger := unique("ledger")
	if _, err := db.Exec(context.Background(), "CREATE TABLE "+ledger+" (id serial PRIMARY KEY, key text NOT NULL)"); err != nil {
		t.Fatalf("create ledger: %v", err)
	}
	return ledger
}

// TestCompleteInTxCommitsWithTheEffect: the effect and the record commit
// together; a crash (the process dies) after the commit but before the
// Runner's Complete leaves a completed record, so a retry does not run the
// effect again; a rollback leaves neither.
func TestCompleteInTxCommitsWithTheEffect(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t, "DISTKIT_POSTGRES_URL")
	s := newStore(t, pool, unique("idem"))
	ledger := newLedger(t, pool)
	runner, err := idempotency.NewRunner[string](s, idempotency.StringCodec{}, idempotency.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer runner.Close()

	t.Run("commit", func(t *testing.T) {
		v, err := runner.Do(ctx, "pay-1", "fp", func(ctx context.Context) (string, error) {
			return "receipt-pay-1", pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return transfer(ctx, t, s, tx, ledger, "pay-1") })
		})
		if err != nil || v != "receipt-pay-1" {
			t.Fatalf("Do = %q, %v", v, err)
		}
		if _, outcome, err := runner.DoOutcome(ctx, "pay-1", "fp", func(context.Context) (string, error) { return "", errors.New("ran again") }); outcome != idempotency.Replayed || err != nil {
			t.Fatalf("retry = %v, %v; want Replayed", outcome, err)
		}
		if n := ledgerRows(t, pool, ledger, "pay-1"); n != 1 {
			t.Fatalf("ledger has %d rows for pay-1; want 1", n)
		}
	})

	t.Run("rollback", func(t *testing.T) {
		boom := errors.New("card declined")
		_, err := runner.Do(ctx, "pay-2", "fp", func(ctx context.Context) (string, error) {
			return "", pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				if err := transfer(ctx, t, s, tx, ledger, "pay-2"); err != nil {
					return err
				}
				return boom // rolls back the effect and the completion
			})
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Do = %v; want %v", err, boom)
		}
		if n := ledgerRows(t, pool, ledger, "pay-2"); n != 0 {
			t.Fatalf("ledger has %d rows for pay-2 after rollback; want 0", n)
		}
		if _, ok, _ := s.Get(ctx, "pay-2"); ok {
			t.Fatalf("record of pay-2 survived the rollback and the Runner's abort")
		}
	})

	t.Run("process dies after commit", func(t *testing.T) {
		// A store whose Complete never arrives: the process died right
		// after the transaction committed.
		dying := &dropComplete{Store: s}
		r, err := idempotency.NewRunner[string](dying, idempotency.StringCodec{}, idempotency.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		_, _ = r.Do(ctx, "pay-3", "fp", func(ctx context.Context) (string, error) {
			return "receipt-pay-3", pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return transfer(ctx, t, s, tx, ledger, "pay-3") })
		})
		// The restarted process retries: the effect is recorded, not redone.
		v, outcome, err := runner.DoOutcome(ctx, "pay-3", "fp", func(context.Context) (string, error) {
			t.Error("the effect ran a second time")
			return "", nil
		})
		if err != nil || outcome != idempotency.Replayed || v != "receipt-pay-3" {
			t.Fatalf("retry after the crash = %q, %v, %v; want the in-transaction receipt, Replayed", v, outcome, err)
		}
		if n := ledgerRows(t, pool, ledger, "pay-3"); n != 1 {
			t.Fatalf("ledger has %d rows for pay-3; want 1", n)
		}
	})

	t.Run("taken over", func(t *testing.T) {
		// The record expired and another process took the key over before
		// this one's transaction ran: CompleteInTx refuses and the
		// transaction rolls back.
		now := time.Now()
		p := idempotency.Record{Key: "pay-4", Status: idempotency.StatusInProgress, Token: 1, Fingerprint: "fp", Created: now.Add(-2 * time.Minute), Expires: now.Add(-time.Minute)}
		if _, created, err := s.Begin(ctx, p); !created || err != nil {
			t.Fatalf("Begin = %v, %v", created, err)
		}
		p.Token, p.Created, p.Expires = 2, now, now.Add(time.Minute)
		if _, created, err := s.Begin(ctx, p); !created || err != nil {
			t.Fatalf("takeover Begin = %v, %v", created, err)
		}
		staleCtx := claimContext(t, "pay-4", 1)
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return transfer(staleCtx, t, s, tx, ledger, "pay-4") })
		if !errors.Is(err, idempotency.ErrNotOwner) {
			t.Fatalf("CompleteInTx by the stale owner = %v; want ErrNotOwner", err)
		}
		if n := ledgerRows(t, pool, ledger, "pay-4"); n != 0 {
			t.Fatalf("ledger has %d rows for pay-4; want 0 (rolled back)", n)
		}
	})

	if err := s.CompleteInTx(ctx, pool, nil); !errors.Is(err, dkpostgres.ErrNoClaim) {
		t.Fatalf("CompleteInTx outside a Runner = %v; want ErrNoClaim", err)
	}
}

// claimContext returns a context carrying the claim (key, token), as a
// Runner's fn receives it, by running a Runner over a store that hands out
// that token.
func claimContext(t *testing.T, key string, token uint64) context.Context {
	t.Helper()
	var got context.Context
	mem, _ := idempotency.NewMemoryStore(idempotency.DefaultMemoryConfig())
	r, _ := idempotency.NewRunner[string](fixedToken{Store: mem, token: token}, idempotency.StringCodec{}, idempotency.DefaultConfig())
	defer r.Close()
	_, _ = r.Do(context.Background(), key, "fp", func(ctx context.Context) (string, error) {
		got = context.WithoutCancel(ctx)
		return "", nil
	})
	return got
}

type fixedToken struct {
	idempotency.Store
	token uint64
}

func (f fixedToken) Begin(ctx context.Context, p idempotency.Record) (idempotency.Record, bool, error) {
	p.Token = f.token
	return f.Store.Begin(ctx, p)
}

// dropComplete loses the Runner's Complete, as a crash right after fn
// returned would.
type dropComplete struct{ *dkpostgres.Store }

func (d *dropComplete) Complete(context.Context, idempotency.Record) error {
	return errors.New("process died")
}

// BenchmarkPostgresStoreDo: 64 callers, new keys. "plain" runs an empty fn
// (Get, Begin, Complete); "in-tx" writes a ledger row and completes the
// record in the same transaction, then the Runner's Complete.
func BenchmarkPostgresStoreDo(b *testing.B) {
	ctx := context.Background()
	pool := newPool(b, "DISTKIT_POSTGRES_URL")
	s := newStore(b, pool, unique("idem"))
	ledger := newLedger(b, pool)
	runner, err := idempotency.NewRunner[string](s, idempotency.StringCodec{}, idempotency.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer runner.Close()
	fns := []struct {
		name string
		fn   func(key string) func(context.Context) (string, error)
	}{
		{"plain", func(key string) func(context.Context) (string, error) {
			return func(context.Context) (string, error) { return "ok", nil }
		}},
		{"in-tx", func(key string) func(context.Context) (string, error) {
			return func(ctx context.Context) (string, error) {
				return "ok", pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return transfer(ctx, b, s, tx, ledger, key) })
			}
		}},
	}
	var n atomic.Int64
	for _, f := range fns {
		b.Run(f.name+"/callers=64", func(b *testing.B) {
			b.SetParallelism(max(1, 64/testingGOMAXPROCS()))
			b.ReportAllocs()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					key := fmt.Sprintf("bench-%d", n.Add(1))
					if _, err := runner.Do(ctx, key, "fp", f.fn(key)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
		})
	}
}
