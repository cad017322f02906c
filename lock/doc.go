// Package lock provides lease-based distributed locks with fencing tokens,
// a replicated lock service, and a leader election built on them.
//
// A client opens a Session: one lease at a lock service, renewed by a
// keepalive goroutine about every third of its TTL. Locks are held under
// the session's lease: Lock waits its turn in the lock's FIFO queue and
// returns a Grant carrying a fencing token; Unlock releases it; if the
// lease runs out, the service frees the session's locks and hands them on.
//
//	local, _ := lock.NewLocal(lock.DefaultLocalConfig()) // or a Remote: see below
//	defer local.Close()
//	s, err := lock.NewSession(ctx, local, lock.DefaultSessionConfig())
//	if err != nil { … }
//	defer s.Close()
//	g, err := s.Lock(ctx, "inventory")
//	if err != nil { … }
//	err = store.Write(s.Context(), g.Token, data) // the store checks the token with a Fence
//	s.Unlock(ctx, g)
//
// # Pieces
//
//   - Table is the deterministic core: sessions, leases, named locks, FIFO
//     waiters, the token counter, owner-checked release, TryLock and an
//     optional lock-delay. It takes the time as an argument and does no
//     I/O; Snapshot and Restore persist it.
//   - Local serves a Table in this process (a single service instance,
//     tests). Server is a member of a replicated lock service: the Table
//     is the state machine of a consensus.Node, and clients reach it over
//     a transport.RPC through Remote. Both implement Service, the one-method
//     interface a Session talks to.
//   - Session is the client. Fence is the resource-side token check.
//     Elector implements election.Elector on top of a lock.
//
// # Why fencing tokens
//
// A lease cannot by itself stop two clients from acting under the same
// lock: a client can check that it holds the lock, then stall (a GC pause,
// page faults, a slow network write) past its lease, while the service
// gives the lock to someone else. When it resumes it acts on a belief that
// is no longer true, and no check it could make beforehand prevents that
// (Kleppmann, "How to do distributed locking", 2016). So every grant
// carries a token, larger than every earlier grant's of the same lock (one
// counter for the whole table, persisted with it, so tokens keep rising
// across restarts and leader changes), and the resource rejects a token
// lower than the highest it has accepted (Chubby's sequencers, Burrows
// 2006 §2.4). TestKleppmannPausedClientIsFenced plays exactly that
// scenario.
//
// # The lease-lost bound
//
// The service expires a lease one TTL after it processed the last renewal,
// by its own clock. The client cannot observe that instant, but it knows
// it comes after it sent the renewal. So it trusts its lease until
//
//	(send time of the last acknowledged keepalive) + TTL − SafetyMargin
//
// measured on its own monotonic clock from before the request left
// (Session.Expiry), and declares the lease lost the moment that passes
// (Session.Done closes, Session.Context is cancelled), before the service
// can have expired it. The margin covers the difference between the two
// clocks' rates; their offsets never matter, since each side only measures
// durations on its own clock.
//
// What the lease tolerates, exactly: any offset between the clocks, and
// any client clock running faster than the service's; a client clock
// running slower than the service's by at most the fraction
// SafetyMargin/TTL (10% with the default margin of TTL/10), i.e. safety
// holds while
//
//	client clock rate ≥ (1 − SafetyMargin/TTL) × service clock rate
//
// Beyond that the client's trust (TTL − margin on its slow clock) can
// outlast the service's lease (TTL on its fast one) and two clients can
// both believe they hold a lock; fencing tokens still keep the resource
// safe. Unlike a leader election built on wall-clock timestamps (which
// tolerates offsets only up to its own skew allowance), nothing here
// compares readings of two clocks. TestSimLeaseClockSkew runs the
// simulation with per-node clocks (sim.Clock) and shows both sides:
// offsets of hours and rates 7.7% apart are safe, rates 18% apart break
// mutual exclusion and the simulation's check sees it. A keepalive answered after the bound had
// passed renews nothing, whatever the answer: the lease may have lapsed in
// between, and a lapsed lease stays lost. The services measure leases the
// same way, by elapsed time, so a step of a wall clock moves no lease.
//
// # Replicated service: time and leader changes
//
// Time enters the replicated state machine only inside commands: the
// leader stamps each command with its clock before proposing it, and a
// ticker proposes the time every ServerConfig.TickInterval so leases
// expire without traffic. Apply never reads a clock. The first stamped
// command of a new term rebases the table (Table.Rebase): every lease gets
// a full TTL from the new leader's time, because the new leader cannot
// know how long its predecessor had been waiting, and its clock is another
// machine's. Every change goes through the log.
//
// # Replicated service: holder reads
//
// OpHolder is a read, and is served without a log entry when that gives
// the answer the log would: the leader calls consensus.Node.Read (after it
// returns, the leader's table holds every write acknowledged before the
// request), reads its own clock, and answers from its table if (1) the
// last stamped command it applied is of its current term, so the table's
// times are on this leader's clock, and (2) no session's lease and no
// lock-delay ends at or before that reading, so an OpHolder stamped with
// it, going through the log, would expire nothing and report the same
// holder. Otherwise the request goes through the log as before, and its
// stamp expires what is due. A holder whose lease has ended by the
// leader's clock is therefore never reported, even though no command has
// expired it yet (the ticker proposes the time only every
// ServerConfig.TickInterval): the staleness bound of a holder read is
// zero. It needs no clock assumption beyond the log's own (the leader's
// clock measures elapsed time; see the consensus package for the
// assumption of its lease reads, if Consensus.LeaseReads is on). The
// answer is linearizable either way.
//
// # Caller's duties
//
//  1. Pass the grant's token with every action taken under the lock, and
//     make the resource check it (Fence.Check, atomically with the write).
//  2. Derive the contexts of work done under a lock from Session.Context,
//     and stop when Session.Done closes: the locks are no longer yours.
//  3. Open a new Session after a lost one; a lost session stays lost.
//  4. Give every Server of one service the same TableConfig, and
//     ServerConfig.TickInterval well below the TTLs in use.
//  5. Close Sessions, Electors, Servers and Local services: Close stops
//     their goroutines and waits for them.
//
// # Concurrency
//
// Table is not safe for concurrent use; everything else is. Session runs
// two goroutines (keepalive, watchdog), Local one (expiry), Server one
// (ticker) besides its consensus node, Elector one (poll) plus one per
// leadership watching the lease. Lock blocks until the grant, ctx's end or
// the lease's loss; a cancelled Lock leaves the queue (and releases the
// lock if it was granted meanwhile).
//
// # Fault model
//
// Clients may pause for any length of time, crash, or be cut off from the
// service; messages may be lost, duplicated, delayed and reordered. Safety
// (no two clients trusting their leases on one lock at once; a fenced
// resource never accepting an older token after a newer one) needs only
// that a client's clock runs no slower than 1 − SafetyMargin/TTL of the
// service's rate (see "The lease-lost bound"); progress needs
// the service reachable. The replicated service tolerates the crash of a
// minority of its members and partitions (consensus package's model),
// and power loss: a member's table lives in its consensus data directory,
// where nothing is acknowledged before it is fsynced.
// TestPowerLossLockService runs three Servers and real Sessions in virtual
// time on fault file systems (internal/vfs.CrashFS) and cuts members'
// power at seeded points (an fsync fails, then whatever was not fsynced is
// lost or torn); every grant a client was given must carry a token above
// all earlier ones, and no other session may still trust its own grant of
// that lock. The Local service does not survive its process, and a new Local issues
// tokens from 1 again: resources fenced by the old one's tokens would
// reject it, so give each Local's resources a fresh Fence. Nodes are not
// Byzantine.
//
// # Orphaned grants
//
// A request duplicated or delayed by the network past the client's own
// retries can re-acquire a lock after the client released it, leaving the
// session a grant its client never learned of. Safety is unaffected (a
// client trusts only grants it was answered), and liveness is restored by
// the keepalives: their answers list the session's grants, and the client
// releases, token-checked, any it does not know. Likewise a late duplicate
// of an Open can re-open, empty, a session the service already expired;
// its client's bound passed before that expiry, so the client never trusts
// the session again, and the service expires it after one more TTL.
//
// # Tests
//
// The package's tests run in a few seconds; the simulation tests run a
// few seeds per scenario, each under an event budget, so a broken rule
// fails with the seed and the step rather than hanging (see sim.Config). DISTKIT_SOAK=1 runs fifty times as many seeds,
// and DISTKIT_SEED=N replays one.
package lock
