package consensus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distkit/distkit/consensus/raft"
)

// Reads cost no log entry (thesis §6.4). Two paths:
//
//   - ReadIndex, batched: a Read joins the open batch, the one the loop has
//     not yet taken. The loop takes the open batch (closing it to joiners)
//     and asks the core for one read index for the whole batch; the core
//     confirms it with a heartbeat round started after the request, shared
//     with every other request of that moment. A Read that arrives while a
//     batch is in flight joins the next batch, never the one in flight:
//     that batch's read index may predate writes acknowledged before this
//     Read began. The loop closes a batch's ready channel once the batch
//     is answered and its index applied: one wake-up per reader, no
//     channel or map entry per reader.
//   - Lease, on the leader (Config.LeaseReads): the loop publishes, after
//     every Ready and every loop turn, the leader's commit index and the
//     monotonic time its lease expires (readState.view). A Read that finds
//     the lease valid on its own clock captures that commit index and
//     waits only until it is applied, without entering the loop. The
//     lease starts when the confirming heartbeat round was started (the
//     loop's time of the tick during which the core started it, which is
//     no later than the send), never when the acknowledgements arrived,
//     and lasts (ElectionTicks - LeaseDriftTicks) * TickInterval: voters
//     that acknowledged refuse to vote for ElectionTicks of their ticks
//     after receiving it. A leader whose lease expired, or that is handing
//     over leadership, falls back to ReadIndex.

// readReq is one batch of Reads waiting on the loop: every Read that joined
// it shares its read index.
type readReq struct {
	id     uint64 // the ReadIndex context of the current attempt
	issued uint64 // tick of the current attempt
	index  uint64 // the read index, once answered
	// ready is closed once the batch is complete; err is then its outcome
	// (nil, or errReadRetry after a leader change).
	ready    chan struct{}
	err      error
	finished bool // loop-owned
	// waiting counts the Reads still waiting on the batch; the loop
	// forgets a batch nobody waits for.
	waiting atomic.Int32
}

func newReadReq() *readReq {
	return &readReq{ready: make(chan struct{})}
}

// finish completes the batch (on the loop); a batch completes once.
func (r *readReq) finish(err error) {
	if r.finished {
		return
	}
	r.finished, r.err = true, err
	close(r.ready)
}

// leaseView is what the loop publishes for lease reads: the leader's commit
// index and the time its lease expires, in nanoseconds of readState.now.
type leaseView struct {
	expiry int64
	commit uint64
}

// readState is the part of a Node that serves Read outside the loop.
type readState struct {
	// mu guards open and applyWake.
	mu sync.Mutex
	// open is the batch new Reads join, nil until the first joins; the
	// loop takes it (issueQueuedReads).
	open *readReq
	// applyWake is closed (and cleared) when applied advances, nil if no
	// lease Read waits.
	applyWake chan struct{}

	// view is the leader's lease (nil when none holds); applied is the
	// applied index. Written by the loop, read by any goroutine.
	view    atomic.Pointer[leaseView]
	applied atomic.Uint64

	// Set by init, read-only afterwards.
	epoch    time.Time
	leaseDur int64 // (ElectionTicks - LeaseDriftTicks) * TickInterval, in ns
	lease    bool
	// tickWall[t % len] is the time (now) at which the loop took tick t.
	// Owned by the loop. len > ElectionTicks, the oldest lease age.
	tickWall []int64
}

func (rs *readState) init(cfg Config, applied uint64) {
	rs.epoch = time.Now()
	rs.lease = cfg.LeaseReads
	rs.leaseDur = int64(cfg.ElectionTicks-cfg.LeaseDriftTicks) * int64(cfg.TickInterval)
	rs.tickWall = make([]int64, cfg.ElectionTicks+1)
	rs.applied.Store(applied)
}

// now is the node's monotonic clock, in nanoseconds since init.
func (rs *readState) now() int64 { return int64(time.Since(rs.epoch)) }

// recordTick notes the time of tick t (on the loop, as it takes the tick).
func (rs *readState) recordTick(t uint64) {
	rs.tickWall[t%uint64(len(rs.tickWall))] = rs.now()
}

// expiry returns when a lease confirmed by a round started age ticks
// before tick t expires: (ElectionTicks - LeaseDriftTicks) tick intervals
// after the loop took the tick during which the round started (§6.4.1:
// from when the heartbeats were sent, not when they were answered). It
// returns 0 (no lease) for a round older than the recorded ticks.
func (rs *readState) expiry(t, age uint64) int64 {
	if age >= uint64(len(rs.tickWall)) || age > t {
		return 0
	}
	return rs.tickWall[(t-age)%uint64(len(rs.tickWall))] + rs.leaseDur
}

// publishReads publishes the lease and applied index for Reads served
// outside the loop. The loop calls it after every Ready is taken (before
// its messages are sent, so a lease given up for a leadership transfer is
// withdrawn before MsgTimeoutNow leaves, and a commit index is published
// before any write up to it is acknowledged) and at the end of every turn.
func (n *Node) publishReads() {
	rs := &n.reads
	if n.applied > rs.applied.Load() {
		rs.applied.Store(n.applied)
		rs.mu.Lock()
		if rs.applyWake != nil {
			close(rs.applyWake)
			rs.applyWake = nil
		}
		rs.mu.Unlock()
	}
	if !rs.lease {
		return
	}
	cur := rs.view.Load()
	commit, age, ok := n.core.LeaseRead()
	if !ok {
		if cur != nil {
			rs.view.Store(nil)
		}
		return
	}
	exp := rs.expiry(n.ticks, age)
	if cur == nil || cur.expiry != exp || cur.commit != commit {
		rs.view.Store(&leaseView{expiry: exp, commit: commit})
	}
}

// checkLease ends the core's lease when it has run out on this node's
// clock though not by the core's tick count (ticks lost while the loop was
// paused): the loop calls it at the start of every turn, before it steps
// messages (forwarded reads) or asks for read indices.
func (n *Node) checkLease() {
	if !n.reads.lease {
		return
	}
	if _, age, ok := n.core.LeaseRead(); ok && n.reads.now() >= n.reads.expiry(n.ticks, age) {
		n.core.ExpireLease()
		n.reads.view.Store(nil)
	}
}

// leaseRead serves a Read off the leader's lease when it holds on this
// node's clock: it captures the commit index published with the lease and
// waits until it is applied. ok is false when no lease holds (the caller
// then uses ReadIndex).
func (n *Node) leaseRead(ctx context.Context) (ok bool, err error) {
	rs := &n.reads
	v := rs.view.Load()
	if v == nil || rs.now() >= v.expiry {
		return false, nil
	}
	return true, n.waitApplied(ctx, v.commit)
}

// waitApplied waits until the loop has published an applied index of at
// least index.
func (n *Node) waitApplied(ctx context.Context, index uint64) error {
	rs := &n.reads
	for {
		if rs.applied.Load() >= index {
			return nil
		}
		rs.mu.Lock()
		if rs.applied.Load() >= index {
			rs.mu.Unlock()
			return nil
		}
		if rs.applyWake == nil {
			rs.applyWake = make(chan struct{})
		}
		wake := rs.applyWake
		rs.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return fmt.Errorf("consensus: read: %w", ctx.Err())
		case <-n.donec:
			return ErrStopped
		}
	}
}

// errReadRetry tells Read to ask again: the attempt was dropped by a
// leader change.
var errReadRetry = errors.New("consensus: read dropped by a leader change")

// Read waits until this node's state machine reflects every write that was
// acknowledged (by any node) before Read was called; the caller then reads
// its state machine directly, and the read is linearizable (thesis §6.4,
// ReadIndex). It costs no log entry: the leader confirms its leadership
// with one heartbeat round, shared by every read that arrives before it
// (or, with Config.LeaseReads, not even that while its lease holds: see
// the package documentation for the clock assumption), and the reader
// waits until its node has applied the leader's commit index. It works on
// followers (follower read) as well as on the leader.
//
// A read dropped by a leader change is retried inside Read until ctx ends.
// Errors: ctx's, ErrClosed or ErrStopped, raft.ErrProposalDropped when
// the leader holds too many unconfirmed reads (it cannot reach a quorum).
func (n *Node) Read(ctx context.Context) error {
	if !n.started() {
		return errNotStarted
	}
	if ctx == nil {
		return ErrNilContext
	}
	select {
	case <-n.donec:
		return ErrStopped
	default:
	}
	if n.reads.lease {
		if ok, err := n.leaseRead(ctx); ok {
			return err
		}
	}
	for {
		r := n.joinRead()
		var err error
		select {
		case <-r.ready:
			err = r.err
		case <-ctx.Done():
			r.waiting.Add(-1)
			return fmt.Errorf("consensus: read: %w", ctx.Err())
		case <-n.donec:
			return ErrStopped
		}
		switch {
		case err == nil:
			return nil
		case errors.Is(err, errReadRetry), errors.Is(err, raft.ErrNotLeader):
			// No leader known, or it changed: wait for one and ask again.
			if _, werr := n.waitNewLeader(ctx, err); werr != nil {
				return werr
			}
		default:
			return fmt.Errorf("consensus: read: %w", err)
		}
	}
}

// joinRead adds a Read to the open batch (creating it and waking the loop
// if there is none) and returns the batch.
func (n *Node) joinRead() *readReq {
	rs := &n.reads
	rs.mu.Lock()
	r := rs.open
	first := r == nil
	if first {
		r = newReadReq()
		rs.open = r
	}
	r.waiting.Add(1)
	rs.mu.Unlock()
	if first {
		select { // the loop takes reads with proposals (issueQueuedReads)
		case n.propSig <- struct{}{}:
		default:
		}
	}
	return r
}

// waitNewLeader waits for a known leader after a read failed with cause.
func (n *Node) waitNewLeader(ctx context.Context, cause error) (LeaderInfo, error) {
	for {
		li, changed := n.leaderView()
		if li.Leader != "" {
			return li, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return li, fmt.Errorf("consensus: read: %w (last: %w)", ctx.Err(), cause)
		case <-n.donec:
			return li, ErrStopped
		}
	}
}

// issueQueuedReads takes the open batch, closing it to new Reads, and asks
// the core for its read index (on the loop, before the next Ready: it
// shares one heartbeat round with the other requests of this turn).
func (n *Node) issueQueuedReads() {
	rs := &n.reads
	rs.mu.Lock()
	r := rs.open
	rs.open = nil // Reads arriving from now on wait for the next round
	rs.mu.Unlock()
	if r != nil {
		n.issueRead(r)
	}
}

// issueRead asks the core for a read index (on the loop).
func (n *Node) issueRead(r *readReq) {
	n.rt.nextRead++
	r.id, r.issued = n.rt.nextRead, n.ticks
	var ctx [8]byte
	binary.BigEndian.PutUint64(ctx[:], r.id)
	if err := n.core.ReadIndex(ctx[:]); err != nil {
		r.finish(err)
		n.answered++
		return
	}
	n.rt.reads[r.id] = r
}

// answerReads records the read indices of a Ready: a batch whose index is
// applied already completes, the others wait for it.
func (n *Node) answerReads(rs []raft.ReadState) {
	for _, s := range rs {
		if len(s.Context) != 8 {
			continue
		}
		id := binary.BigEndian.Uint64(s.Context)
		r := n.rt.reads[id]
		if r == nil {
			continue // answered late, after a retry under a new ID
		}
		delete(n.rt.reads, id)
		r.index = s.Index
		n.rt.readWait = append(n.rt.readWait, r)
	}
	n.releaseReads()
}

// releaseReads completes the answered batches whose index is applied.
func (n *Node) releaseReads() {
	keep := n.rt.readWait[:0]
	for _, r := range n.rt.readWait {
		if n.applied >= r.index {
			r.finish(nil)
			n.answered++ // the loop yields to the readers it woke (see run)
		} else {
			keep = append(keep, r)
		}
	}
	clear(n.rt.readWait[len(keep):])
	n.rt.readWait = keep
}

// retryReads fails the unanswered batches after a leader change (the core
// dropped them); their Reads ask again.
func (n *Node) retryReads() {
	for id, r := range n.rt.reads {
		delete(n.rt.reads, id)
		r.finish(errReadRetry)
	}
}

// expireReads forgets the batches whose Reads all left, and asks again for
// those unanswered for an election timeout (a forwarded request or its
// answer was lost).
func (n *Node) expireReads() {
	for id, r := range n.rt.reads {
		if r.waiting.Load() <= 0 {
			delete(n.rt.reads, id)
			continue
		}
		if n.ticks-r.issued >= uint64(n.cfg.ElectionTicks) {
			delete(n.rt.reads, id)
			n.issueRead(r)
		}
	}
	keep := n.rt.readWait[:0]
	for _, r := range n.rt.readWait {
		if r.waiting.Load() > 0 {
			keep = append(keep, r)
		}
	}
	clear(n.rt.readWait[len(keep):])
	n.rt.readWait = keep
}
