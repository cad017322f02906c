package raft

import (
	"slices"

	"github.com/distkit/distkit/transport"
)

// Leader election (§5.2), with pre-vote (thesis §9.6) and check-quorum
// (thesis §6.2).

// tick advances logical time by one tick.
func (r *raft) tick() {
	r.ticks++
	if r.role == Leader {
		r.tickLeader()
		return
	}
	r.electionElapsed++
	if r.voteGuard > 0 {
		r.voteGuard--
	}
	if r.electionElapsed < r.randomizedElectionTimeout {
		return
	}
	switch {
	case r.promotable():
		r.electionElapsed = 0
		r.campaign(r.cfg.PreVote, false)
	case r.lead != "":
		// A learner or a removed node never campaigns, but it stops
		// naming a leader it no longer hears from: a removed node would
		// otherwise redirect clients to a stale leader forever.
		r.lead = ""
	}
}

func (r *raft) tickLeader() {
	r.heartbeatElapsed++
	r.electionElapsed++
	if r.leadTransferee != "" {
		r.transferElapsed++
		if r.transferElapsed >= r.cfg.ElectionTicks {
			// Thesis §3.10: the target did not take over within an
			// election timeout; resume accepting proposals.
			r.logger.Info("leadership transfer timed out", "to", string(r.leadTransferee), "term", r.term)
			r.abortTransfer()
		}
	}
	// A newly elected leader gets a full window before its first check:
	// reset sets electionElapsed to 0 when it wins.
	if r.electionElapsed >= r.cfg.ElectionTicks {
		r.electionElapsed = 0
		if r.cfg.CheckQuorum {
			// Thesis §6.2: a leader that cannot reach a quorum steps down,
			// so clients stop waiting on it and its lease expires.
			if !r.quorumActive() {
				r.logger.Info("stepping down: quorum not active", "term", r.term)
				r.becomeFollower(r.term, "")
				return
			}
		}
	}
	// Members, not the prs map: the order of the messages must not depend
	// on map iteration, or a run could not be replayed.
	for _, id := range r.members {
		if pr := r.prs[id]; pr != nil && pr.state == ProgressSnapshot {
			r.tickSnapshot(id, pr)
		}
	}
	if r.heartbeatElapsed >= r.cfg.HeartbeatTicks {
		r.heartbeatElapsed = 0
		r.detectStalls()
		r.bcastHeartbeat()
	}
}

// quorumActive reports whether a quorum of the configuration (both halves
// of a joint one) was heard from in the current check-quorum window.
func (r *raft) quorumActive() bool {
	r.prs[r.id].heard = r.ticks + 1
	active := func(p *progress) uint64 {
		if r.heardRecently(p) {
			return 1
		}
		return 0
	}
	in := r.quorumOf(r.conf.Voters, active)
	out := r.quorumOf(r.conf.OutgoingVoters, active)
	return in == 1 && (!r.conf.Joint() || out == 1)
}

// checkQuorumTicks is the check-quorum window: a leader steps down when it
// has not heard from a quorum for that many ticks.
func (r *raft) checkQuorumTicks() int {
	return max(r.cfg.CheckQuorumTicks, r.cfg.ElectionTicks)
}

// heardRecently reports whether the leader heard from the member within
// the check-quorum window.
func (r *raft) heardRecently(p *progress) bool {
	return p.heard > 0 && r.ticks+1-p.heard <= uint64(r.checkQuorumTicks())
}

// inLease reports whether this node refuses to grant votes or adopt a
// higher term from a vote request because it heard from a leader within
// the minimum election timeout (thesis §4.2.3 and §9.6), or because it
// just started with lease reads on.
func (r *raft) inLease() bool {
	if !r.cfg.CheckQuorum {
		return false
	}
	return (r.lead != "" && r.electionElapsed < r.cfg.ElectionTicks) || r.voteGuard > 0
}

// campaign starts a (pre-)election. transfer marks a campaign started by
// MsgTimeoutNow: it skips the pre-vote and voters grant it despite their
// check-quorum lease (thesis §3.10).
func (r *raft) campaign(pre, transfer bool) {
	if !r.promotable() {
		return
	}
	var typ MessageType
	var term uint64
	if pre {
		r.becomePreCandidate()
		typ, term = MsgPreVote, r.term+1
	} else {
		r.becomeCandidate()
		typ, term = MsgVote, r.term
	}
	if r.poll(r.id, true) {
		// Single voter: it wins at once.
		return
	}
	lastIndex, lastTerm := r.log.lastIndex(), r.log.lastTerm()
	for i, v := range r.voterSet {
		if v == r.id || slices.Contains(r.voterSet[:i], v) {
			continue
		}
		r.send(Message{Type: typ, To: v, Term: term, Index: lastIndex, LogTerm: lastTerm, Transfer: transfer})
	}
}

// poll records a vote and acts on the outcome; it reports whether the
// election ended (won or lost).
func (r *raft) poll(from transport.NodeID, granted bool) bool {
	if r.votes == nil {
		r.votes = make(map[transport.NodeID]bool, len(r.voterSet))
	}
	if _, seen := r.votes[from]; !seen {
		r.votes[from] = granted
	}
	if r.role == Candidate {
		r.recordTermVote(from, granted)
	}
	// Thesis §4.3: in a joint configuration an election needs majorities
	// of both the incoming and the outgoing voters.
	won, lost := r.conf.jointVoteResult(r.votes)
	switch {
	case won:
		if r.role == PreCandidate {
			r.campaign(false, false)
		} else {
			r.becomeLeader()
		}
		return true
	case lost:
		r.becomeFollower(r.term, "")
		return true
	}
	return false
}

// recordTermVote remembers an answer to this node's candidacy in the
// current term.
func (r *raft) recordTermVote(from transport.NodeID, granted bool) {
	if r.termVotes == nil {
		r.termVotes = make(map[transport.NodeID]bool, len(r.voterSet))
	}
	if _, seen := r.termVotes[from]; !seen {
		r.termVotes[from] = granted
	}
}

// handleVote answers RequestVote and pre-vote requests (§5.2, §5.4.1).
func (r *raft) handleVote(m *Message) {
	resp := MsgVoteResp
	if m.Type == MsgPreVote {
		resp = MsgPreVoteResp
	}
	// One vote per term (§5.2): we may vote for m.From if we already did,
	// or if we voted for nobody and follow no leader in this term. A
	// pre-vote for a future term binds nothing.
	canVote := r.vote == m.From ||
		(r.vote == "" && r.lead == "") ||
		(m.Type == MsgPreVote && m.Term > r.term)
	// §5.4.1 election restriction: only a candidate whose log is at least
	// as up-to-date as ours can hold every committed entry.
	if canVote && r.log.isUpToDate(m.Index, m.LogTerm) {
		r.send(Message{Type: resp, To: m.From, Term: m.Term})
		if m.Type == MsgVote {
			r.electionElapsed = 0
			r.vote = m.From
		}
		return
	}
	r.send(Message{Type: resp, To: m.From, Term: r.term, Reject: true})
}
