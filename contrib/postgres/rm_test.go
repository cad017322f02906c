package dkpostgres_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/distkit/distkit/txn"
	"github.com/distkit/distkit/txn/rmtest"

	dkpostgres "github.com/distkit/distkit/contrib/postgres"
)

func newRM(tb testing.TB, pool *pgxpool.Pool, table, gidPrefix string) *dkpostgres.ResourceManager {
	tb.Helper()
	cfg := dkpostgres.DefaultRMConfig("test")
	cfg.Table, cfg.GIDPrefix = table, gidPrefix
	rm, err := dkpostgres.NewResourceManager(pool, cfg)
	if err != nil {
		tb.Fatalf("NewResourceManager: %v", err)
	}
	if err := rm.CreateTable(context.Background()); err != nil {
		tb.Fatalf("CreateTable: %v", err)
	}
	return rm
}

func get(t testing.TB, rm *dkpostgres.ResourceManager, key string) (int64, bool) {
	t.Helper()
	v, ok, err := rm.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return v, ok
}

// TestResourceManagerContract runs the txn.ResourceManager contract
// against PREPARE TRANSACTION / COMMIT PREPARED. A restart is a new pool
// (new connections, as a restarted process has) over the same database.
func TestResourceManagerContract(t *testing.T) {
	table := unique("accounts")
	rmtest.Run(t, rmtest.Harness{Open: func(t *testing.T) rmtest.Instance {
		prefix := unique("rmtest") + "-"
		cur := newRM(t, newPool(t, "DISTKIT_POSTGRES_URL"), table, prefix)
		if err := cur.Recover(txn.Recovery{}); err != nil {
			t.Fatalf("Recover: %v", err)
		}
		return rmtest.Instance{
			RM:  cur,
			Get: func(t *testing.T, key string) (int64, bool) { return get(t, cur, key) },
			Restart: func(t *testing.T) txn.ResourceManager {
				cur = newRM(t, newPool(t, "DISTKIT_POSTGRES_URL"), table, prefix)
				return cur
			},
		}
	}})
}

func encode(t testing.TB, ops ...txn.Op) []byte {
	t.Helper()
	b, err := txn.EncodeOps(ops...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestServerCrashBetweenPrepareAndCommit: PostgreSQL crashes (immediate
// stop) after PREPARE TRANSACTION; the prepared transaction survives the
// restart with its locks, and COMMIT PREPARED, retried by Commit while the
// server comes back, applies it exactly once.
func TestServerCrashBetweenPrepareAndCommit(t *testing.T) {
	ctx := context.Background()
	env(t, "DISTKIT_POSTGRES_RESTART")
	pool := newPool(t, "DISTKIT_POSTGRES_URL")
	rm := newRM(t, pool, unique("accounts"), unique("crash")+"-")
	load := uuid.New()
	in, err := rm.Prepare(ctx, load, encode(t, txn.Op{Kind: txn.OpPut, Key: "a", Amount: 100}))
	if err != nil {
		t.Fatal(err)
	}
	if err := rm.Commit(load, in); err != nil {
		t.Fatal(err)
	}
	id := uuid.New()
	intent, err := rm.Prepare(ctx, id, encode(t, txn.Op{Kind: txn.OpAdd, Key: "a", Amount: -40}))
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	restartServer(t)
	// The pool's connections died with the server; a query on one of them
	// fails once (a NO vote, for a Prepare). Start from fresh connections,
	// as the pool would after its health check.
	pool.Reset()
	// Still prepared, still locked, not applied.
	if _, err := rm.Prepare(ctx, uuid.New(), encode(t, txn.Op{Kind: txn.OpAdd, Key: "a", Amount: -1})); !errors.Is(err, txn.ErrLocked) {
		t.Fatalf("Prepare on the key of the surviving prepared transaction = %v; want ErrLocked", err)
	}
	if v, _ := get(t, rm, "a"); v != 100 {
		t.Fatalf("a = %d before COMMIT PREPARED; want 100", v)
	}
	if err := rm.Commit(id, intent); err != nil {
		t.Fatalf("Commit after the server restarted = %v", err)
	}
	if err := rm.Commit(id, intent); err != nil { // a repeated commit is harmless
		t.Fatalf("repeated Commit = %v", err)
	}
	if v, _ := get(t, rm, "a"); v != 60 {
		t.Fatalf("a = %d after COMMIT PREPARED; want 60", v)
	}
}

// TestParticipantCrashRecovery: the participant process dies with one
// transaction in doubt, one whose commit was logged but not applied, and
// one prepared in PostgreSQL whose YES vote never reached its log; the
// server crashes too. Recover commits the second, keeps the first prepared
// for the coordinator's answer, and rolls back the orphan.
func TestParticipantCrashRecovery(t *testing.T) {
	ctx := context.Background()
	env(t, "DISTKIT_POSTGRES_RESTART")
	table, prefix := unique("accounts"), unique("part")+"-"
	rm := newRM(t, newPool(t, "DISTKIT_POSTGRES_URL"), table, prefix)
	prep := func(key string, amount int64) (uuid.UUID, []byte) {
		t.Helper()
		id := uuid.New()
		intent, err := rm.Prepare(ctx, id, encode(t, txn.Op{Kind: txn.OpAdd, Key: key, Amount: amount}))
		if err != nil {
			t.Fatalf("Prepare(%s): %v", key, err)
		}
		return id, intent
	}
	doubtID, doubt := prep("doubt", 5)
	doneID, done := prep("done", 7)
	_, _ = prep("orphan", 9)
	restartServer(t)

	rm2 := newRM(t, newPool(t, "DISTKIT_POSTGRES_URL"), table, prefix)
	err := rm2.Recover(txn.Recovery{
		Committed: []txn.Intent{{Txn: doneID, Data: done}},
		InDoubt:   []txn.Intent{{Txn: doubtID, Data: doubt}},
	})
	if err != nil {
		t.Fatalf("Recover: %v", err)
	}
	if v, _ := get(t, rm2, "done"); v != 7 {
		t.Fatalf("done = %d; want 7 (committed by recovery)", v)
	}
	if _, ok := get(t, rm2, "orphan"); ok {
		t.Fatalf("orphan was applied; want it rolled back")
	}
	if _, err := rm2.Prepare(ctx, uuid.New(), encode(t, txn.Op{Kind: txn.OpPut, Key: "orphan", Amount: 1})); err != nil {
		t.Fatalf("orphan's key is still locked: %v", err)
	}
	if _, err := rm2.Prepare(ctx, uuid.New(), encode(t, txn.Op{Kind: txn.OpPut, Key: "doubt", Amount: 1})); !errors.Is(err, txn.ErrLocked) {
		t.Fatalf("Prepare on the in-doubt key = %v; want ErrLocked", err)
	}
	if err := rm2.Commit(doubtID, doubt); err != nil { // the coordinator said commit
		t.Fatal(err)
	}
	if v, _ := get(t, rm2, "doubt"); v != 5 {
		t.Fatalf("doubt = %d; want 5", v)
	}
	// A log that claims an in-doubt transaction PostgreSQL does not have
	// is refused, not papered over.
	rm3 := newRM(t, newPool(t, "DISTKIT_POSTGRES_URL"), table, prefix)
	if err := rm3.Recover(txn.Recovery{InDoubt: []txn.Intent{{Txn: doubtID, Data: doubt}}}); !errors.Is(err, dkpostgres.ErrLostPrepared) {
		t.Fatalf("Recover with a lost prepared transaction = %v; want ErrLostPrepared", err)
	}
}

func TestResourceManagerRefusesBadInput(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *dkpostgres.RMConfig)
	}{
		{"bad table", func(c *dkpostgres.RMConfig) { c.Table = "accounts; DROP TABLE x" }},
		{"empty prefix", func(c *dkpostgres.RMConfig) { c.GIDPrefix = "" }},
		{"quote in prefix", func(c *dkpostgres.RMConfig) { c.GIDPrefix = "a'b" }},
		{"no lock timeout", func(c *dkpostgres.RMConfig) { c.LockTimeout = 0 }},
	}
	for _, tt := range tests {
		cfg := dkpostgres.DefaultRMConfig("p")
		tt.edit(&cfg)
		if err := cfg.Validate(); !errors.Is(err, dkpostgres.ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v; want ErrInvalidConfig", tt.name, err)
		}
	}
	if _, err := dkpostgres.NewResourceManager(nil, dkpostgres.DefaultRMConfig("p")); !errors.Is(err, dkpostgres.ErrInvalidConfig) {
		t.Errorf("NewResourceManager(nil) = %v; want ErrInvalidConfig", err)
	}
	var zero *dkpostgres.ResourceManager
	if err := zero.Commit(uuid.New(), []byte{1, 'x'}); !errors.Is(err, dkpostgres.ErrInvalidConfig) {
		t.Errorf("nil ResourceManager Commit = %v; want ErrInvalidConfig", err)
	}
	pool := newPool(t, "DISTKIT_POSTGRES_URL")
	rm := newRM(t, pool, unique("accounts"), unique("bad")+"-")
	for _, intent := range [][]byte{{9, 'x'}, {1}, {1, '\'', ';'}} {
		if err := rm.Commit(uuid.New(), intent); !errors.Is(err, dkpostgres.ErrMalformedIntent) {
			t.Errorf("Commit(%q) = %v; want ErrMalformedIntent", intent, err)
		}
	}
}
