package consensus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
)

// ErrTransferAborted is returned by TransferLeadership when the leader gave
// the transfer up (its target did not take over within an election
// timeout) and leads on.
var ErrTransferAborted = errors.New("consensus: leadership transfer aborted; this node still leads")

// transferWait is one TransferLeadership call waiting on the loop.
type transferWait struct {
	done chan error // size 1
}

// TransferLeadership hands this node's leadership over to the voter to, or
// to the most up-to-date voter when to is "" (thesis §3.10): the leader
// stops accepting proposals, brings the target's log up to date and tells
// it to campaign at once, so the cluster changes leader in about one round
// trip instead of an election timeout. It returns nil once another node
// leads (as far as this node knows).
//
// Errors: ErrNotLeader (a *raft.NotLeaderError) on a node that does not
// lead; raft.ErrNoTransferTarget if to is not another voter;
// raft.ErrTransferInProgress if a transfer to another node is under way;
// ErrTransferAborted if the target did not take over within an election
// timeout (this node then leads on and accepts proposals again); ctx's
// error; ErrStopped if the node stops first.
func (n *Node) TransferLeadership(ctx context.Context, to transport.NodeID) error {
	w := &transferWait{done: make(chan error, 1)}
	err := n.do(ctx, func() {
		if err := n.core.TransferLeadership(to); err != nil {
			w.done <- fmt.Errorf("consensus: transfer leadership: %w", err)
			return
		}
		n.rt.transfers = append(n.rt.transfers, w)
	})
	if err != nil {
		return fmt.Errorf("consensus: transfer leadership: %w", err)
	}
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("consensus: transfer leadership: %w", ctx.Err())
	case <-n.donec:
		return ErrStopped
	}
}

// checkTransfers completes the transfers that are over: another node
// leads (success), or this node leads with no transfer under way (the core
// abandoned it). It runs on the loop, after each Ready and tick.
func (n *Node) checkTransfers() {
	var err error
	switch {
	case n.leader != "" && n.leader != n.cfg.ID:
		err = nil
	case n.role == raft.Leader && n.core.Status().LeadTransferee == "":
		err = ErrTransferAborted
	default:
		return // under way, or an election is running
	}
	for _, w := range n.rt.transfers {
		w.done <- err
	}
	clear(n.rt.transfers)
	n.rt.transfers = n.rt.transfers[:0]
}

// Shutdown closes the node gracefully: a leader first hands leadership to
// the most up-to-date voter (TransferLeadership with to ""), so that
// stopping it (a rolling restart, say) costs the cluster no election
// timeout. It waits for the transfer at most until ctx ends or one
// election timeout passed, whichever is first; a failed transfer is logged
// and the node closes anyway. It returns Close's result.
func (n *Node) Shutdown(ctx context.Context) error {
	if !n.started() {
		return errNotStarted
	}
	if ctx == nil {
		return ErrNilContext
	}
	if li := n.Leader(); li.Role == raft.Leader {
		tctx, cancel := context.WithTimeout(ctx, time.Duration(n.cfg.ElectionTicks)*n.cfg.TickInterval)
		err := n.TransferLeadership(tctx, "")
		cancel()
		if err != nil && !errors.Is(err, raft.ErrNoTransferTarget) && n.logger != nil {
			n.logger.Warn("consensus: leadership transfer before shutdown failed; closing anyway", "node", n.cfg.ID, "err", err)
		}
	}
	return n.Close()
}
