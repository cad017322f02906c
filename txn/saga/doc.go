// Package saga runs sagas: long-running work across services that cannot
// hold locks for its whole duration, made of steps that each commit on
// their own and each have a compensation that undoes them semantically
// (cancel the booking, refund the payment). A saga ends in one of two
// states: done (every step's action succeeded) or compensated (a step
// failed for good, and every step that may have acted, that one
// included, was compensated in reverse order). Unlike two-phase commit
// (package txn), others may see the intermediate states: a saga trades
// isolation for never blocking.
//
// # Usage
//
//	log, err := saga.OpenFileLog("/var/lib/trips/saga")
//	r, err := saga.NewRunner(log, saga.DefaultConfig())
//	r.Register(saga.Saga{Name: "trip", Steps: []saga.Step{
//		{Name: "flight", Action: bookFlight, Compensate: cancelFlight},
//		{Name: "hotel", Action: bookHotel, Compensate: cancelHotel},
//		{Name: "car", Action: rentCar, Compensate: returnCar},
//	}})
//	outs, err := r.Resume(ctx) // after a restart: finish what the log holds
//	o, err := r.Run(ctx, "trip", tripID) // saga.Done or saga.Compensated
//
// And in each service, the handlers behind a Barrier:
//
//	b, err := saga.NewBarrier(idemStore, 24*time.Hour, time.Minute, nil)
//	func bookFlight(ctx, id) error { return b.Action(ctx, id, 0, book) }
//	func cancelFlight(ctx, id) error { return b.Compensate(ctx, id, 0, cancel) }
//
// # Recovery
//
// Forward recovery: a failed action is retried (Config.Retries, with
// Config.Backoff between attempts) unless its error is Permanent. Backward
// recovery: when it still fails, the saga turns back and compensates,
// starting with the failed step itself (its request may have acted even
// though the answer was an error or a timeout) and going down to step 0.
// A compensation is retried until it succeeds: it must be able to.
//
// The Runner logs every step durably (Log: FileLog on internal/wal, or
// MemoryLog) before it goes on: EvStart, EvStepDone per action,
// EvTurnBack, EvCompensated per compensation, EvEnd. A runner that
// crashes is replaced by one on the same log, whose Resume continues
// every unfinished saga from its last logged step. The step that was
// running at the crash is run again: actions and compensations are
// delivered at least once.
//
// # Compaction
//
// The log would otherwise grow forever. Every Config.CompactEvery ended
// sagas (default 1024; 0 never), a Runner whose Log is a Compacter
// replaces the log by the events of the sagas still running, each as
// logged (start, steps done, turn-back, compensations), and forgets the
// ended ones: Status no longer knows them, and a Run with an ended ID
// would start it anew, so saga IDs must be unique. Appends wait while it
// compacts. FileLog compacts crash-safely: it writes the running sagas'
// events and the log index they cover to a checkpoint file (checksummed
// frames, to a temporary file, fsynced, renamed, directory fsynced), and
// only then removes the log segments that index covers; Load reads the
// checkpoint, then only the records after that index. A power cut at any
// step leaves the log as before the compaction or as after it
// (TestFileLogCompactionPowerLoss cuts before every fsync of a
// compaction, over several seeds of torn writes); a damaged checkpoint is
// refused with ErrMalformed. A failed compaction stops the runner
// (ErrStopped), as a failed append does.
//
// # The barrier's three cases
//
// At-least-once delivery over a network that reorders means a service
// sees duplicates, compensations for actions it never received, and
// actions that arrive after their compensation. Barrier, built on an
// idempotency.Store (the same records package idempotency keeps for HTTP
// requests), handles all three per branch (saga ID and step):
//
//  1. Duplicates: a repeated action or compensation finds its record
//     completed and does nothing.
//  2. Null compensation: a compensation whose action never arrived
//     records that it came first and does nothing (there is nothing to
//     undo).
//  3. Hanging action: the action that arrives after that is refused with
//     ErrHanging, so a late request cannot book a seat for a saga that has
//     already been compensated.
//
// # Concurrency and the caller's duties
//
// Runner and Barrier are safe for concurrent use; one saga ID is driven by
// one Run at a time (ErrRunning). Register the same sagas on a restarted
// runner before Resume. Actions must be atomic (act entirely or not at all
// when they fail); compensations must eventually succeed. Barrier records
// last their TTL: choose it longer than a message can be delayed, and size
// the idempotency store so that live records are not evicted.
package saga
