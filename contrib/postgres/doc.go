// Package dkpostgres puts distkit's interfaces on PostgreSQL, for teams
// that already run it:
//
//   - Store, an idempotency.Store on a table, whose CompleteInTx completes
//     the idempotency record inside the operation's own transaction;
//   - ResourceManager, a txn.ResourceManager on PostgreSQL's two-phase
//     commit (PREPARE TRANSACTION, COMMIT PREPARED, ROLLBACK PREPARED);
//   - Fence, a fencing-token check for tables guarded by a distkit lock.
//
// Import it under its package name:
//
//	import dkpostgres "github.com/distkit/distkit/contrib/postgres"
//
// # Idempotency records in your own transaction
//
//	store, _ := dkpostgres.NewStore(pool, dkpostgres.DefaultStoreConfig())
//	_ = store.CreateTable(ctx)
//	runner, _ := idempotency.NewRunner[string](store, idempotency.StringCodec{}, idempotency.DefaultConfig())
//	receipt, err := runner.Do(ctx, key, fingerprint, func(ctx context.Context) (string, error) {
//		return "ok", pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
//			if _, err := tx.Exec(ctx, "UPDATE accounts SET balance = balance - $1 WHERE id = $2", amount, id); err != nil {
//				return err
//			}
//			return store.CompleteInTx(ctx, tx, []byte("ok")) // commits with the debit
//		})
//	})
//
// The effect and the completed record commit together, so the crash window
// of the idempotency package ("a crash between the effect and Complete
// runs the operation twice") is gone: after a crash there is either both
// or neither.
//
// # Two-phase commit across databases
//
//	rm, _ := dkpostgres.NewResourceManager(poolA, dkpostgres.DefaultRMConfig("bank-a"))
//	p, _ := txn.NewParticipant(transport, log, rm, txn.DefaultConfig())
//
// Each participant's operations (txn.EncodeOps on an accounts table) run
// in a PostgreSQL transaction that ends with PREPARE TRANSACTION. The
// server needs max_prepared_transactions > 0 (it is 0 by default).
// The examples/bank program of this module runs two databases as two
// banks, crashes the coordinator and recovers.
//
// # Which guarantees carry over
//
//   - The idempotency.Store contract (idempotency/storetest) and the
//     txn.ResourceManager contract (txn/rmtest) hold: this module's tests
//     run both against a real server.
//   - Durability is PostgreSQL's: with the default synchronous_commit=on a
//     committed record or COMMIT PREPARED survives a server crash, and a
//     prepared transaction survives crashes of the server and of the
//     participant (TestServerCrashBetweenPrepareAndCommit restarts the
//     server between PREPARE and COMMIT PREPARED).
//   - Recovery follows the participant's log, as with txn.Store: Recover
//     commits what the log committed, keeps in-doubt transactions prepared
//     (their row locks held by PostgreSQL) until the coordinator answers,
//     and rolls back prepared transactions the log never recorded a YES
//     vote for.
//   - Fence has lock.Fence's rule (a token at least the highest accepted),
//     checked and recorded in one statement inside the write's transaction.
//
// # Which change
//
//   - Prepare waits up to RMConfig.LockTimeout (default 50ms) for a row
//     another transaction holds before voting NO; txn.Store votes NO at
//     once. PostgreSQL decides the locks (row locks, unique-index waits).
//   - A prepared transaction holds its locks, and blocks VACUUM's cleanup
//     horizon, until it is resolved: an in-doubt transaction whose
//     coordinator is gone for long is a real cost here. Monitor
//     pg_prepared_xacts.
//   - Commit and Abort retry for RMConfig.CommitRetry while the server is
//     unreachable, then fail, which stops the Participant; its restart
//     finishes the commit in Recover.
//   - Recover refuses (ErrLostPrepared) a log that says a transaction is in
//     doubt when PostgreSQL has no such prepared transaction (a restored
//     backup, a manual ROLLBACK PREPARED): committing it is impossible, and
//     pretending otherwise would break atomicity silently.
//   - Store decides expiry by the times the Runner passes, as every
//     distkit store does; it never deletes rows. Delete expired rows
//     yourself from time to time.
//   - GIDPrefix must be unique per participant in a database, because
//     Recover rolls back unknown prepared transactions of its prefix.
//
// # Concurrency
//
// Store, ResourceManager and Fence are safe for concurrent use and start no
// goroutines.
//
// # Tests
//
// The tests need a PostgreSQL with max_prepared_transactions > 0: run
// `bash .ci/contrib/postgres.sh` from the repository root (it initdbs a
// temporary cluster on a free port), or set DISTKIT_POSTGRES_URL (plus
// DISTKIT_POSTGRES_URL_A and _B, two more databases, for the 2PC benchmark,
// and DISTKIT_POSTGRES_RESTART, a shell command that crash-restarts the
// server, for the crash tests). Without them the tests skip on a developer
// machine and fail under CI=true.
package dkpostgres
