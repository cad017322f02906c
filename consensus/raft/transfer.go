package raft

import (
	"fmt"
	"slices"

	"github.com/distkit/distkit/transport"
)

// Leadership transfer (thesis §3.10): the leader stops accepting proposals,
// brings the target's log up to date, and sends it MsgTimeoutNow; the
// target campaigns at once, without a pre-vote, and the voters grant it
// their vote despite their check-quorum lease because the campaign is
// marked as a transfer. If the target has not taken over within an
// election timeout, the leader gives up and accepts proposals again.

// transferLeadership starts a transfer to `to`, or to the most up-to-date
// voter when to is "".
func (r *raft) transferLeadership(to transport.NodeID) error {
	if r.role != Leader {
		return &NotLeaderError{Leader: r.lead}
	}
	if r.leadTransferee != "" {
		if r.leadTransferee == to {
			return nil // already on its way
		}
		return fmt.Errorf("%w: to %q", ErrTransferInProgress, r.leadTransferee)
	}
	if to == "" {
		to = r.bestTransferTarget()
		if to == "" {
			return fmt.Errorf("%w: no other voter", ErrNoTransferTarget)
		}
	}
	if to == r.id || !slices.Contains(r.conf.Voters, to) || r.prs[to] == nil {
		return fmt.Errorf("%w: %q is not a voter other than the leader %v", ErrNoTransferTarget, to, r.conf.Voters)
	}
	r.leadTransferee, r.transferElapsed = to, 0
	r.logger.Info("transferring leadership", "to", string(to), "term", r.term)
	pr := r.prs[to]
	if pr.match == r.log.lastIndex() {
		r.sendTimeoutNow(to)
		return nil
	}
	// Bring it up to date first; handleAppendResponse sends MsgTimeoutNow
	// when its match reaches the last index.
	r.sendAppend(to, pr, true)
	return nil
}

// bestTransferTarget returns the incoming voter other than this node with
// the highest match index (the first in configuration order on a tie), or
// "" if there is none.
func (r *raft) bestTransferTarget() transport.NodeID {
	var best transport.NodeID
	var bestMatch uint64
	for _, id := range r.conf.Voters {
		pr := r.prs[id]
		if id == r.id || pr == nil {
			continue
		}
		if best == "" || pr.match > bestMatch {
			best, bestMatch = id, pr.match
		}
	}
	return best
}

// sendTimeoutNow tells the target to campaign at once. From then on the
// leader's lease is void for the rest of its term: the target's campaign
// bypasses the voters' leases.
func (r *raft) sendTimeoutNow(to transport.NodeID) {
	r.timeoutNowSent = true
	r.send(Message{Type: MsgTimeoutNow, To: to, Index: r.log.lastIndex()})
}

// abortTransfer gives up a transfer: the leader accepts proposals again.
func (r *raft) abortTransfer() {
	r.leadTransferee, r.transferElapsed = "", 0
}

// handleTimeoutNow is the target's side: campaign now, as a transfer. Only
// the leader this node follows in the current term may ask (step already
// dropped messages of other terms); anyone else is ignored.
func (r *raft) handleTimeoutNow(m *Message) {
	if m.From != r.lead || !r.promotable() {
		r.logger.Debug("ignoring MsgTimeoutNow", "from", string(m.From), "leader", string(r.lead))
		return
	}
	r.logger.Info("campaigning at the leader's request", "from", string(m.From), "term", r.term)
	r.campaign(false, true)
}
