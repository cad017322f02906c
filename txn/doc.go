// Package txn is two-phase commit (2PC) that survives crashes: an atomic
// transaction across resource managers on different nodes. Either every
// participant applies its part or none does, whatever messages are lost,
// duplicated or reordered and whichever node crashes when.
//
// It has three layers, like the rest of distkit:
//
//   - RawCoordinator and RawParticipant, deterministic cores: messages,
//     ticks and resource-manager answers in; log records, resource-manager
//     calls and messages out, as a Ready. No I/O, goroutines or clock.
//   - Coordinator and Participant, runtime drivers over a
//     transport.Transport with a durable Log (FileLog on internal/wal, or
//     MemoryLog) and real timers; ReplicatedCoordinator, the same
//     coordinator with its log in a consensus group of replicas, so that
//     its crash does not block anyone (see "Two coordinators").
//   - ResourceManager, the user's resource, and Store, a ready one: int64
//     accounts with a lock per key.
//
// # Usage
//
//	// On each bank (participant):
//	log, err := txn.OpenFileLog("/var/lib/bank1/txn")
//	store := txn.NewStore()
//	p, err := txn.NewParticipant(tr, log, store, txn.DefaultConfig())
//	defer p.Close()
//
//	// On the coordinator:
//	c, err := txn.NewCoordinator(tr, clog, txn.DefaultConfig())
//	debit, _ := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: "A", Amount: -100})
//	credit, _ := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: "B", Amount: 100})
//	_, err = c.Run(ctx, txn.Work{Participant: "bank1", Ops: debit},
//		txn.Work{Participant: "bank2", Ops: credit})
//	var abort *txn.AbortError
//	switch {
//	case err == nil: // committed: both banks will apply it, crashes or not
//	case errors.As(err, &abort): // aborted: abort.Cause, abort.Participants, abort.Reason
//	default: // not run: closed, invalid input, storage failure
//	}
//
//	// Or a replicated coordinator: on each of r1, r2, r3 (own transport):
//	rc := consensus.DefaultConfig()
//	rc.ID, rc.Peers, rc.DataDir = "r1", []transport.NodeID{"r1", "r2", "r3"}, "/var/lib/r1/raft"
//	rc.Service = "txn/raft"
//	c, err := txn.NewReplicatedCoordinator(tr, rc, txn.DefaultConfig())
//	_, err = c.Run(ctx, work...) // on the leader; elsewhere *txn.NotLeaderError names it
//
// # Protocol
//
//	coordinator                          participant
//	-----------                          -----------
//	log BEGIN (lazy: nothing waits)
//	PREPARE(ops, participants) ───────▶  ResourceManager.Prepare (locks)
//	                                     YES: log PREPARED(intent), fsync
//	                           ◀───────  VOTE YES / NO(reason)
//	all YES: log COMMIT, fsync
//	any NO or timeout: abort (no record)
//	COMMIT / ABORT ───────────────────▶  log DONE, fsync; Commit / Abort
//	                           ◀───────  ACK
//	all ACKed: log END (lazy), forget
//
// Coordinator states, per transaction:
//
//	 Begin: log BEGIN (lazy)
//	    │
//	    ▼      NO vote, timeout, cancel, or a
//	VOTING ──── restart finding no COMMIT ───▶ ABORTED ──┐ (no record)
//	    │ all YES                                 │     │ resend ABORT
//	    ▼ log COMMIT (durable first)              │ ◀───┘ until ACKed
//	COMMITTED ──┐ resend COMMIT                   │
//	    │ ◀─────┘ until ACKed                     │
//	    ▼ all ACKs: log END (lazy)                ▼ all ACKs: log END (lazy)
//	forgotten                                forgotten
//
// Participant states, per transaction:
//
//	 PREPARE
//	    │
//	    ▼  Prepare fails / ABORT arrives: vote NO (unilateral abort)
//	PREPARING ────────────────────────────────────────────┐
//	    │ Prepare succeeds: log PREPARED, then vote YES    │
//	    ▼                                                  ▼
//	PREPARED (in doubt) ── COMMIT/ABORT, or a peer ──▶ FINISHED ──▶ forgotten
//	 │  ▲ ask the coordinator    that knows: log DONE,     (after FinishedTTL)
//	 └──┘ and, once it is        apply, ACK
//	      silent, the peers
//
// A transaction can also begin FINISHED (aborted) on a participant: an
// ABORT or a peer's QUERY that arrives before the PREPARE leaves a record
// that makes the late PREPARE get a NO vote. The QUERY's is logged (DONE),
// because the peer that asked relies on it.
//
// The rules that make it survive crashes:
//
//  1. The coordinator makes its COMMIT record durable before sending any
//     COMMIT (Ready: log first, then messages). After a crash it re-sends
//     the decision of every committed transaction still in its log.
//  2. Presumed abort: no abort record is ever needed. A coordinator with no
//     COMMIT record of a transaction answers ABORT to every question
//     about it, so a crash before the decision aborts it.
//  3. On restart the coordinator also aborts actively what it had begun
//     and not decided. Begin writes a BEGIN record lazily (Ready.Lazy:
//     the PREPAREs do not wait for it; the driver writes it in front of
//     the next durable batch, usually sharing a COMMIT's fsync, or at the
//     next tick when there is none). A BEGIN without a COMMIT found on recovery makes the
//     coordinator send ABORT to every participant until each has
//     acknowledged, so prepared ones release their locks at once and one
//     that has not seen the PREPARE yet will vote NO when it does. A
//     BEGIN lost in the crash changes nothing but speed: rule 2 still
//     aborts the transaction, and its prepared participants learn it on
//     their next QUERY, within RetryInterval. Likewise an END record,
//     written lazily once every participant has acknowledged, spares
//     recovery from sending that decision again; if it is lost, the
//     decision is sent once more and acknowledged again.
//  4. A participant logs PREPARED, with the intent its resource manager
//     returned (what it needs to commit or abort later), before voting
//     YES. After a crash it is in doubt again: its locks are re-taken
//     (ResourceManager.Recover) and it asks until it learns the outcome.
//  5. A participant logs DONE before applying a decision and before
//     acknowledging it; the coordinator forgets a transaction only when
//     every participant has acknowledged, and then never needs it again.
//  6. Before voting, a participant may abort on its own: its resource
//     manager refuses (a NO vote with the reason), its preparation takes
//     longer than VoteTimeout (Prepare's context expires: the coordinator
//     has stopped waiting for the vote by then), or an ABORT overtook the
//     PREPARE (it remembers the abort and votes NO to the late PREPARE).
//     "No PREPARE in time" needs no timer here: the work travels
//     inside the PREPARE, so a participant holds nothing (no locks, no
//     intents) for a transaction before its PREPARE arrives. The only way
//     it hears of one earlier is a peer's QUERY, and then it does better
//     than wait: it aborts at once, durably, and votes NO to any PREPARE
//     that comes later (see cooperative termination below).
//  7. Everything is idempotent per transaction ID: duplicated PREPAREs,
//     votes, decisions and ACKs change nothing, and every unanswered
//     message is re-sent every RetryInterval.
//
// Checkpoints keep the logs bounded. Every CheckpointEvery records the
// coordinator's log (BEGIN, COMMIT and END records) is replaced by a
// COMMIT record for each committed transaction still awaiting
// acknowledgements and a BEGIN record for each other one it still tracks,
// and a participant's by a snapshot of its resource manager plus its
// in-doubt transactions and the aborts it has promised to peers.
//
// # The blocking problem
//
// Two-phase commit blocks: a participant that voted YES must not decide
// on its own, because the others may have committed or aborted. If the
// coordinator crashes after the votes and before its decision reaches
// anyone, every participant that voted YES is stuck in doubt, holding its
// locks, until the coordinator comes back (or its log is recovered
// elsewhere). No protocol with these messages avoids this (Skeen, 1981;
// three-phase commit trades it for assumptions about timing).
//
// What this implementation does about it:
//
//   - Cooperative termination. An in-doubt participant asks its
//     coordinator every RetryInterval; the coordinator answers "still
//     voting" while it is. Once the coordinator has been silent for three
//     rounds, the participant also asks its peers (PREPARE names them all).
//     A peer that knows the outcome tells it. A peer that has no record of
//     the transaction, because it never received its PREPARE, aborts it
//     durably (it will vote NO from then on) and says so, which settles
//     the transaction as aborted for everyone.
//   - Such a "no record" abort could also come from a peer that committed
//     the transaction and has forgotten it, so it carries how far back the
//     peer's memory reaches (its uptime, at most FinishedTTL); the asker
//     accepts it only if it prepared within that span. A commit is decided
//     after every vote, so a peer that committed finished after the asker
//     prepared and would still remember it.
//   - With Coordinator, the only case that stays blocked is the essential
//     one: every participant voted YES and none has the decision. It
//     resolves as soon as the coordinator is back; its COMMIT record, if
//     any, is durable. ReplicatedCoordinator (below) removes it.
//   - Locks are never waited for: a key locked by another prepared
//     transaction makes Store vote NO at once, so transactions never
//     deadlock, and the vote timeout bounds how long a transaction can
//     hold locks before the decision.
//
// # Two coordinators: what each costs and when each blocks
//
// Coordinator keeps its log on one node (FileLog: one fsync per batch).
// It is the cheaper one: a transaction costs one PREPARE round, the
// participants' fsync, one coordinator fsync and one decision round. It
// blocks when it crashes between the votes and the first decision
// message: participants that voted YES wait, holding their locks, until
// that node is back with its log.
//
// ReplicatedCoordinator keeps the log in a consensus group of 3 or 5
// replicas (package consensus, Raft), the idea of Gray and Lamport's
// "Consensus on Transaction Commit" and of what Spanner and CockroachDB
// do internally. The replicas apply the same commands to a deterministic
// table of transaction records:
//
//	TAKEOVER(term)            a new leader's first command; its log index
//	                          is the leader's epoch
//	COMMIT(txn, participants) the decision, accepted only from a batch of
//	                          the last epoch and for an ID the table does
//	                          not hold (the first decision stands)
//	ABORT(txn)                a presumed abort, logged before it is told
//	END(txn)                  every participant acknowledged: forget it
//
// The Raft leader runs transactions with the same RawCoordinator core as
// Coordinator; its records are commands (one command carries every record
// of one Ready), and a Ready's decisions and answers leave only once its
// command is applied. There is no BEGIN: the PREPAREs leave at once, and
// the COMMIT is the only replicated write before the decision, one log
// round per transaction (and one round carries the COMMITs of every
// transaction decided while the previous rounds were in flight: group
// commit). Why no BEGIN is needed, and why two leaders can never decide
// differently:
//
//   - Only the leader that sent a transaction's PREPAREs can commit it: it
//     alone collects the votes, under its epoch.
//   - A takeover fences every earlier epoch: a batch is applied only if
//     built under the last TAKEOVER in the log, so once a new leader's
//     TAKEOVER is applied, a COMMIT the old leader had not yet got into
//     the log can never be (also when the same replica steps down and
//     takes over again in one term). What the new leader finds committed
//     in the table it finishes (re-sends COMMIT); everything else that
//     was in flight is aborted by presumption: "an undecided transaction
//     is aborted by the new leader only through the log".
//   - A participant in doubt asks the leader; a leader with no record of
//     the transaction answers ABORT only after logging it (ABORT(txn));
//     that record makes a later COMMIT of the same ID refused, and an
//     ABORT applied after a COMMIT changes nothing: its answer is not
//     sent. A leader deposed without knowing it gets its commands refused
//     (another epoch) and stops.
//
// So a transaction begun by a leader that dies before its COMMIT is in
// the log is aborted, as with Coordinator when a crash loses its BEGIN:
// the new leader does not know it, and its prepared participants learn
// the outcome when they next ask (every RetryInterval).
//
// A participant asks whichever replica it believes leads; a replica that
// does not lead names the leader, and one that does not answer is skipped
// for the next. Once a majority of replicas is up and connected, a
// participant is in doubt at most for an election plus a query round.
// With pre-vote and check-quorum an election can take up to three minimum
// election timeouts, not one: the most up-to-date survivor times out
// first and is refused by a follower still within its leader lease, and
// wins at its next timeout. So the bound is 3 x ElectionTicks x
// TickInterval + RetryInterval + two coordinator ticks (plus an election
// timeout per split vote). TestReplicatedCoordinatorCrashMatrix checks it
// after a leader crash at every step, with and without a partition among
// the replicas, and TestReplicatedPowerLoss under power cuts.
// Run on the leader returns once the COMMIT is applied and the COMMIT
// messages have left (so that the caller's next transaction on the same
// keys does not overtake them); on another replica it returns
// ErrNotLeader naming the leader.
//
// What each costs, per transaction: Coordinator, one PREPARE round, the
// participants' fsync, one local fsync (shared by every transaction
// decided meanwhile) and the decision round. ReplicatedCoordinator, the
// same with a Raft round in place of the local fsync: the leader's fsync
// and a follower's, and a network round trip to it. Measured on a loaded
// 2-core machine (BenchmarkTwoPhaseCommitDurable and
// BenchmarkTwoPhaseCommitReplicated in one run, 64 concurrent
// transactions) the replicated one reached 0.7 to 0.9 times the
// single-node one's throughput (it was 0.7 with two log rounds), with 16
// to 19 transactions' COMMITs per replicated write. It still blocks while no majority of replicas can
// talk, which is the price of consensus itself.
//
// # Sagas
//
// Package txn/saga is for work that cannot hold locks across services for
// the length of a transaction (a trip: flight, hotel, car). A saga is a
// sequence of steps, each a local transaction with a compensation; it ends
// fully done or fully compensated, and others may see the steps in
// between (no isolation). Its runner logs each step durably and resumes
// after a crash; it retries a failing step (forward recovery) and, when
// the step fails for good, compensates it and every earlier step in
// reverse (backward recovery). Its Barrier makes the services' handlers
// safe under at-least-once, reordered delivery, on an idempotency.Store:
// a duplicate action or compensation is ignored; a compensation that
// arrives before (or without) its action does nothing and is recorded
// (null compensation); and the action that arrives after it is refused
// (hanging action).
//
// # Caller's duties
//
//  1. Give each Coordinator and Participant its own Log, and reopen the
//     same Log after a restart: it is what recovery reads.
//  2. Use unique transaction IDs (Run draws them with uuid.New; RunID
//     takes yours).
//  3. Keep FinishedTTL above VoteTimeout and above the longest time a
//     message can linger in the network (Config.Validate enforces the
//     first).
//  4. A ResourceManager's Commit must not fail for an intent its Prepare
//     returned, and its committed state must come only from Recover and
//     Commit (the log is its durability).
//
// # Concurrency
//
// Coordinator, ReplicatedCoordinator, Participant, Store, MemoryLog and
// FileLog are safe for concurrent use; Run may be called from any number of goroutines. Each
// driver has one goroutine, stopped by Close, that does all of its I/O:
// the log records of everything that happened while it was busy are
// written with one fsync (group commit). The raw cores are not safe for
// concurrent use.
//
// # Fault model
//
// Tolerated: lost, duplicated, delayed and reordered messages; crashes of
// any node at any point, power loss included, with restart from its log; a
// torn log tail (the last write batch, damaged by a crash with nothing
// valid written after it), which is cut off and logged at WARN. Refused:
// damage a crash cannot explain (a bad record followed by a valid record of
// a later batch, damage in a sealed segment, a damaged checkpoint):
// OpenFileLog fails with ErrMalformed wrapping wal.ErrCorrupt and naming
// the file and offset, because cutting it off would lose acknowledged
// records. A FileLog locks its directory (a LOCK file, flock) until Close:
// a second opener, in this process or another, gets ErrLogLocked naming
// the holder's pid. A Coordinator being down blocks participants that
// voted YES until it returns (see above); a ReplicatedCoordinator blocks
// them only while no majority of its replicas is up and connected. Not
// tolerated: a lost log, and Byzantine nodes.
//
// TestFileLogPowerLoss runs FileLog on a crash file system (unsynced data
// lost or torn at 512-byte sectors, directory entries durable only after a
// directory fsync, fsyncs that fail on demand) and checks that every
// acknowledged Append and Replace survives a power cut;
// OpenFileLogWith(dir, FileLogOptions{FS: …}) runs a FileLog on another
// file system. TestRuntimePowerLoss runs the whole single-node runtime
// (Coordinator and Participants, each on a FileLog over its own crash
// file system, in a synctest bubble, seeded) and cuts the power of the
// coordinator or of a participant just before one of its fsyncs, while
// some of the messages it sent are still in flight: every transaction
// ends applied on all of its participants or on none, as Run reported,
// with no lock held. TestReplicatedPowerLoss does the same to the
// replicated coordinator: each replica keeps its consensus log in a
// DataDir on a crash file system of its own (consensus.Config.FS, in the
// raft configuration NewReplicatedCoordinator takes), and one, two or all
// three replicas lose their power at a failed fsync while transactions
// run, in some rounds with a committed transaction's participants cut off
// across snapshots and the power cut (seeded, in synctest bubbles). Every
// transaction ends applied on all of its participants or on none, as Run
// reported, committed only if all voted YES; once a majority of replicas
// is up no participant stays in doubt longer than an election plus a
// query round and the message delays, where the election, with pre-vote
// and check-quorum, can take up to three minimum election timeouts (a
// follower still within its leader lease refuses the first candidate).
// (TestReplicatedCoordinatorCrashMatrix crashes replicas with memnet's
// Crash, which loses nothing.)
//
// # Testing
//
// The simulation tests (package sim) crash the coordinator or a
// participant after each of its steps (every log write, the lazy BEGIN
// write and its sync included, and every message) and check that everyone
// settles on the same outcome, and run random bank transfers under faults
// and crashes over many seeds. The replicated coordinator's tests run the
// real runtime (consensus.Node, memnet) inside testing/synctest bubbles,
// in virtual time: the simulator drives cores only, and the replicated
// coordinator's leadership logic lives in its driver. DISTKIT_SOAK=1
// runs fifty times as many seeds with longer runs; DISTKIT_SEED=N replays
// one seed.
package txn
