package raft

import (
	"github.com/distkit/distkit/transport"
)

// Leader election (§5.2), with pre-vote (thesis §9.6) and check-quorum
// (thesis §6.2).

// tick advances logical time by one tick.
func (r *raft) tick() {
	if r.role == Leader {
		r.tickLeader()
		return
	}
	r.electionElapsed++
	if r.promotable() && r.electionElapsed >= r.randomizedElectionTimeout {
		r.electionElapsed = 0
		r.campaign(r.cfg.PreVote)
	}
}

func (r *raft) tickLeader() {
	r.heartbeatElapsed++
	r.electionElapsed++
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
			for id, pr := range r.prs {
				pr.recentActive = id == r.id
			}
		}
	}
	// Voters, not the prs map: the order of the messages must not depend
	// on map iteration, or a run could not be replayed.
	for _, id := range r.voters {
		if pr := r.prs[id]; pr.state == ProgressSnapshot {
			r.tickSnapshot(id, pr)
		}
	}
	if r.heartbeatElapsed >= r.cfg.HeartbeatTicks {
		r.heartbeatElapsed = 0
		r.detectStalls()
		r.bcastHeartbeat()
	}
}

func (r *raft) quorumActive() bool {
	active := 0
	for _, v := range r.voters {
		if pr := r.prs[v]; pr != nil && pr.recentActive {
			active++
		}
	}
	return active >= r.quorum()
}

// campaign starts a (pre-)election.
func (r *raft) campaign(pre bool) {
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
	for _, v := range r.voters {
		if v == r.id {
			continue
		}
		r.send(Message{Type: typ, To: v, Term: term, Index: lastIndex, LogTerm: lastTerm})
	}
}

// poll records a vote and acts on the outcome; it reports whether the
// election ended (won or lost).
func (r *raft) poll(from transport.NodeID, granted bool) bool {
	if r.votes == nil {
		r.votes = make(map[transport.NodeID]bool, len(r.voters))
	}
	if _, seen := r.votes[from]; !seen {
		r.votes[from] = granted
	}
	yes, no := 0, 0
	for _, v := range r.voters {
		g, ok := r.votes[v]
		switch {
		case !ok:
		case g:
			yes++
		default:
			no++
		}
	}
	switch {
	case yes >= r.quorum():
		if r.role == PreCandidate {
			r.campaign(false)
		} else {
			r.becomeLeader()
		}
		return true
	case no >= len(r.voters)-r.quorum()+1:
		r.becomeFollower(r.term, "")
		return true
	}
	return false
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
