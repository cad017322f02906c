package consensus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
)

// confWait is one ChangeMembership call waiting on the loop.
type confWait struct {
	ctx         context.Context
	cc          raft.ConfChange
	pending     bool // not proposed yet: the leader has not committed an entry of its term
	index, term uint64
	applied     bool       // the entry was applied; waiting to leave a joint configuration
	done        chan error // size 1: the one answer
}

// ChangeMembership changes the cluster's configuration (thesis §4) and
// returns once the change is applied on this node, which must be the
// leader. Any set of operations on distinct nodes goes in one call: at
// most one voter added or removed takes effect directly; anything else
// goes through a joint configuration, which ChangeMembership also waits
// to see left (committed). Removing the leader itself works: it keeps
// leading until the change commits, then hands over and steps down.
//
// A node being added must be reachable on the transport under its ID; it
// is then started with Config.Join (see Config.Join for the rule). Add new
// nodes as learners and promote them once caught up (AddAndPromote): a
// voter with an empty log can stall commits.
//
// A leader that was just elected may not change the configuration before
// it has committed an entry of its own term (Ongaro's fix to single-server
// changes); ChangeMembership waits for that inside (bounded by ctx), so a
// caller needs no retry loop after a leader change.
//
// Errors: ErrNotLeader (a *raft.NotLeaderError naming the leader);
// raft.ErrConfChangeInProgress while another change is uncommitted or a
// joint configuration is in force (a change truly in flight: it is not
// waited for); raft.ErrInvalidConfChange for a change that makes no sense;
// raft.ErrProposalDropped during a leadership transfer; ErrProposalLost
// (the entry lost to a leader change: retry); ErrOutcomeUnknown; ctx's
// error (outcome unknown; but a change whose ctx ended before the node's
// loop took it is never proposed, as for Propose); ErrStopped.
func (n *Node) ChangeMembership(ctx context.Context, ops ...raft.ConfChangeOp) error {
	w := &confWait{ctx: ctx, cc: raft.ConfChange{Changes: ops}, done: make(chan error, 1)}
	err := n.do(ctx, func() {
		if n.proposeConf(w) {
			n.rt.confs = append(n.rt.confs, w)
		}
	})
	if err != nil {
		return fmt.Errorf("consensus: change membership: %w", err)
	}
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("consensus: change membership: %w", ctx.Err())
	case <-n.donec:
		return ErrStopped
	}
}

// AddVoter adds id as a voter (see ChangeMembership; AddAndPromote is
// safer for a node with an empty log).
func (n *Node) AddVoter(ctx context.Context, id transport.NodeID) error {
	return n.ChangeMembership(ctx, raft.ConfChangeOp{Type: raft.ConfAddVoter, Node: id})
}

// AddLearner adds id as a learner: it receives the log but does not vote.
func (n *Node) AddLearner(ctx context.Context, id transport.NodeID) error {
	return n.ChangeMembership(ctx, raft.ConfChangeOp{Type: raft.ConfAddLearner, Node: id})
}

// Promote makes the learner id a voter.
func (n *Node) Promote(ctx context.Context, id transport.NodeID) error {
	return n.ChangeMembership(ctx, raft.ConfChangeOp{Type: raft.ConfPromote, Node: id})
}

// Remove removes the voter or learner id (this node included).
func (n *Node) Remove(ctx context.Context, id transport.NodeID) error {
	return n.ChangeMembership(ctx, raft.ConfChangeOp{Type: raft.ConfRemove, Node: id})
}

// Members returns the configuration in force on this node and whether it
// is committed (a configuration takes effect when its entry is appended,
// before it commits).
func (n *Node) Members() (m raft.Membership, committed bool) {
	st := n.Status()
	return st.Membership, st.Commit >= st.MembershipIndex
}

// AddAndPromote grows the cluster safely by one voter: it adds id as a
// learner (unless it is one already), waits until the leader has
// replicated to it at least the entry that made it a learner and up to
// within maxLag entries of the leader's last index, then promotes it. Run it on the leader; ctx bounds the whole operation.
// Errors: those of ChangeMembership, and ErrNotLeader if this node stops
// leading while the learner catches up.
func (n *Node) AddAndPromote(ctx context.Context, id transport.NodeID, maxLag uint64) error {
	if ctx == nil {
		return ErrNilContext
	}
	if m, _ := n.Members(); !m.IsLearner(id) {
		if err := n.AddLearner(ctx, id); err != nil {
			return err
		}
	}
	// Catching up takes replication rounds; polling the leader's progress
	// once a tick is cheap and keeps this outside the loop.
	t := time.NewTicker(n.cfg.TickInterval)
	defer t.Stop()
	for {
		st := n.Status()
		if st.Err != nil {
			return st.Err
		}
		if st.Role != raft.Leader {
			return fmt.Errorf("consensus: add and promote %s: %w", id, &raft.NotLeaderError{Leader: st.Leader})
		}
		// Caught up: it holds the configuration that made it a learner
		// (a learner that never answered is not caught up, however small
		// the log), and it is within maxLag of the leader's last entry.
		if pr, ok := st.Progress[id]; ok && pr.Match >= st.MembershipIndex && pr.Match+maxLag >= st.LastIndex {
			return n.Promote(ctx, id)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("consensus: add and promote %s: learner catching up: %w", id, ctx.Err())
		case <-n.donec:
			return ErrStopped
		}
	}
}

// proposeConf proposes w's change (on the loop) and reports whether w
// waits on: proposed (w.index set), or pending until this leader has
// committed an entry of its term. Otherwise w has been answered.
func (n *Node) proposeConf(w *confWait) bool {
	if err := w.ctx.Err(); err != nil {
		// The caller has gone (outcome unknown to it): not proposing
		// keeps a change nobody waits for out of the log, as for commands.
		w.done <- fmt.Errorf("consensus: change membership: %w", err)
		return false
	}
	index, term, err := n.core.ProposeConfChange(w.cc)
	switch {
	case err == nil:
		w.index, w.term, w.pending = index, term, false
		return true
	case errors.Is(err, raft.ErrConfChangeInProgress) && n.awaitingTermCommit():
		w.pending = true
		return true
	}
	w.done <- fmt.Errorf("consensus: change membership: %w", err)
	return false
}

// awaitingTermCommit reports whether this node leads and has not yet
// committed an entry of its term, so that the core's
// ErrConfChangeInProgress is a wait of about one round trip, not a
// conflict: that first commit settles whatever earlier leaders left
// uncommitted, a change included (a leader that took over by a transfer
// right after a change committed elsewhere may not know yet that it did).
// A leader that has committed in its term refuses for a change of its own
// in flight, or a joint configuration in force: those are conflicts.
func (n *Node) awaitingTermCommit() bool {
	return !n.core.CommittedInTerm() && n.core.Status().Role == raft.Leader
}

// appliedConfChange is called by apply for each EntryConfChange (the core
// applied the change itself; the state machine does not see it).
func (n *Node) appliedConfChange(e *raft.Entry) {
	for _, w := range n.rt.confs {
		if w.pending || w.index != e.Index || w.applied {
			continue
		}
		if w.term != e.Term {
			w.done <- fmt.Errorf("consensus: change membership: %w", ErrProposalLost)
			w.index = 0 // removed by checkConfs
			continue
		}
		w.applied = true
	}
}

// checkConfs completes the membership changes that are applied and, if
// they entered a joint configuration, left it (committed); and those whose
// index was passed without their entry being applied here (a snapshot).
// It proposes the pending ones again (the leader may have committed an
// entry of its term since), in the order they were asked for: the first
// goes in, and any other then finds it in flight and is refused.
func (n *Node) checkConfs() {
	var st *raft.Status
	keep := n.rt.confs[:0]
	for _, w := range n.rt.confs {
		switch {
		case w.pending:
			if w.ctx.Err() != nil {
				continue // the caller left; never propose it now
			}
			if n.proposeConf(w) {
				st = nil // the configuration may have changed
				keep = append(keep, w)
			}
		case w.index == 0:
			continue // answered
		case w.applied:
			if st == nil {
				s := n.core.Status()
				st = &s
			}
			if st.Membership.Joint() || st.Commit < st.MembershipIndex {
				keep = append(keep, w)
				continue
			}
			w.done <- nil
		case n.applied >= w.index:
			w.done <- fmt.Errorf("consensus: change membership: %w: log replaced by a snapshot", ErrOutcomeUnknown)
		default:
			keep = append(keep, w)
		}
	}
	clear(n.rt.confs[len(keep):])
	n.rt.confs = keep
}
