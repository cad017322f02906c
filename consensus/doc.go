// Package consensus replicates a state machine with Raft: a Node runs the
// deterministic core of package consensus/raft over a transport, durable
// storage and real timers, and offers a plain blocking API.
//
// # Usage
//
//	cfg := consensus.DefaultConfig()
//	cfg.ID = "n1"
//	cfg.Peers = []transport.NodeID{"n1", "n2", "n3"} // the same on every member
//	cfg.ClusterName = "orders-prod"          // optional; the same on every member
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
//     Config.SnapshotThreshold entries were applied since the last one
//     (and, for a large state, enough command bytes: see Snapshots of a
//     large state). A
//     StateMachine that implements SnapshotViewer hands over a
//     point-in-time view, which a goroutine owned by the Node writes out
//     while the loop goes on (one snapshot in flight at most; the log is
//     compacted on the loop once the write is done, and a failed write only
//     skips that snapshot); any other StateMachine's Snapshot runs here, on
//     the loop, and a large one stalls replication and heartbeats for as
//     long as it takes;
//  6. acknowledges the Ready (Advance).
//
// # Cluster identity and bootstrap
//
// A cluster's ID (ClusterID) is derived from its sorted Peers and
// Config.ClusterName, as etcd derives its cluster ID from the initial
// members and the cluster token: members started independently with the
// same configuration agree on it without talking. Every Raft message a
// Node sends travels in a small envelope (format version, cluster ID, the
// Raft message), and a Node drops, and counts in Status, every message
// carrying another cluster's ID (DroppedForeign: a member started with
// another peer list or name, which would otherwise vote in this cluster or
// follow its leader and split it), from a node that is not a member
// (DroppedNonMember), or that it cannot decode (DroppedMalformed). A node
// started with only itself as peer is the sole member of a cluster of its
// own, never a member, let alone the leader, of the one the others form.
//
// Bootstrap is explicit. The first start with a DataDir takes the
// directory's lock (a second process pointed at it fails with ErrLocked and
// writes nothing there), then writes the cluster's identity (its ID, peers
// and name) to the file "cluster" in DataDir, checksummed and replaced
// atomically, before any Raft state. A restart whose Peers or
// ClusterName disagree with that file is refused with ErrClusterMismatch,
// whose message names both peer lists; the disk does not silently win, so
// that a mistyped configuration is seen. (Until
// membership changes exist, the peer list is fixed at bootstrap: to change
// it, bootstrap a new cluster.) A DataDir holding a log, hard state or
// snapshot but no readable identity file is refused with
// ErrNoClusterIdentity: which cluster that state belongs to is unknown.
// The recovery for a node that refuses to start is to wipe its DataDir and
// start it again with the cluster's Peers: it bootstraps an empty member,
// and the leader brings it up to date from its log or by snapshot. Do it
// for one node at a time, while the others have a working leader: a wiped
// node has forgotten its votes, and only the others' majority (whose
// check-quorum ignores vote requests while a leader is heard) keeps it
// from deciding an election alone.
// In-memory nodes derive the same ID and check messages the same way.
//
// # Caller's duties
//
//  1. Give every node a distinct ID and the same Peers list and
//     ClusterName; give a durable node its own DataDir, and reuse it (with
//     the same Peers) on restart.
//  2. Hand New an empty state machine, also on restart: the Node rebuilds
//     it from the latest snapshot and the log, and would apply entries a
//     second time to a state machine that kept its own state.
//  3. Make StateMachine.Apply deterministic; it runs on the Node's goroutine,
//     so keep it quick, and never call the Node (Propose, Status, Close)
//     from a StateMachine method: the call would wait for itself.
//  4. Treat ErrStopped, ErrOutcomeUnknown and a context error from Propose
//     as "unknown outcome": the command may still be applied. To retry
//     safely, wrap the state machine with WithSessions and propose through
//     a Client (see Exactly-once commands).
//  5. Close the Node before its transport.
//  6. A StateMachine that implements SnapshotViewer must return views that
//     do not change when later entries are applied or a snapshot is
//     restored (copy on write, a persistent structure, a database's
//     snapshot), since they are written concurrently with Apply and
//     Restore; WriteSnapshot must return soon after a write fails (Close
//     waits for it). A large state machine should implement it: its
//     snapshot then costs the loop only the time SnapshotView takes.
//
// # Exactly-once commands
//
// A command whose outcome is unknown may still be applied, so retrying it
// blindly can apply it twice, and a write is not idempotent once another
// can land in between. Wrap the state machine with WithSessions on every
// node, with the same SessionConfig. A Client then opens a client session
// through the log (Raft thesis §6.3), stamps every command with (session,
// sequence number) and retries an unknown outcome with the same stamp; the
// replicated session table applies each stamp at most once and answers a
// duplicate with the cached result, also after a snapshot restore. Plain
// commands (Node.Propose without a Client) pass through with no such
// guarantee, and a Client of nodes without sessions never retries an
// unknown outcome.
//
//	sm, err := consensus.WithSessions(myStateMachine, consensus.DefaultSessionConfig())
//	node, err := consensus.New(cfg, tr, sm)
//	cl, _ := consensus.NewClient(members, consensus.DefaultClientConfig()) // uses sessions
//
// Limits. Results are cached as bytes through SessionConfig.Codec
// (BasicResults, or JSONResults[T]) until the client acknowledges them. A
// session expires after SessionConfig.TTL without commands, measured by
// the leaders' clocks as stamped into the log (never a replica's own
// clock), or is evicted when SessionConfig.MaxSessions are open and
// another registers; a command for it is refused with ErrSessionExpired
// and not applied. The Client then proposes the command again in a new
// session if no earlier attempt of it can have been applied; otherwise
// the result went with the session and Propose returns ErrOutcomeUnknown
// (wrapping ErrSessionExpired): exactly-once holds within a session's
// lifetime, and past it the outcome is reported as unknown, never
// guessed. Keep the TTL far above any retry window and clocks roughly
// synchronized. Proposers that forward commands over the network carry
// answers with MarshalResult and UnmarshalResult (examples/kvstore does).
//
// Cost and flow control. Each command tells the table which results its
// client still waits for: every one from the oldest unanswered command of
// the session up. One slow command therefore keeps the results of all
// newer ones cached; once SessionConfig.MaxPending are, newer commands are
// refused with ErrTooManyPending (not applied). A Client with a *Node
// member (or a type embedding one: a local node beside Proposers that
// forward to remote ones, as in examples/kvstore) learns MaxPending from it
// and numbers at most that many commands past its oldest unanswered one,
// so none is refused as too many pending: more callers wait in Propose
// until the slow one returns. (A Proposer must therefore not propose
// through its own Client from inside its Propose: nested MaxPending deep,
// the inner call would wait for the outer one.) With only other Proposers
// it numbers up to 8192; a refused command is then held back and retried
// as soon as the slow one returns, and newer ones wait instead of
// proposing entries bound to be refused. So a Client shared by many
// goroutines moves at the pace of its slowest command over any window of
// MaxPending commands: give callers that may stall for long (a large
// AttemptTimeout, a slow network path) Clients of their own. Apart from
// those waits for room, the Client adds no goroutine, lock or timer per
// command: numbering is lock-free, and a *Node member is handed the
// stamped command (no second copy) together with the attempt's deadline.
// The node answers an attempt whose deadline passes itself, from a timer
// it shares among all of them ("attempt bound passed": ErrOutcomeUnknown
// and context.DeadlineExceeded), also while its loop is stuck (a disk that
// does not return from fsync, a state machine that blocks), so the caller
// waits on one channel and pays no context per attempt; a proposal whose
// deadline passed before the loop took it is never proposed. Callers whose
// context has no deadline share a few coarse deadlines (AttemptTimeout to
// 9/8 of it) and read no clock; other Proposers get a context per attempt.
//
// # Knowing who leads
//
// A fresh cluster has no leader for an election timeout or more; Propose
// fails with ErrNotLeader meanwhile. Call WaitLeader(ctx) after New (or
// use a Client, which retries). Observe(ctx) delivers LeaderInfo{Leader,
// Term, Role} at once and after every change. It coalesces (a slow reader
// sees the latest value only), never blocks the node, and closes when ctx
// ends or the node stops.
//
// # Reads without the log
//
// Read(ctx) returns once this node's state machine has applied everything
// acknowledged anywhere before the call; then read the state machine
// directly (linearizable, Raft thesis §6.4). It works on followers and
// learners, and retries across leader changes until ctx ends. Reads are
// batched: a Read joins the batch the node has not yet sent to the core;
// each batch costs one read index and one heartbeat round (shared with the
// other requests of that moment), and its readers are woken together once
// its index is applied. A Read that arrives while a batch is in flight
// waits for the next batch: the read index of the one in flight may
// predate writes acknowledged before this Read began.
//
// With Config.LeaseReads (which needs CheckQuorum) the leader answers
// without a round while its lease holds, and a Read on the leader does not
// even enter the node's loop: the loop publishes the commit index and the
// lease's end on the monotonic clock, the Read checks the lease against
// that clock, captures the commit index and waits until it is applied. The
// lease lasts (ElectionTicks − LeaseDriftTicks) × TickInterval from the
// time the loop took the tick during which the confirming heartbeat round
// was started, which is no later than its sending (§6.4.1; never from
// when the acknowledgements arrived), and it is also bounded by the
// leader's own tick count; it is withdrawn before a leadership transfer's
// MsgTimeoutNow is sent. A leader without a valid lease (expired, a
// stalled loop, a transfer under way) falls back to ReadIndex. The
// assumption: a voter that acknowledged a heartbeat refuses to vote for
// ElectionTicks of its ticks after receiving it, and those ticks take at
// least (ElectionTicks − LeaseDriftTicks) × TickInterval of the leader's
// monotonic time: clock rates differ by less than LeaseDriftTicks per
// election timeout, and no voter's ticks run fast. A stepped wall clock
// does no harm (only monotonic time is used); a VM paused between the
// lease check and the state machine read can still serve one read late,
// as with any lease. Followers' reads always use ReadIndex.

// # Leadership transfer
//
// TransferLeadership(ctx, to) (to "" = the most up-to-date voter) stops
// proposals on the leader, brings the target up to date and makes it
// campaign at once (§3.10). It returns nil once another node leads, or
// ErrTransferAborted after an election timeout, after which the old leader
// accepts proposals again. For rolling restarts use Shutdown(ctx) instead
// of Close: a leader hands over first, so the cluster sees no election
// timeout.
//
// # Membership
//
// ChangeMembership (and AddVoter, AddLearner, Promote, Remove) runs on the
// leader and returns once the change is applied and any joint
// configuration (§4.3) has been left. ErrConfChangeInProgress means
// another change is in flight or a joint configuration is in force; a
// newly elected leader's first commit in its term is waited for inside
// ChangeMembership (bounded by ctx), so callers need no retry loop for
// it. Grow with AddAndPromote, which adds a learner and promotes it only
// once it has answered (it holds the entry that added it) and caught up.
// Removing the leader works: it steps down after the change
// commits. The configuration lives in snapshots (DiskStorage format
// version 2) and is restored with them. Joining: add the node first, make
// it reachable on the transport, then start it with Join=true and the
// founders' Peers and ClusterName on every start (so its cluster ID is the
// founders'). Founders keep their original Peers forever.
//
// # Snapshots of a large state
//
// Writing a snapshot costs the size of the state, so a policy that counts
// only entries (SnapshotThreshold) would rewrite a 100 MB state every few
// thousand commands of 100 bytes: more disk bandwidth than the disk has,
// taken from the log's fsyncs, which every commit waits for. Two settings
// bound that cost. Config.SnapshotLogPercent (default 25) defers a
// snapshot SnapshotThreshold calls for until the command bytes applied
// since the last snapshot started reach that percentage of its size: a
// node then writes at most 100/SnapshotLogPercent bytes of snapshot per
// byte of commands (4 with the default), whatever the state's size, and
// replays at most that share of the state's size from the log after a
// restart. A small state, whose snapshot is smaller than
// SnapshotThreshold commands, is still snapshotted every SnapshotThreshold
// entries, and so is a node's first snapshot when it started without one
// (the size is not known before; a node restarted from a snapshot knows
// that one's size). Config.SnapshotWriteRate (default 64 MiB/s) paces the
// writer a SnapshotViewer's view writes to, in slices of 256 KiB, so that
// the snapshot goroutine leaves the disk and the CPU to the log and the
// loop; a snapshot of S bytes takes at least S/SnapshotWriteRate. At most
// one snapshot is in flight: a snapshot due while one is written is
// skipped, and the next is considered SnapshotThreshold entries later. Set
// SnapshotLogPercent to 0 to snapshot every SnapshotThreshold entries (or
// as soon as the previous snapshot is written).
//
// # Observability
//
// Status reports, besides role, term and indexes: on a leader, each
// member's progress (Match, Next, Lag = last index − Match, replication
// state, learner or voter, ticks since last heard); the last Save's
// duration and histograms of Save latency (every write of entries or of a
// new term or vote: one fsync) and of apply latency (per batch of
// committed entries), in 16 log-scale buckets from 50µs to 1.6s with
// cumulative counts and a sum; snapshots taken, sent (transfers started)
// and installed; and dropped messages by reason (DropReason). Status is
// served by the Node's goroutine, so it is consistent and race-free; call
// it to scrape, not per request. Config.Metrics receives the same events
// as they happen (nil costs one nil check per event); its methods run on
// the Node's goroutine and must be fast and non-blocking. examples/kvstore
// exposes Status at /metrics in the Prometheus text format.
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
// Storage must honour fsync; a failure to write or fsync the log, the hard
// state or the snapshot stops the Node (Status.Err) rather than risk
// acknowledging lost data. A failure on a snapshot not yet in place (one
// written in the background, or a chunk received from the leader) only
// abandons that snapshot: nothing durable depends on it. Nodes are trusted
// (no Byzantine faults). Membership changes through the log (see
// Membership below).
//
// # Durable layout
//
// DataDir holds cluster (the cluster identity, written once at bootstrap),
// wal/ (the log, in checksummed segment files of package internal/wal),
// hardstate (term and vote) and snapshot (the latest snapshot), the last
// two replaced atomically. The commit index is saved
// lazily: it is volatile state in the Raft paper (Figure 2). A changed term
// or vote is written before the entries of the same Ready, with a commit
// index that covers only entries already durable, so a crash between the
// two never makes a restarted node apply an entry it was about to
// overwrite. A crash between a received snapshot's file and the log reset
// is repaired on open: a log that does not continue the snapshot is
// discarded.
//
// # How snapshots travel
//
// With a DataDir, a snapshot's bytes live in the snapshot file only: the
// storage keeps its metadata in memory, and the state machine restores from
// a reader over the file, whose checksum is verified by one streaming pass
// before the first byte is handed over (a damaged file is refused with
// ErrCorrupt, never restored in part). To bring a follower up to date, the
// leader's core sends a MsgSnap holding only the metadata; the runtime
// holds it back and streams the snapshot file over the transport (service
// Config.Service+"/snapshot") in chunks of Config.SnapshotChunkBytes (1 MiB
// by default), each checksummed, at most four unacknowledged: a transfer
// costs each end a few chunks of memory, whatever the snapshot's size, and
// no message is larger than a chunk and its header. The follower writes the
// chunks in order to a temporary file, fsyncing each before acknowledging
// it, and refuses a chunk out of order, of another transfer or of an older
// leader term (a new leader or a restarted transfer starts over from the
// first chunk). A chunk it cannot write or fsync is refused and the
// partial file removed; the node goes on, and the leader starts over. Once
// every byte is acknowledged the leader sends the MsgSnap itself; the
// follower verifies the whole file against it and only then hands it to
// its core, which installs it: the file is renamed into place and the
// directory fsynced before the log is reset. A power cut at any
// point leaves the old snapshot or the new one, whole; a temporary file
// left behind is removed on the next open. A transfer that fails (refused,
// unacknowledged for ten election timeouts and at least 5 s, or the
// transport failed) is reported to the core (ReportSnapshot), which starts
// over. Without a DataDir, snapshots stay in memory and travel inside the
// core's messages.
//
// # Tests
//
// The package's tests run in a few seconds. Besides scenario tests on
// memnet and TCP, the real Node runs inside testing/synctest bubbles
// (virtual time) over memnet, where a run of seconds takes milliseconds:
//
//   - TestReadyOrder and TestPowerLossCrash check, at every message a node
//     sends and every entry it applies, the order of the Ready duties: a
//     message's term, a granted vote and the entries an acknowledgement
//     covers are saved before the message is sent, and an entry is in the
//     node's saved log before it is applied. TestPowerLossCrash also cuts a
//     node's power at the k-th next storage write or send (seeded) and
//     restarts it from exactly what was saved.
//   - TestRandomCrashRestart runs the real DiskStorage and WAL on a
//     vfs.CrashFS per node: a power cut fails the node's k-th next fsync
//     (the node must stop, not go on) and then crashes its file system,
//     losing or tearing everything not fsynced (file data and directory
//     entries alike); the node must restart from what survived. No
//     acknowledged write may be lost and no node may vote twice in a term.
//   - TestMisconfiguredPeersDoNotSplitCluster is the split of a member
//     started with another peer list; TestSnapshotDoesNotStallNode keeps a
//     cluster committing, with no leader change, while every node's
//     snapshot is blocked.
//
// Failing runs print their seed; DISTKIT_SEED replays one, and
// DISTKIT_SOAK=1 runs many seeds and repeats the failover and restart
// scenarios. A run that livelocks (virtual time standing still) fails
// after a real-time budget instead of hanging. The rules these tests hold
// are listed, with the deliberate breakage each catches, in
// internal/mutate/testdata/consensus-node.mut.
package consensus
