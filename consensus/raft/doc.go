// Package raft is a deterministic implementation of the Raft consensus
// algorithm (Ongaro and Ousterhout, "In Search of an Understandable
// Consensus Algorithm", 2014, and Ongaro's thesis, 2014): leader election
// with pre-vote and check-quorum, log replication with pipelining and flow
// control, and snapshots sent in chunks.
//
// The core, RawNode, is a pure state machine: no goroutines, no I/O, no
// clock and only seeded randomness. Time passes when the caller calls Tick;
// messages arrive when the caller calls Step; the core's decisions come out
// of Ready. That makes every run replayable, which the simulation tests use
// to check safety over thousands of faulty schedules. Package consensus
// wraps RawNode in a runtime (goroutine, timers, transport, durable storage)
// with a blocking Propose; use this package directly to embed Raft in your
// own event loop or simulator.
//
// # Usage
//
//	storage := raft.NewMemoryStorage()
//	cfg := raft.DefaultConfig()
//	cfg.ID, cfg.Peers, cfg.Storage = "a", []transport.NodeID{"a", "b", "c"}, storage
//	node, err := raft.NewRawNode(cfg)
//	if err != nil { ... }
//	for {
//		select {
//		case <-ticker.C:
//			node.Tick()
//		case m := <-received:
//			_ = node.Step(m) // malformed messages are reported and dropped
//		case cmd := <-proposals:
//			_, _, err := node.Propose(cmd) // ErrNotLeader carries the leader
//		}
//		for node.HasReady() {
//			rd, err := node.Ready()
//			if err != nil { ... } // storage failure: stop the node
//			// ... the caller's duties below ...
//			node.Advance(rd)
//		}
//	}
//
// # The caller's duties for each Ready
//
// Handle a Ready in this order, then call Advance before the next Ready:
//
//  1. If Snapshot is non-nil, persist it, replacing the log and the old
//     snapshot (MemoryStorage.ApplySnapshot).
//  2. Append Entries to the log, first discarding any stored entries from
//     Entries[0].Index on (MemoryStorage.Append does both).
//  3. Persist HardState if it is not the zero value.
//  4. If MustSync is set, make 1-3 durable (fsync) before going on. A vote
//     or an acknowledgement sent before it is durable can be forgotten by a
//     crash, and Raft's safety argument fails (§5.2, Figure 2: "updated on
//     stable storage before responding to RPCs"). One sync covers the whole
//     Ready (group commit).
//  5. Send Messages. Only now: they promise what 1-4 made durable. Loss is
//     fine; the protocol retries. Encode them before Advance: the core
//     reuses the Messages array afterwards.
//     One exception makes a leader faster (thesis §10.2.1): unless this
//     Ready changes the term or the vote (HardState.Term or Vote differ
//     from what is durable), its MsgApp, MsgSnap and MsgHeartbeat messages
//     may be sent before step 4, so that the followers' fsyncs overlap the
//     leader's own. The core counts the leader's own copy of an entry
//     towards a quorum only after Advance says it is durable.
//  6. If Snapshot is non-nil, restore the state machine from it.
//  7. Apply CommittedEntries in order, skipping EntryNoop entries. They are
//     persisted (by this or an earlier Ready), so a crash right after
//     applying loses nothing.
//  8. If SnapshotDue is set, snapshot the state machine as of the last
//     applied index and compact the log (MemoryStorage.CreateSnapshot then
//     Compact, keeping some entries for followers that are slightly behind).
//  9. Call Advance(rd).
//
// Between Ready and Advance the caller may keep calling Tick, Step and
// Propose (for example while an fsync runs); their output waits for the
// next Ready. HasReady reports false until Advance.
//
// After a restart, create the RawNode with the same Storage (holding what
// was made durable) and Config.Applied set to the index the state machine
// reflects; committed entries after it are delivered again.
//
// # Scope
//
// Membership is static: the voters come from Config.Peers (or a snapshot)
// and messages from other nodes are refused. Membership changes, leadership
// transfer and ReadIndex reads are reserved (EntryConfChange,
// MsgTimeoutNow, MsgReadIndex) for a later release; until then a
// linearizable read goes through the log like a write.
//
// # Concurrency
//
// A RawNode is not safe for concurrent use; one goroutine drives it.
// MemoryStorage is safe for concurrent use, so a runtime may read it from
// other goroutines (for example to serve snapshots).
//
// # Fault model
//
// Crash-recovery nodes with stable storage (what was synced survives, the
// rest may be lost); an asynchronous network that loses, duplicates,
// delays and reorders messages and may partition; no Byzantine behaviour
// (messages are not forged, storage is not corrupted silently: a durable
// storage checksums its records). Safety never depends on timing. Liveness
// needs a majority of voters up and connected with message delays well
// under the election timeout.
//
// # Testing
//
// The tests tie each rule to its section of the paper (election
// restriction, Figures 7 and 8, leader completeness, pre-vote,
// check-quorum), and a simulation on package sim runs 3- and 5-node
// clusters through partitions, message loss, duplication and reordering,
// and crash-restarts that lose unsynced writes (with torn tails), checking
// Election Safety, Log Matching, Leader Completeness and State Machine
// Safety after every event, linearizability of a replicated key-value store
// with porcupine, and liveness once the faults stop. A few hundred seeds
// run by default; DISTKIT_SOAK=1 runs fifty times as many from a random
// base, and DISTKIT_SEED=N replays the seed a failure printed. A
// linearizability failure also writes porcupine's HTML visualization and
// prints its path.
package raft
