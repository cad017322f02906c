// Package election elects a leader among a group of nodes. One small
// interface, Elector, has three implementations:
//
//   - Bully (Garcia-Molina 1982): the highest-priority live node leads.
//     NewBully runs it over a transport; BullyCore is its deterministic core.
//   - Ring (Le Lann 1977, Chang and Roberts 1979): an election token goes
//     round a logical ring and carries the highest candidate. NewRing runs
//     it; RingCore is its core.
//   - Raft: NewRaft reports the leader of a consensus.Node (leader = Raft
//     leader, epoch = Raft term). It runs no protocol of its own.
//
// A fourth, lease-based elector lives in package lock.
//
// # Usage
//
//	cfg := election.DefaultConfig()
//	cfg.ID = "n2"
//	cfg.Members = []election.Member{{ID: "n1", Priority: 10}, {ID: "n2", Priority: 20}, {ID: "n3", Priority: 30}}
//	store, err := election.OpenFileEpochStore("/var/lib/app/election.epoch", election.EpochStoreOptions{})
//	if err != nil { … } // ErrLocked: another process holds the file
//	defer store.Close()
//	cfg.Store = store // nil: epochs restart from zero
//	el, err := election.NewBully(tr, cfg) // or NewRing
//	if err != nil { … }
//	defer el.Close()
//
//	go func() {
//		for l := range el.Observe(ctx) { log.Printf("leader %s, epoch %d", l.ID, l.Epoch) }
//	}()
//	lead, err := el.Campaign(ctx) // blocks until this node leads
//	if err != nil { … }
//	doLeaderWork(ctx, lead.Epoch)  // fence every action with the epoch
//
// # Two leaders at once, and the epoch
//
// No elector can stop two nodes from acting as leader at the same instant.
// A leader that is partitioned away, paused by the garbage collector or
// simply slow does not know it has been replaced until a message tells
// it, and in the meantime it still believes it leads. Bully and Ring
// even elect one leader per side of a partition, on purpose (see below).
// What an elector can give is an epoch that only grows: every leadership
// has a larger epoch than every earlier one. Make that harmless by
// fencing: the leader sends its epoch (and ID) with every action, and
// whatever it acts on keeps the highest epoch it has seen, with the leader
// that used it, and refuses anything lower:
//
//	// on the storage or service the leader writes to
//	if req.Epoch < s.holder.Epoch || (req.Epoch == s.holder.Epoch && req.Leader != s.holder.ID) {
//		return ErrStaleLeader
//	}
//	s.holder = election.Leader{ID: req.Leader, Epoch: req.Epoch}
//
// The old leader's late writes then fail instead of overwriting the new
// leader's. The ID matters for Bully and Ring: the two sides of a
// partition can each elect a leader with the same epoch, and the check
// lets only the first to reach the resource act in that epoch. (Raft
// needs no ID check, one leader per term; nor do lock fencing tokens.)
//
// # Bully
//
// Priorities are explicit (Member.Priority) and must be distinct, so the
// order never depends on how node IDs compare as strings. A node that
// wants an election sends ELECTION to every higher node and waits
// ElectionTimeout. A higher node that is alive answers OK and holds an
// election of its own; the asker then waits CoordinatorTimeout for the
// COORDINATOR message and starts over if it does not come (the OK'ing
// node may have crashed since). A node that hears no OK takes the next
// epoch and sends COORDINATOR to every other node, lower and higher: a
// live higher node that missed the ELECTION answers a COORDINATOR from
// below by holding an election, which it wins: a recovering higher node
// takes over ("bullies").
//
// # Ring
//
// Members sit on a ring in ascending priority order. A node starting an
// election sends a token (round, itself) to its successor: the next member
// up the ring that the failure detector does not hold Failed, so the ring
// routes around crashed nodes. Each node forwards the larger of the
// token's candidate and itself, and discards a token that brings nothing
// larger than what it already forwarded in that round (Chang and Roberts'
// rule, which merges concurrent elections into one). A node that receives
// its own candidacy back has the highest priority on the ring: it takes
// epoch = round and sends ELECTED, which each node passes on once, so it
// goes round exactly once. A participant that sees no result within
// RingTimeout (a token lost with a message) starts a newer round; rounds
// are epochs, so a token or result from an older round is recognised and
// dropped. A node whose last ring message went to a member the detector
// then declares Failed sends it again to the next successor at once,
// rather than wait RingTimeout for a token that died with that member.
//
// # What both do beyond the papers
//
// Failure detection: the leader's failure is noticed through package
// detector. Each core embeds a detector.Membership (heartbeats, φ accrual,
// indirect probes), whose messages travel on the elector's own service,
// wrapped in the elector's codec; its Failed verdict on the leader starts
// an election, and the Ring skips members it holds Failed. A message from
// the leader itself outweighs the verdict (the leader is evidently
// alive), and a leader the detector still holds Failed that then stays
// silent for about one detection period is suspected again.
//
// Views and epochs: every message, heartbeats included, carries the
// sender's view (leader, epoch), and views merge by a total order: higher
// epoch first; within one epoch "no leader" (a resignation) above any
// leader; then the higher-priority leader. So a late or duplicate
// COORDINATOR or ELECTED from an older election is ignored, a node that
// missed the result learns it from the next heartbeat, and the views of
// all nodes converge.
//
// Durable epochs: each core reports in Ready.State the highest epoch it
// has seen or campaigned for (a Ring round counts), and its driver makes
// that durable before sending the Ready's messages, as Raft persists its
// HardState: no node announces or campaigns with an epoch a crash could
// make it forget. A restarted node is built from that State: it reports
// the epoch with no leader known yet (a view that ranks below every leader
// of its epoch, so it disturbs no one) and, after BootDelay, campaigns
// above it. So epochs never go backwards at a node, across restarts too,
// and a restarted leader never reuses an epoch it may have fenced with:
// a peer that has not yet noticed the restart and still names it leader
// of its old epoch is heard as "leader unknown" in that epoch, because
// that leadership ended with the previous process; the node leads again
// only by winning a higher epoch (TestRestartedNodeDoesNotResumeItsOldLeadership,
// and TestPowerLossEpochs, which runs the runtime with power cuts and
// site-wide outages on a fault file system).
// The runtime Node keeps the epoch in Config.Store: OpenFileEpochStore
// locks the file against every other opener until Close and writes a
// checksummed record atomically (temporary file, fsync, rename, fsync of
// the directory), and a damaged file is an error wrapping
// ErrCorruptEpoch, never a silent 0. With a nil Store the epoch lives in
// memory and restarts from zero with the process; the node then relearns
// the current epoch from the others' heartbeats, which holds only while
// one of them remembers it. A Node whose Store fails to save stops (its
// Campaign and Resign return ErrStore), as a crashed node would.
// TestPersistBeforeSend checks the contract on the cores (no message or
// view above the saved epoch, across crashes); the simulation tests check
// at every boot and view change that no node's epoch goes back across its
// restarts, and TestRestartKeepsEpoch that a leader restarted alone wins
// an epoch above the one it held.
//
// Candidacy: every node stands for election from the start. Resign
// withdraws (a leader announces "no leader" for its epoch, and the others
// elect the next); when it returns, Leader and Observe no longer name the
// node. Campaign stands again and waits to lead. A node that does not
// stand answers no ELECTION and puts itself on no token.
//
// # Partitions
//
// Bully and Ring need no majority. Each side of a partition elects its own
// highest live node, so there are two leaders until the partition heals
// (their epochs differ or, if equal, the order above ranks them); then
// views merge and the highest node of the whole group leads, with a new
// epoch. Raft elects at most one leader, and only on a side with a
// majority; the minority side has none (its nodes keep reporting the old
// leader and term until they hear a newer one, so fence with the term).
// TestPartitionElectsOnePerSide checks the first behaviour (each side
// elects its highest node, and the whole group converges after the heal),
// TestRaftElectorFailover the second (the majority side elects a new
// leader in a higher term; the isolated old leader reports none above it).
//
// # Cost, measured
//
// Messages per election on a quiet simulated network (1-5 ms latency, no
// loss), not counting heartbeats, from TestMessageComplexity
// (DISTKIT_ELECTION_TABLE=1 go test -run TestMessageComplexity -v
// ./election): median of 9 seeds, and the simulated time from the start
// (or from the leader's crash) until every node names the new leader.
// Detection dominates after a crash: about 0.7 s with DefaultConfig's
// 100 ms heartbeats. BenchmarkBullyElection and BenchmarkRingElection run
// the "all start at once" rows through the same measurement (their
// messages/op for n=5 are the 24 and 14 below; ns/op is the CPU time of
// simulating the whole op: building the group, its boot and the election).
//
//	                                      n=3           n=5           n=7           n=9
//	bully, best start (highest node)      2 (4ms)       4 (5ms)       6 (6ms)       8 (6ms)
//	bully, worst start (lowest node)      8 (7ms)       24 (8ms)      48 (8ms)      80 (7ms)
//	bully, all start at once              8 (4ms)       24 (5ms)      48 (5ms)      80 (5ms)
//	bully, leader crashes                 6 (818ms)     20 (840ms)    42 (820ms)    72 (830ms)
//	ring, single starter (lowest node)    8 (21ms)      14 (37ms)     20 (56ms)     26 (68ms)
//	ring, all start at once               8 (14ms)      14 (28ms)     20 (37ms)     26 (50ms)
//	ring, leader crashes                  6 (714ms)     12 (751ms)    18 (741ms)    24 (756ms)
//
// Theory, for comparison. Bully's best case is n-1 messages (the highest
// node announces); its worst, when the lowest node starts and every node
// joins in, is n(n-1)/2 ELECTIONs, as many OKs and n-1 COORDINATORs:
// O(n²), exactly n(n-1)+n-1 above. Chang–Roberts costs 3n-1 with one
// starter (n-1 hops up to the highest, n round to it again, n ELECTED)
// and O(n log n) on average, O(n²) at worst, with all starting; on a ring
// ordered by priority, as here, concurrent starters are swallowed after
// one hop, so they cost the same 3n-1. Ring trades messages for latency:
// its election is sequential, about 2n hops, where Bully's is two round
// trips. After a crash, Bully's count grows with how many nodes notice
// first; the Ring's stays linear.
//
// # Driving a core yourself
//
// BullyCore and RingCore are deterministic (no goroutines, no I/O, no
// clock, randomness only from the seed given), for the simulator (package
// electionsim adapts them to package sim) or your own event loop. The
// driver must, from one goroutine at a time:
//
//  1. call Tick(now) no later than NextTick();
//  2. pass every message received on Config.Service to Receive;
//  3. after each call, take Ready; if Ready.State is not zero, make it
//     durable (EpochStore.Save, or EncodeEpoch on your own medium) first;
//  4. then send its Messages best effort (loss is tolerated), and act on
//     Ready.Leader;
//  5. after a crash, build a new core from the last durable State.
//
// # Concurrency
//
// Node and RaftElector are safe for concurrent use. A Node owns one
// goroutine (the core's loop) and a RaftElector one (it follows the
// consensus node's leadership notifications, Node.Observe, and polls the
// node's Status every PollInterval only for a node that offers none);
// Close stops it and waits. Observe never blocks an
// elector: each observer's channel holds the newest unread view. The
// cores are not safe for concurrent use.
//
// # Fault model
//
// Crash-stop and crash-recover nodes (stable storage holds one epoch per
// node; without it, see "Durable epochs" above), and a
// network that loses, duplicates, delays and reorders messages and
// partitions and heals. After faults stop, all live nodes agree on the
// highest-priority live candidate within a bound (a few seconds with
// DefaultConfig: detection plus a few timeouts); before that, there may be
// several leaders, each with its epoch. Byzantine nodes are out of scope.
// RaftElector.Resign on the leader hands Raft leadership to the most
// up-to-date voter (Node.TransferLeadership, thesis §3.10); only a node
// that cannot transfer makes it return ErrCannotResign.
//
// FileEpochStore's Save survives power loss: TestFileEpochStorePowerLoss
// runs it on vfs.CrashFS (package internal/vfs: unsynced data lost or
// torn, directory entries durable only after a directory fsync, fsyncs
// that fail on demand) and checks that Load after a power cut returns at
// least the last acknowledged epoch. OpenFileEpochStore locks the file
// (path+".lock") until Close: a second opener gets ErrLocked.
//
// # Tests
//
// The simulation tests run a few seeds of each scenario by default;
// DISTKIT_SOAK=1 runs 50 times as many, and DISTKIT_SEED=N replays one.
package election
