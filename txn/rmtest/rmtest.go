// Package rmtest is the contract of a txn.ResourceManager that keeps
// accounts (the operations of txn.EncodeOps: OpAdd, OpPut), as a test suite
// a resource manager's own tests run against it. The built-in txn.Store
// passes it (txn's contract_test.go), and so does contrib/postgres's
// resource manager on PREPARE TRANSACTION, against a real PostgreSQL.
//
// Usage, in a resource manager's _test.go file:
//
//	func TestContract(t *testing.T) {
//		rmtest.Run(t, rmtest.Harness{Open: func(t *testing.T) rmtest.Instance { ... }})
//	}
//
// # What the suite checks
//
//   - Prepare votes YES and returns an intent without changing committed
//     state; Commit applies it, Abort drops it, and both release its locks.
//   - A key held by another prepared transaction makes Prepare vote NO
//     (an error) without waiting for it, and so does a debit below zero
//     (errors wrapping txn.ErrLocked and txn.ErrInsufficientFunds) and
//     malformed operations. A NO vote changes nothing and holds nothing.
//   - A repeated Prepare of the same transaction votes YES again.
//   - Recovery, as a Participant performs it after a crash from its log:
//     committed intents are applied (also those already applied before the
//     crash: recovery may repeat them), in-doubt intents keep their locks
//     until the coordinator's decision is applied by Commit or Abort, and a
//     Snapshot restores the committed state.
//   - Interleaved prepared transactions commit and abort independently,
//     and the sum of the balances is conserved across transfers.
package rmtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/distkit/distkit/txn"
)

// Instance is one resource manager under test.
type Instance struct {
	// RM is the resource manager.
	RM txn.ResourceManager
	// Get reads the committed value of key (ok false if it has none), from
	// outside any transaction.
	Get func(t *testing.T, key string) (value int64, ok bool)
	// Restart simulates a crash of the process around RM: it drops RM
	// without calling anything on it and returns a new resource manager
	// over the same durable state, before Recover. For a resource manager
	// whose only durable state is the Participant's log (txn.Store), that
	// is an empty one.
	Restart func(t *testing.T) txn.ResourceManager
}

// Harness describes the resource manager under test.
type Harness struct {
	// Open returns a resource manager for one subtest, already recovered
	// (a new Participant calls Recover first; Open does so if the resource
	// manager needs it). It may return the same state every time: the
	// suite's keys never collide.
	Open func(t *testing.T) Instance
}

// Run runs the contract suite against the resource manager h describes.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Open == nil {
		t.Fatal("rmtest: Harness.Open is nil")
	}
	run := fmt.Sprintf("rm%08x", rand.Uint32())
	tests := []struct {
		name string
		fn   func(t *testing.T, in Instance, k *keys)
	}{
		{"PrepareThenCommit", testPrepareCommit},
		{"PrepareThenAbort", testPrepareAbort},
		{"ConflictVotesNoWithoutWaiting", testConflict},
		{"InsufficientFundsVotesNo", testInsufficient},
		{"MalformedOpsVoteNo", testMalformed},
		{"RepeatedPrepare", testRepeatedPrepare},
		{"RecoverCommittedAndInDoubt", testRecover},
		{"RecoverFromSnapshot", testSnapshot},
		{"InterleavedTransfersConserveMoney", testInterleaved},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, h.Open(t), &keys{prefix: run + "-" + tt.name})
		})
	}
}

// keys makes key names unique to one run of one subtest, and keeps what
// the Participant's log would hold: the committed intents since the
// suite's last snapshot, which Recover receives after a restart.
type keys struct {
	prefix string
	log    []txn.Intent
}

func (k *keys) of(name string) string { return k.prefix + "-" + name }

func ops(t *testing.T, list ...txn.Op) []byte {
	t.Helper()
	b, err := txn.EncodeOps(list...)
	if err != nil {
		t.Fatalf("EncodeOps: %v", err)
	}
	return b
}

func add(key string, amount int64) txn.Op { return txn.Op{Kind: txn.OpAdd, Key: key, Amount: amount} }
func put(key string, amount int64) txn.Op { return txn.Op{Kind: txn.OpPut, Key: key, Amount: amount} }

// voteCtx bounds a Prepare as a Participant's VoteTimeout would.
func voteCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

func prepare(t *testing.T, rm txn.ResourceManager, id uuid.UUID, b []byte) []byte {
	t.Helper()
	ctx, cancel := voteCtx()
	defer cancel()
	intent, err := rm.Prepare(ctx, id, b)
	if err != nil {
		t.Fatalf("Prepare(%v) = %v; want a YES vote", id, err)
	}
	return intent
}

func commit(t *testing.T, k *keys, rm txn.ResourceManager, id uuid.UUID, intent []byte) {
	t.Helper()
	if err := rm.Commit(id, intent); err != nil {
		t.Fatalf("Commit(%v) = %v", id, err)
	}
	k.log = append(k.log, txn.Intent{Txn: id, Data: intent})
}

// load sets key to v through a committed transaction.
func load(t *testing.T, k *keys, rm txn.ResourceManager, key string, v int64) {
	t.Helper()
	id := uuid.New()
	commit(t, k, rm, id, prepare(t, rm, id, ops(t, put(key, v))))
}

func wantValue(t *testing.T, in Instance, key string, want int64) {
	t.Helper()
	got, ok := in.Get(t, key)
	if !ok || got != want {
		t.Fatalf("value of %q = %d (present %v); want %d", key, got, ok, want)
	}
}

func wantAbsent(t *testing.T, in Instance, key string) {
	t.Helper()
	if got, ok := in.Get(t, key); ok {
		t.Fatalf("value of %q = %d; want no value", key, got)
	}
}

// wantNo checks that Prepare votes NO, promptly, with an error wrapping
// want (if not nil).
func wantNo(t *testing.T, rm txn.ResourceManager, b []byte, want error) {
	t.Helper()
	ctx, cancel := voteCtx()
	defer cancel()
	_, err := rm.Prepare(ctx, uuid.New(), b)
	switch {
	case err == nil:
		t.Fatalf("Prepare voted YES; want NO (%v)", want)
	case ctx.Err() != nil:
		t.Fatalf("Prepare waited until its vote deadline (%v); want a prompt NO", err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("Prepare voted NO with %v; want an error wrapping %v", err, want)
	}
}

func testPrepareCommit(t *testing.T, in Instance, k *keys) {
	a, b := k.of("a"), k.of("b")
	load(t, k, in.RM, a, 100)
	id := uuid.New()
	intent := prepare(t, in.RM, id, ops(t, add(a, -30), add(b, 30), add(a, -5)))
	// Prepared is not committed.
	wantValue(t, in, a, 100)
	wantAbsent(t, in, b)
	commit(t, k, in.RM, id, intent)
	wantValue(t, in, a, 65)
	wantValue(t, in, b, 30)
	// The locks are released: the same keys take part in a new transaction.
	load(t, k, in.RM, a, 1)
	wantValue(t, in, a, 1)
}

func testPrepareAbort(t *testing.T, in Instance, k *keys) {
	a := k.of("a")
	load(t, k, in.RM, a, 100)
	id := uuid.New()
	intent := prepare(t, in.RM, id, ops(t, add(a, -30), put(k.of("new"), 7)))
	if err := in.RM.Abort(id, intent); err != nil {
		t.Fatalf("Abort = %v", err)
	}
	wantValue(t, in, a, 100)
	wantAbsent(t, in, k.of("new"))
	load(t, k, in.RM, a, 5) // locks released
	wantValue(t, in, a, 5)
}

func testConflict(t *testing.T, in Instance, k *keys) {
	a := k.of("a")
	load(t, k, in.RM, a, 100)
	id := uuid.New()
	intent := prepare(t, in.RM, id, ops(t, add(a, -10)))
	wantNo(t, in.RM, ops(t, add(a, -1)), txn.ErrLocked)
	wantNo(t, in.RM, ops(t, put(k.of("free"), 1), put(a, 0)), txn.ErrLocked)
	// The NO vote held nothing: the free key is free.
	load(t, k, in.RM, k.of("free"), 2)
	commit(t, k, in.RM, id, intent)
	wantValue(t, in, a, 90)
	load(t, k, in.RM, a, 3)
}

func testInsufficient(t *testing.T, in Instance, k *keys) {
	a := k.of("a")
	load(t, k, in.RM, a, 10)
	wantNo(t, in.RM, ops(t, add(a, -11)), txn.ErrInsufficientFunds)
	wantNo(t, in.RM, ops(t, add(k.of("empty"), -1)), txn.ErrInsufficientFunds)
	wantValue(t, in, a, 10)
	wantAbsent(t, in, k.of("empty"))
	load(t, k, in.RM, a, 4) // the NO vote released a's lock
}

func testMalformed(t *testing.T, in Instance, k *keys) {
	for _, b := range [][]byte{{0xff}, {1, 9, 1, 'k', 2}, {2}} {
		wantNo(t, in.RM, b, nil)
	}
}

func testRepeatedPrepare(t *testing.T, in Instance, k *keys) {
	a := k.of("a")
	load(t, k, in.RM, a, 50)
	id := uuid.New()
	b := ops(t, add(a, -20))
	intent := prepare(t, in.RM, id, b)
	again := prepare(t, in.RM, id, b)
	commit(t, k, in.RM, id, again)
	wantValue(t, in, a, 30)
	_ = intent
}

func testRecover(t *testing.T, in Instance, k *keys) {
	a, b, c := k.of("a"), k.of("b"), k.of("c")
	load(t, k, in.RM, a, 100)
	load(t, k, in.RM, b, 100)
	load(t, k, in.RM, c, 100)
	// Decided commit whose Commit call never happened: the log has DONE.
	committed := uuid.New()
	cIntent := prepare(t, in.RM, committed, ops(t, add(a, -10)))
	// Committed and applied before the crash: recovery repeats it.
	applied := uuid.New()
	aIntent := prepare(t, in.RM, applied, ops(t, put(c, 42)))
	commit(t, k, in.RM, applied, aIntent)
	// Voted YES, outcome unknown.
	doubt := uuid.New()
	dIntent := prepare(t, in.RM, doubt, ops(t, add(b, -25)))
	doubt2 := uuid.New()
	d2Intent := prepare(t, in.RM, doubt2, ops(t, add(c, 1)))

	rm := in.Restart(t)
	err := rm.Recover(txn.Recovery{
		Committed: append(k.log, txn.Intent{Txn: committed, Data: cIntent}),
		InDoubt:   []txn.Intent{{Txn: doubt, Data: dIntent}, {Txn: doubt2, Data: d2Intent}},
	})
	if err != nil {
		t.Fatalf("Recover = %v", err)
	}
	wantValue(t, in, a, 90)
	wantValue(t, in, c, 42)
	wantValue(t, in, b, 100) // in doubt: not applied...
	wantNo(t, rm, ops(t, add(b, 1)), txn.ErrLocked)
	wantNo(t, rm, ops(t, add(c, 1)), txn.ErrLocked) // ...but locked
	// The coordinator answers: commit one, abort the other.
	commit(t, k, rm, doubt, dIntent)
	if err := rm.Abort(doubt2, d2Intent); err != nil {
		t.Fatalf("Abort(in doubt) = %v", err)
	}
	wantValue(t, in, b, 75)
	wantValue(t, in, c, 42)
	load(t, k, rm, b, 1)
	load(t, k, rm, c, 1)
}

func testSnapshot(t *testing.T, in Instance, k *keys) {
	a, b := k.of("a"), k.of("b")
	load(t, k, in.RM, a, 100)
	load(t, k, in.RM, b, 7)
	snap, err := in.RM.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot = %v", err)
	}
	k.log = nil // a checkpoint drops the log before it
	id := uuid.New()
	intent := prepare(t, in.RM, id, ops(t, add(a, 5)))
	rm := in.Restart(t)
	if err := rm.Recover(txn.Recovery{Snapshot: snap, Committed: []txn.Intent{{Txn: id, Data: intent}}}); err != nil {
		t.Fatalf("Recover = %v", err)
	}
	wantValue(t, in, a, 105)
	wantValue(t, in, b, 7)
	load(t, k, rm, a, 0) // nothing left locked
}

func testInterleaved(t *testing.T, in Instance, k *keys) {
	// The Participant calls its resource manager from one goroutine, but
	// keeps many transactions prepared at once: interleave them.
	const accounts, rounds = 8, 5
	for i := range accounts {
		load(t, k, in.RM, k.of(fmt.Sprint(i)), 100)
	}
	for round := range rounds {
		type prepared struct {
			id     uuid.UUID
			intent []byte
		}
		var batch []prepared
		for i := 0; i+1 < accounts; i += 2 {
			from, to := k.of(fmt.Sprint(i)), k.of(fmt.Sprint(i+1))
			if round%2 == 1 {
				from, to = to, from
			}
			id := uuid.New()
			batch = append(batch, prepared{id, prepare(t, in.RM, id, ops(t, add(from, -7), add(to, 7)))})
		}
		for i, p := range batch {
			if i%3 == 2 {
				if err := in.RM.Abort(p.id, p.intent); err != nil {
					t.Fatalf("Abort = %v", err)
				}
				continue
			}
			commit(t, k, in.RM, p.id, p.intent)
		}
	}
	var sum int64
	for i := range accounts {
		v, _ := in.Get(t, k.of(fmt.Sprint(i)))
		sum += v
	}
	if sum != accounts*100 {
		t.Fatalf("sum of balances = %d; want %d", sum, accounts*100)
	}
}
