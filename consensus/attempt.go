package consensus

import (
	"context"
	"fmt"
	"time"
)

// This file holds the waiting side of a proposal: how its caller gets the
// one answer, and the attempt bound a Client puts on a proposal without a
// context of its own (Client.propose).
//
// A Client bounds every attempt on a member by ClientConfig.AttemptTimeout.
// Done with a context (context.WithDeadline, or a shared window context),
// every attempt would wait on two channels, its answer and the context's
// Done: on a busy leader that select is a large share of a command's cost.
// A Client proposing to a *Node instead hands it the deadline: the caller
// waits on its answer alone, and the node's bound sweeper sends the
// answer "attempt bound passed" itself if the deadline passes first. The
// sweeper is a timer, not the node's loop, so the bound holds even when the
// loop is stuck (a disk that does not return from fsync, a state machine
// that blocks).

// The states of a proposal, in the low bits of proposal.word; the bits
// above count the proposal's uses, so that a sweeper holding a pointer to
// a recycled proposal cannot mistake its new use for the old one.
const (
	propPending   = 0 // waiting for its answer
	propAnswered  = 1 // the loop (or Close) sent the answer
	propAbandoned = 2 // its attempt bound passed first: the sweeper answered
	propStateMask = 3
	propUse       = 4 // one use, in the bits above the state
)

// errAttemptBound answers a proposal whose attempt bound passed first: the
// command may still be applied (outcome unknown), as after a timed-out
// context.
var errAttemptBound = fmt.Errorf("consensus: propose: attempt bound passed: %w: %w", ErrOutcomeUnknown, context.DeadlineExceeded)

// answer sends r to p's caller, unless the attempt bound answered first.
// The loop and Close call it for every proposal they hold, exactly once,
// and forget the proposal after it.
func (p *proposal) answer(r result) {
	if w := p.word.Load(); w&propStateMask == propPending && p.word.CompareAndSwap(w, w|propAnswered) {
		p.done <- r
	}
}

// abandoned reports whether the attempt bound answered p already (its
// caller has gone: the loop need not propose it).
func (p *proposal) abandoned() bool { return p.word.Load()&propStateMask == propAbandoned }

// newProposal takes a proposal from the pool for a new use.
func (n *Node) newProposal(ctx context.Context, cmd []byte) *proposal {
	p := n.proposals.Get().(*proposal)
	p.ctx, p.cmd = ctx, cmd
	return p
}

// recycle returns p to the pool once its caller has its answer, if the
// loop is done with it: an abandoned proposal may still sit in the loop's
// queue or waiters, so it is left to the garbage collector.
func (n *Node) recycle(p *proposal) {
	w := p.word.Load()
	if w&propStateMask != propAnswered {
		return
	}
	p.ctx, p.cmd, p.term, p.index, p.orphanedAt = context.Background(), nil, 0, 0, 0
	// The bound first, then the new use: a sweeper that sees the new use
	// pending reads no bound of the old one (see sweepBounds).
	p.bound.Store(0)
	p.word.Store(w&^propStateMask + propUse)
	n.proposals.Put(p)
}

// propose queues cmd (owned: the caller hands it over, else it is copied)
// and waits for its answer, for ctx, or, with a non-zero bound, until the
// bound passes (errAttemptBound). It refuses a command over
// MaxCommandBytes here, not in Propose: a Client calls it directly, with
// the command stamped by its session.
func (n *Node) propose(ctx context.Context, cmd []byte, owned bool, bound time.Time) (any, error) {
	if !n.started() {
		return nil, errNotStarted
	}
	if len(cmd) > n.cfg.MaxCommandBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(cmd), n.cfg.MaxCommandBytes)
	}
	if !owned {
		cmd = bytes0(cmd)
	}
	p := n.newProposal(ctx, cmd)
	var deadline int64
	if !bound.IsZero() {
		deadline = max(1, int64(bound.Sub(n.bounds.epoch)))
		p.bound.Store(deadline)
	}
	n.propMu.Lock()
	if n.closed {
		err := n.closedErr
		n.propMu.Unlock()
		return nil, err
	}
	n.props = append(n.props, p)
	if deadline != 0 {
		n.bounds.register(p, deadline)
	}
	n.propMu.Unlock()
	select {
	case n.propSig <- struct{}{}:
	default:
	}
	var r result
	if done := ctx.Done(); done == nil {
		r = <-p.done // one channel: a context that never ends has no Done
	} else {
		select {
		case r = <-p.done:
		case <-done:
			// Not recycled: the loop may still hold p, and answers it
			// later into its buffer.
			return nil, fmt.Errorf("consensus: propose: %w", ctx.Err())
		}
	}
	n.recycle(p)
	return r.val, r.err
}

// bytes0 copies cmd; a nil or empty cmd becomes an empty, non-nil slice.
func bytes0(cmd []byte) []byte {
	return append(make([]byte, 0, len(cmd)), cmd...)
}

// attemptBounds is a Node's record of the proposals that may carry an
// attempt bound, and the timer that answers those whose bound passes.
//
// The record holds proposals, not uses: a pooled proposal is recorded
// when a bounded use first registers it, and stays recorded through its
// later uses until a sweep finds it without a bounded use pending. A
// sweep reads each recorded proposal's current use, so the record's size
// is about the number of proposals in circulation (the pool's), not the
// command rate times the attempt timeout, and most registrations append
// nothing.
type attemptBounds struct {
	epoch time.Time // bounds are nanoseconds since epoch (monotonic)

	// Guarded by Node.propMu (taken anyway to queue a proposal), as is
	// each proposal's listed flag. A sweep holds it throughout.
	fresh   []*proposal // recorded since the last sweep
	carry   []*proposal // kept by the last sweep: bounded uses pending
	spare   []*proposal // an empty array for the next fresh
	armedAt int64       // the bound the timer is set for; 0: not set
	timer   *time.Timer // runs sweepBounds
	stopped bool        // the node closed: the timer stays stopped

	// readHook, if set (by a test, before the node runs), is called by a
	// sweep between reading a proposal's bound and answering it.
	readHook func(*proposal)
}

// armedNow is attemptBounds.armedAt while a sweep is due at once.
const armedNow = 1

// boundsCompactAt is how many newly recorded proposals make the timer
// fire early, to drop those without a bounded use from the record (the
// pool replaces its proposals after garbage collections, so new ones keep
// coming).
const boundsCompactAt = 4096

// now returns the time in the unit of bounds.
func (b *attemptBounds) now() int64 { return int64(time.Since(b.epoch)) }

// register records p, whose current use is bounded by deadline (stored in
// p.bound already), unless it is recorded, and sets the timer for the
// bound if it is the earliest. Called with Node.propMu held.
func (b *attemptBounds) register(p *proposal, deadline int64) {
	if !p.listed {
		p.listed = true
		b.fresh = append(b.fresh, p)
	}
	switch {
	case b.stopped || b.armedAt == armedNow:
	case len(b.fresh) >= boundsCompactAt:
		b.armedAt = armedNow
		b.timer.Reset(0)
	case b.armedAt == 0 || deadline < b.armedAt:
		b.armedAt = deadline
		b.timer.Reset(time.Duration(deadline - b.now()))
	}
}

// sweepBounds answers, with errAttemptBound, the current use of every
// recorded proposal that is pending and whose bound has passed, keeps in
// the record the proposals whose current use is pending with a later
// bound, drops the others, and sets the timer for the earliest bound
// left. It runs on the timer's goroutine, under Node.propMu: no use can be
// registered meanwhile, so a proposal dropped here (no bounded use
// pending) is recorded again by its next bounded use.
func (n *Node) sweepBounds() {
	b := &n.bounds
	n.propMu.Lock()
	defer n.propMu.Unlock()
	b.armedAt = 0
	now := b.now()
	// keep reuses carry's array: it is written at positions already read
	// (or past carry's length, while fresh is read).
	keep := b.carry[:0]
	next := int64(0)
	for _, list := range [2][]*proposal{b.carry, b.fresh} {
		for i, p := range list {
			list[i] = nil
			w := p.word.Load()
			d := p.bound.Load()
			if b.readHook != nil {
				b.readHook(p)
			}
			switch {
			case w&propStateMask != propPending || d == 0:
				// Answered; or recycled, unused or used without a bound.
				p.listed = false
			case d > now:
				keep = append(keep, p)
				if next == 0 || d < next {
					next = d
				}
			case p.word.CompareAndSwap(w, w|propAbandoned):
				// Still the same use (a recycled proposal has a new use
				// count). done has room: only one answer per use is sent.
				p.listed = false
				p.done <- result{err: errAttemptBound}
			default:
				// The use changed since w was read: kept for the next
				// sweep, which reads the new use (a bounded one arms the
				// timer when it registers, after this sweep).
				keep = append(keep, p)
			}
		}
	}
	b.carry, b.fresh, b.spare = keep, b.spare[:0], b.fresh[:0]
	if next != 0 && !b.stopped {
		b.armedAt = next
		b.timer.Reset(time.Duration(next - b.now()))
	}
}

// stopBounds stops the timer for good (a sweep under way holds propMu:
// this waits for it) and forgets the record.
// Called when the node shuts down, after every proposal was answered.
func (n *Node) stopBounds() {
	n.propMu.Lock()
	n.bounds.stopped = true
	n.bounds.timer.Stop()
	n.bounds.carry, n.bounds.fresh, n.bounds.spare = nil, nil, nil
	n.propMu.Unlock()
}
