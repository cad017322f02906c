// Package consensus replicates a state machine with Raft: a Node runs the
// deterministic core of package consensus/raft over a transport, durable
// storage and real timers, and offers a plain blocking API.
//
// # Usage
//
//	cfg := consensus.DefaultConfig()
//	cfg.ID = "n1"
//	cfg.Peers = []transport.NodeID{"n1", "n2", "n3"}
//	cfg.DataDir = "/var/lib/myapp/raft"      // empty: in memory only
//	node, err := consensus.New(cfg, tr, myStateMachine)
//	if err != nil { … }
//	defer node.Close()
//
//	result, err := node.Propose(ctx, []byte("set x 1"))
//	var nle *raft.NotLeaderError
//	if errors.As(err, &nle) { … retry on nle.Leader … }
//
// A Client does that retrying: it finds the leader, follows ErrNotLeader's
// hint, skips dead nodes and stops at the caller's deadline.
//
//	cl, _ := consensus.NewClient(map[transport.NodeID]consensus.Proposer{"n1": n1, "n2": n2, "n3": n3},
//		consensus.DefaultClientConfig())
//	result, err := cl.Propose(ctx, cmd)
//
// # What a Node does with each Ready (the order is the protocol's)
//
// One goroutine owns the core. Each time it wakes (a tick, received
// messages, proposals) it first drains every queued message and proposal
// into the core, so that everything that arrived during the previous fsync
// lands in one Ready, then for each Ready:
//
//  1. installs a snapshot received from the leader (file written
//     atomically, log reset, state machine restored);
//  2. persists the hard state and the new entries: conflicting entries are
//     truncated and the new ones appended to the write-ahead log with one
//     fsync (group commit: the whole Ready, whatever the number of
//     proposals in it); a changed term or vote is written before any
//     message that depends on it is sent (§5.2);
//  3. sends the messages (a leader sends its appends and heartbeats before
//     its own fsync, in parallel with it, as thesis §10.2.1 allows: the
//     acknowledgements that commit an entry are only processed after the
//     fsync has returned);
//  4. applies the committed entries to the StateMachine and completes the
//     matching proposals: a proposal is answered when the entry at its
//     index is applied with its term; it fails with ErrProposalLost when a
//     different entry is applied at that index. If a new leader overwrites
//     or truncates its entry here, the proposal keeps waiting for its index
//     (which settles it either way) for two election timeouts at most,
//     then fails with ErrOutcomeUnknown rather than wait for an index that
//     may not come back soon. Committed
//     entries persisted by an earlier Ready are applied before this Ready's
//     fsync;
//  5. snapshots the state machine and compacts the log when
//     Config.SnapshotThreshold entries were applied since the last one;
//  6. acknowledges the Ready (Advance).
//
// # Caller's duties
//
//  1. Give every node a distinct ID and the same Peers list; give a durable
//     node its own DataDir, and reuse it on restart.
//  2. Hand New an empty state machine, also on restart: the Node rebuilds
//     it from the latest snapshot and the log, and would apply entries a
//     second time to a state machine that kept its own state.
//  3. Make StateMachine.Apply deterministic; it runs on the Node's goroutine,
//     so keep it quick, and never call the Node (Propose, Status, Close)
//     from a StateMachine method: the call would wait for itself.
//  4. Treat ErrStopped, ErrOutcomeUnknown and a context error from Propose
//     as "unknown outcome": the command may still be applied. Retry only
//     idempotent commands, or deduplicate them in the state machine.
//  5. Close the Node before its transport.
//
// # Concurrency
//
// Node and Client are safe for concurrent use; Propose blocks until the
// command is applied, fails, or its context ends. The StateMachine's methods
// are called from one goroutine, never concurrently. Close waits for the
// Node's goroutine to exit. A Node, Client or DiskStorage that its
// constructor did not create (a zero value or nil pointer) returns an error
// from every method (ErrClosed, ErrInvalidConfig), never panics or blocks.
//
// # Fault model
//
// Crash-stop and crash-recovery of a minority of nodes (a durable node
// restarts from DataDir and catches up from the log or by snapshot), message
// loss, duplication, delay and reordering, and network partitions: safety
// always holds, and progress resumes once a majority can communicate.
// Storage must honour fsync; a storage failure stops the Node (Status.Err)
// rather than risk acknowledging lost data. Nodes are trusted (no Byzantine
// faults). Membership is static in this release.
//
// # Durable layout
//
// DataDir holds wal/ (the log, in checksummed segment files of package
// internal/wal), hardstate (term and vote) and snapshot (the latest
// snapshot), the last two replaced atomically. The commit index is saved
// lazily: it is volatile state in the Raft paper (Figure 2). A changed term
// or vote is written before the entries of the same Ready, with a commit
// index that covers only entries already durable, so a crash between the
// two never makes a restarted node apply an entry it was about to
// overwrite. A crash between a received snapshot's file and the log reset
// is repaired on open: a log that does not continue the snapshot is
// discarded.
//
// # Tests
//
// The package's tests run in a few seconds. DISTKIT_SOAK=1 repeats the
// failover and restart scenarios many times.
package consensus
