// Package idempotency gives exactly-once effects over at-least-once
// delivery: a client retries a request until it gets an answer, and the
// server makes sure the operation behind it runs once and every retry gets
// the first answer.
//
// Each request carries an idempotency key, chosen by the client (RandomKey,
// TimeOrderedKey) or derived from the request itself (DeriveKey). The server
// runs the operation through a Runner:
//
//	store, _ := idempotency.NewMemoryStore(idempotency.DefaultMemoryConfig())
//	// or: store, _ := idempotency.OpenFileStore("payments.idem", idempotency.DefaultFileConfig())
//	runner, _ := idempotency.NewRunner[Receipt](store, idempotency.JSONCodec[Receipt]{}, idempotency.DefaultConfig())
//	defer runner.Close()
//
//	receipt, err := runner.Do(ctx, key, idempotency.Fingerprint(body), func(ctx context.Context) (Receipt, error) {
//		return chargeCard(ctx, req) // runs at most once per key
//	})
//
// For HTTP APIs, NewMiddleware wraps a handler and implements the IETF
// Idempotency-Key header draft (400 without a key, 422 for a key reused with
// another payload, 409 while the first request is in flight, replay with
// the original status, headers and body plus "Idempotent-Replayed: true").
//
// # The flow
//
//  1. Begin: the store atomically creates an in-progress record for the key,
//     or returns the record already there. A completed record with the same
//     fingerprint is replayed; a different fingerprint is ErrKeyReuse; an
//     in-progress record makes the call wait (same process, via singleflight)
//     or fail with ErrInProgress.
//  2. The operation runs.
//  3. Complete: the result is encoded and stored in the record, which stays
//     for Config.Retention. If the operation failed, the record is removed
//     instead so a retry can run it again (or, with Config.CacheFailures,
//     the failure is stored and replayed).
//
// # Failure cases, and the caller's duties
//
// A crash between step 2 and step 3 is the hard case: the effect happened
// but no record says so. The in-progress record stays (durably, with
// FileStore) until Config.InProgressTimeout, then the key is free and a
// retry runs the operation a second time. The package cannot prevent this by
// itself; the caller's duties are:
//
//  1. Make the effect and the record one transaction when you can (see
//     below).
//  2. When the effect is outside your database (a card network, an e-mail),
//     pass the idempotency key on to that service if it accepts one, so the
//     crash window above is closed downstream.
//  3. Choose InProgressTimeout longer than the longest operation: a record
//     that expires while the operation still runs can be taken over.
//  4. Use a fingerprint of the request payload, so a client bug that reuses
//     a key for a different request is rejected rather than answered with
//     another request's result.
//  5. Scope keys per client (HTTPConfig.Scope, or a client prefix) so two
//     clients cannot collide on a key.
//
// # Sharing a transaction with the effect
//
// If the operation writes to your own database, keep the idempotency records
// in a table of that database (key primary key, status, token, fingerprint,
// result, expires), implement Store over it, and let fn perform the effect and
// complete the record in one transaction. fn learns its key and token from
// ClaimFromContext:
//
//	-- Store.Begin: insert unless a live record exists, committed on its own
//	INSERT INTO idem (key, status, token, fingerprint, expires)
//	VALUES ($key, 'in-progress', $token, $fp, $now + interval '1 minute')
//	ON CONFLICT (key) DO UPDATE
//	  SET status = 'in-progress', token = $token, fingerprint = $fp,
//	      result = NULL, expires = $now + interval '1 minute'
//	  WHERE idem.expires <= $now;  -- no row affected: return the held one
//
//	-- fn: the effect and the completion commit together
//	BEGIN;
//	UPDATE accounts SET balance = balance - $amount WHERE id = $account;
//	UPDATE idem SET status = 'completed', result = $receipt,
//	       expires = now() + interval '1 day'
//	WHERE key = $key AND token = $token AND status = 'in-progress';
//	-- 0 rows updated: the record expired and was taken over: ROLLBACK
//	COMMIT;
//
// Store.Complete then finds the row already completed under its token and
// returns nil. A crash leaves the effect and the record, or neither, so no
// retry can repeat the effect.
//
// # Stores
//
// MemoryStore is sharded, bounded (exactly MaxEntries records across all
// shards; at the bound it drops the oldest record that has expired or
// completed, never a live in-progress one) and lost on restart. FileStore
// is an append-only log with CRC-32C per record and fsync before
// acknowledgement; concurrent writers share fsyncs (group commit); a torn
// tail left by a crash is detected and truncated on open, while damage a
// crash cannot explain is refused (ErrCorrupt, naming the file and
// offset); the log is compacted when it doubles; the file is locked
// (path+".lock") while open, so a second opener gets ErrLocked. Any
// database with an atomic insert-if-absent can implement Store: Begin's
// check for a live record and its insert must be one atomic step.
//
// # Concurrency
//
// Runner, Middleware, MemoryStore and FileStore are safe for concurrent use.
// The stores start no goroutines. A Runner runs fn for a group of in-process
// duplicates in a goroutine that ends when fn returns; Runner.Close and
// Middleware.Close wait for such runs.
//
// # Fault model
//
// Processes crash and restart; clients retry, duplicate and reorder
// requests; responses are lost; power fails at any instant. Records
// acknowledged by FileStore survive a power cut; records being written
// when it comes (the last write batch) may be lost, never half-applied.
//
// Torn tail versus corruption: the frames one fsync covers form a write
// batch, and every frame but a batch's first carries a continuation flag.
// On open, the first frame that is incomplete or fails its CRC-32C is a
// torn tail, and the log is truncated there (logged at WARN), if no valid
// frame starting a later batch follows it; if one does, the damaged frame
// had been synced and went bad since, and OpenFileStore refuses with
// ErrCorrupt rather than drop the acknowledged records after it. A frame
// that passes its checksum but does not parse is refused too. After a
// failed write or fsync the store acknowledges nothing more, not even
// writes that queued behind it (ErrStoreFailed): the kernel may have
// dropped the failed batch's pages.
//
// The power-loss tests run FileStore on vfs.CrashFS (package
// internal/vfs), which keeps only what was fsynced (unsynced data lost or
// torn at 512-byte sectors, directory entries only after a directory
// fsync) and fails fsyncs and writes on demand; they check that every
// acknowledged Begin, Complete and Abort survives, that a batch torn by
// the crash is cut off and not refused, and that nothing is acknowledged
// after a failed fsync. Not covered: clocks that jump by more than the
// timeouts, and a disk that acknowledges fsyncs it did not do.
//
// # Tests
//
// The default test run is short. DISTKIT_SOAK=1 runs many more seeds of the
// reference-model and crash tests.
package idempotency
