// Package raft is a deterministic implementation of the Raft consensus
// algorithm (Ongaro and Ousterhout, "In Search of an Understandable
// Consensus Algorithm", 2014, and Ongaro's thesis, 2014): leader election
// with pre-vote and check-quorum, log replication with pipelining and flow
// control, snapshots sent in chunks, membership changes with learners and
// joint consensus, leadership transfer, and ReadIndex and lease reads.
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
//     applying loses nothing. EntryConfChange entries need no action: the
//     core applied the membership change when the entry was appended (see
//     Membership changes); decode one with ConfChangeEntry.UnmarshalBinary
//     to learn that a change you proposed is now committed.
//  8. If SnapshotDue is set, snapshot the state machine as of the last
//     applied index and compact the log (MemoryStorage.CreateSnapshot then
//     Compact, keeping some entries for followers that are slightly behind).
//     Record MembershipAt(index) as the snapshot's membership: the latest
//     configuration (Status().Membership) may belong to a later,
//     uncommitted entry.
//  9. For each of ReadStates, serve the read it answers once the state
//     machine has applied ReadState.Index (perhaps in a later Ready); see
//     Reads.
//  10. Call Advance(rd).
//
// Between Ready and Advance the caller may keep calling Tick, Step and
// Propose (for example while an fsync runs); their output waits for the
// next Ready. HasReady reports false until Advance.
//
// After a restart, create the RawNode with the same Storage (holding what
// was made durable) and Config.Applied set to the index the state machine
// reflects; committed entries after it are delivered again.
//
// # Membership changes
//
// A cluster is bootstrapped by starting every initial voter with the same
// Config.Peers. A node added later is first added through the leader
// (ProposeConfChange with ConfAddLearner, or ConfAddVoter), then started
// with Config.Join and no Peers: it learns the membership from the
// leader's log or snapshot and campaigns only once it is a voter. Growing
// safely means adding a learner, waiting until the leader reports its match
// index (Status().Progress) close to the leader's last index, then
// promoting it (ConfPromote): a new voter with an empty log can otherwise
// stall commits while it catches up.
//
// A ConfChange may hold any set of additions, promotions and removals.
// When at most one voter changes it takes effect directly (thesis §4.2);
// otherwise the cluster goes through the joint configuration of thesis §4.3
// (Membership.OutgoingVoters set), in which elections and commits need
// majorities of both the old and the new voters, and the leader leaves it
// by itself once it is committed (or, with ExplicitLeave, when the
// application proposes ConfChange{LeaveJoint: true}). The core applies a
// configuration as soon as its entry is appended (thesis §4.1) and rolls it
// back if the entry is truncated; it lives in snapshots and is rebuilt from
// the snapshot plus the log after it on restart. One change at a time: a
// change is refused with ErrConfChangeInProgress while another is
// uncommitted or joint, and until a new leader has committed an entry of
// its term (the correction Ongaro published in 2015 for single-server
// changes across leader changes).
//
// Learners receive the log and snapshots but never vote, never count for a
// commit, never campaign. A leader that removes itself keeps replicating,
// without counting itself, until the change commits; it then sends
// MsgTimeoutNow to the most up-to-date voter and steps down. A removed node
// receives nothing more (not even its removal), stops campaigning once it
// holds its removal, and cannot disrupt the cluster before: its log lacks
// the change, so pre-vote fails, and with check-quorum the voters that hear
// from the leader ignore its vote requests (thesis §4.2.3).
//
// Messages from nodes outside this node's configuration are accepted
// (views of the membership lag: a joining node hears from a leader it has
// no entry for). Only members' answers count for a leader and only voters'
// votes for a candidate. Keeping other clusters out is the runtime's job
// (cluster IDs). A durable storage must persist the whole Membership of a
// snapshot (Voters, Learners, OutgoingVoters, AutoLeave);
// Membership.AppendBinary and UnmarshalBinary are an encoding for it.
//
// # Leadership transfer
//
// TransferLeadership(to) (thesis §3.10) makes the leader refuse proposals
// (ErrProposalDropped with ErrTransferInProgress), bring the target's log up
// to date, and send it MsgTimeoutNow; the target campaigns at once, without
// a pre-vote, and the voters grant it despite their check-quorum lease
// because the campaign is marked (Message.Transfer). Only the current
// leader's MsgTimeoutNow is honoured. With to == "" the most up-to-date
// voter is chosen. If the target has not taken over within ElectionTicks
// ticks the leader gives up and accepts proposals again. The caller learns
// the outcome from SoftState (another leader) or Status().LeadTransferee
// (empty again while this node still leads: aborted).
//
// # Reads
//
// ReadIndex(ctx) gives a linearizable read without a log write (thesis
// §6.4). The leader records its commit index (once it has committed an
// entry of its own term), confirms it is still the leader with one round of
// heartbeats (every request made before the next Ready shares the round),
// and hands back a ReadState{Index, Context} in Ready. A follower forwards
// the request to the leader (MsgReadIndex) and gets the index back. The
// caller's duty: wait until the state machine has applied Index, then read
// it; the result reflects every write acknowledged before ReadIndex was
// called. Requests are dropped, unanswered, when leadership changes: time
// them out and retry with a new ctx.
//
// With Config.LeaseReads (which requires CheckQuorum, on every node) a
// leader answers at once while its lease holds (thesis §6.4.1): a voter that
// acknowledged a heartbeat refuses to vote for another candidate for
// ElectionTicks of its own ticks after receiving it, so for ElectionTicks -
// LeaseDriftTicks of the leader's ticks after sending it no other leader
// can be elected. That assumes bounded clock drift: over an election
// timeout, no node's ticks run more than LeaseDriftTicks ticks faster or
// slower than another's (a paused VM or a stalled ticker breaks it), and a
// restarted node refuses votes for ElectionTicks ticks after it starts.
// ReadIndex without leases assumes nothing about clocks.
//
// # Timeouts and slow responses
//
// Elections need the election timeout (ElectionTicks times the tick
// interval) well above the usual round trip, say ten times (thesis §5.6:
// broadcastTime << electionTimeout). Check-quorum counts any message of the
// leader's term heard from a member within the last CheckQuorumTicks ticks
// (ElectionTicks by default), however late, and a new leader gets a full
// window before its first check. If responses may take longer than an
// election timeout while requests travel fast (a congested return path,
// responses queued behind large appends), set CheckQuorumTicks to at least
// the worst response latency plus an election timeout; otherwise leaders
// step down again and again though every node is up. Votes that arrive
// after a candidate timed out still count while it has not moved to a
// higher term.
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
// needs a majority of voters (of both halves of a joint configuration) up
// and connected with message delays well under the election timeout (see
// Timeouts and slow responses). Lease reads alone also assume bounded clock
// drift (see Reads).
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
// with porcupine, and liveness once the faults stop. Further simulations
// churn the membership (learners added and promoted, voters removed and
// replaced, the leader removed, 3 -> 5 -> 3 voters, every member replaced
// one by one) with leadership transfers and ReadIndex reads under the same
// faults, and run a cluster whose responses mostly take longer than the
// election timeout. A few hundred seeds
// run by default; DISTKIT_SOAK=1 runs fifty times as many from a random
// base, and DISTKIT_SEED=N replays the seed a failure printed. A
// linearizability failure also writes porcupine's HTML visualization and
// prints its path.
package raft
