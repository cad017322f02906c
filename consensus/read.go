package consensus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/distkit/distkit/consensus/raft"
)

// readReq is one Read waiting on the loop.
type readReq struct {
	ctx    context.Context
	id     uint64 // the ReadIndex context of the current attempt
	issued uint64 // tick of the current attempt
	index  uint64 // the read index, once answered
	done   chan error
}

// errReadRetry tells Read to ask again: the attempt was dropped by a
// leader change.
var errReadRetry = errors.New("consensus: read dropped by a leader change")

// Read waits until this node's state machine reflects every write that was
// acknowledged (by any node) before Read was called; the caller then reads
// its state machine directly, and the read is linearizable (thesis §6.4,
// ReadIndex). It costs no log entry: the leader confirms its leadership
// with one heartbeat round, shared by every read that arrives before it
// (or, with Config.LeaseReads, not even that while its lease holds), and
// the reader waits until its node has applied the leader's commit index.
// It works on followers (follower read) as well as on the leader.
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
	for {
		r := &readReq{ctx: ctx, done: make(chan error, 1)}
		n.rt.readMu.Lock()
		n.rt.readQ = append(n.rt.readQ, r)
		n.rt.readMu.Unlock()
		select { // the loop takes reads with proposals (issueQueuedReads)
		case n.propSig <- struct{}{}:
		default:
		}
		var err error
		select {
		case err = <-r.done:
		case <-ctx.Done():
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

// issueQueuedReads asks the core for a read index for every queued Read
// (on the loop, before the next Ready: they share one heartbeat round).
func (n *Node) issueQueuedReads() {
	n.rt.readMu.Lock()
	q := n.rt.readQ
	n.rt.readQ = nil
	n.rt.readMu.Unlock()
	for _, r := range q {
		if r.ctx.Err() == nil {
			n.issueRead(r)
		}
	}
}

// issueRead asks the core for a read index (on the loop).
func (n *Node) issueRead(r *readReq) {
	n.rt.nextRead++
	r.id, r.issued = n.rt.nextRead, n.ticks
	var ctx [8]byte
	binary.BigEndian.PutUint64(ctx[:], r.id)
	if err := n.core.ReadIndex(ctx[:]); err != nil {
		r.done <- err
		return
	}
	n.rt.reads[r.id] = r
}

// answerReads records the read indices of a Ready: a read whose index is
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

// releaseReads completes the answered reads whose index is applied.
func (n *Node) releaseReads() {
	keep := n.rt.readWait[:0]
	for _, r := range n.rt.readWait {
		if n.applied >= r.index {
			r.done <- nil
			n.answered++ // the loop yields to the readers it woke (see run)
		} else {
			keep = append(keep, r)
		}
	}
	clear(n.rt.readWait[len(keep):])
	n.rt.readWait = keep
}

// retryReads fails the unanswered reads after a leader change (the core
// dropped them); Read asks again.
func (n *Node) retryReads() {
	for id, r := range n.rt.reads {
		delete(n.rt.reads, id)
		r.done <- errReadRetry
	}
}

// expireReads forgets the reads whose caller left, and asks again for
// those unanswered for an election timeout (a forwarded request or its
// answer was lost).
func (n *Node) expireReads() {
	for id, r := range n.rt.reads {
		if r.ctx.Err() != nil {
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
		if r.ctx.Err() == nil {
			keep = append(keep, r)
		}
	}
	clear(n.rt.readWait[len(keep):])
	n.rt.readWait = keep
}
