package raft

import (
	"errors"
	"fmt"
	"slices"

	"github.com/distkit/distkit/transport"
)

// Log replication (§5.3) and commitment (§5.4.2), with batching,
// pipelining and flow control.

// appendEntry appends one entry of the current term to the leader's log.
func (r *raft) appendEntry(typ EntryType, data []byte) uint64 {
	i := r.log.lastIndex() + 1
	u := &r.log.unstable
	if i == u.offset+uint64(len(u.entries)) {
		u.entries = append(u.entries, Entry{Term: r.term, Index: i, Type: typ, Data: data})
	} else {
		r.log.append([]Entry{{Term: r.term, Index: i, Type: typ, Data: data}})
	}
	// The leader's own copy counts towards a quorum only once the caller
	// reports it durable (Advance): see selfDurable.
	r.bcastPending = true
	return i
}

// selfDurable records, on a leader, that its log is durable up to the end
// of what the caller persisted and acknowledged with Advance, and commits
// what that allows. Counting the leader's copy only now (not when it is
// appended) is what lets a caller send MsgApps while its own fsync runs
// (thesis §10.2.1).
func (r *raft) selfDurable() {
	if r.role != Leader {
		return
	}
	if r.prs[r.id].maybeUpdate(r.log.stableIndex()) && r.maybeCommit() {
		r.bcastPending = true
	}
}

// propose appends a command to the leader's log.
func (r *raft) propose(data []byte) (index, term uint64, err error) {
	if r.role != Leader {
		return 0, 0, &NotLeaderError{Leader: r.lead}
	}
	if r.leadTransferee != "" {
		// Thesis §3.10: while handing over, the leader accepts nothing
		// that would keep the target behind.
		return 0, 0, fmt.Errorf("%w: %w", ErrProposalDropped, ErrTransferInProgress)
	}
	size := uint64(len(data))
	if limit := r.cfg.MaxUncommittedBytes; limit > 0 && r.uncommittedBytes > 0 && r.uncommittedBytes+size > limit {
		// Flow control: always accept into an empty window so that one
		// large entry cannot be refused forever.
		return 0, 0, fmt.Errorf("%w: %d uncommitted bytes (limit %d)", ErrProposalDropped, r.uncommittedBytes, limit)
	}
	r.uncommittedBytes += size
	return r.appendEntry(EntryNormal, data), r.term, nil
}

// detectStalls moves back to probing any pipeline whose match has not moved
// for two heartbeat intervals while messages are in flight: one of them was
// lost, and without new proposals nothing else would resend it.
func (r *raft) detectStalls() {
	for _, id := range r.members {
		pr := r.prs[id]
		if id == r.id || pr == nil || pr.state != ProgressReplicate {
			continue
		}
		if pr.inflight.count == 0 || pr.match != pr.matchAtHeartbeat {
			pr.matchAtHeartbeat = pr.match
			pr.stalledBeats = 0
			continue
		}
		pr.stalledBeats++
		if pr.stalledBeats >= 2 {
			pr.stalledBeats = 0
			pr.becomeProbe()
		}
	}
}

// handleAppend is the follower's side of AppendEntries (§5.3).
func (r *raft) handleAppend(m *Message) error {
	prevIndex, prevTerm, ents := m.Index, m.LogTerm, m.Entries
	if c := r.log.committed; prevIndex < c {
		// A late or duplicated MsgApp. Entries up to our commit index
		// agree with every later leader's log (Leader Completeness, §5.4),
		// so skip them and keep the rest rather than drop the message.
		if last := prevIndex + uint64(len(ents)); last <= c {
			r.send(Message{Type: MsgAppResp, To: m.From, Index: c})
			return nil
		}
		ents = ents[c-prevIndex:]
		prevIndex, prevTerm = c, r.log.termOr0(c)
	}
	lastNew, appended, ok, err := r.log.maybeAppend(prevIndex, prevTerm, m.Commit, ents)
	if err != nil {
		return err
	}
	// Thesis §4.1: configurations take effect when appended, and those of
	// truncated entries are rolled back.
	r.confAppended(appended)
	if ok {
		r.send(Message{Type: MsgAppResp, To: m.From, Index: lastNew})
		return nil
	}
	// Consistency check failed. Point the leader at the last entry that
	// could still match: every entry after the hint has a term above
	// m.LogTerm, so the leader's entries there cannot be the same.
	hint := r.log.findConflictByTerm(min(prevIndex, r.log.lastIndex()), prevTerm)
	r.send(Message{
		Type:       MsgAppResp,
		To:         m.From,
		Index:      m.Index,
		Reject:     true,
		RejectHint: hint,
		LogTerm:    r.log.termOr0(hint),
	})
	return nil
}

func (r *raft) handleHeartbeat(m *Message) {
	// The leader sends min(match, commit), so every entry up to m.Commit
	// is known to agree with its log.
	r.log.commitTo(min(m.Commit, r.log.lastIndex()))
	// Echo the heartbeat round, if any (ReadIndex, see readonly.go). A
	// copy: m.Context may alias a network buffer.
	r.send(Message{Type: MsgHeartbeatResp, To: m.From, Index: r.log.lastIndex(), Context: slices.Clone(m.Context)})
}

func (r *raft) handleAppendResponse(m *Message, pr *progress) {
	if m.Reject {
		probe := m.RejectHint
		if m.LogTerm > 0 {
			probe = r.log.findConflictByTerm(m.RejectHint, m.LogTerm)
		}
		acked := pr.match
		if pr.maybeDecrTo(m.Index, probe) {
			if pr.match < acked {
				r.logger.Warn("follower lost entries it acknowledged (restarted without its data?); probing below its old match",
					"to", string(m.From), "match", acked, "hint", probe)
			}
			if pr.state == ProgressReplicate {
				pr.becomeProbe()
			}
			r.sendAppend(m.From, pr, true)
		}
		return
	}
	if !pr.maybeUpdate(m.Index) {
		return
	}
	switch pr.state {
	case ProgressProbe:
		pr.becomeReplicate()
	case ProgressSnapshot:
		if pr.snap.snap == nil || pr.match >= pr.snap.snap.Meta.Index {
			r.logger.Info("snapshot transfer done", "to", string(m.From), "match", pr.match)
			pr.becomeReplicate()
		}
	case ProgressReplicate:
		pr.inflight.freeLE(m.Index)
	}
	if r.maybeCommit() {
		// Followers learn the new commit index with the next append.
		r.bcastPending = true
	}
	for r.sendAppend(m.From, pr, false) {
	}
	if m.From == r.leadTransferee && pr.match == r.log.lastIndex() {
		// Thesis §3.10: the target has caught up; tell it to campaign.
		r.sendTimeoutNow(m.From)
	}
}

func (r *raft) handleHeartbeatResponse(m *Message, pr *progress) {
	r.readAck(m)
	pr.probeSent = false
	if pr.state != ProgressSnapshot && pr.match < r.log.lastIndex() {
		// A probe goes out even without new entries: its purpose is to
		// find where the logs agree (or that a snapshot is needed).
		r.sendAppend(m.From, pr, pr.state == ProgressProbe)
	}
}

// maybeCommit advances the commit index to the highest index a quorum
// holds, but only through an entry of the current term (§5.4.2: counting
// replicas of older entries is unsafe, see Figure 8).
//
// Thesis §4.3: in a joint configuration the index must be held by
// majorities of both the incoming and the outgoing voters. Learners never
// count, and neither does a leader that is not a voter of the
// configuration in force (thesis §4.2.2).
func (r *raft) maybeCommit() bool {
	mci := r.quorumMatch()
	if mci > r.log.committed && r.log.termOr0(mci) == r.term {
		r.log.commitTo(mci)
		return true
	}
	return false
}

// flush sends the entries appended since the last flush to every follower
// (one MsgApp per follower for any number of proposals).
func (r *raft) flush() {
	if r.role == Leader {
		r.finishConfChange()
		r.flushReads()
	}
	if !r.bcastPending {
		return
	}
	r.bcastPending = false
	if r.role != Leader {
		return
	}
	for _, v := range r.members {
		if v == r.id {
			continue
		}
		// A commit-only change is not sent on its own: the next append
		// or heartbeat carries it, which halves the messages under load.
		pr := r.prs[v]
		for r.sendAppend(v, pr, false) {
		}
	}
}

// sendAppend sends one MsgApp to a follower, if flow control allows, or
// starts a snapshot when the entries it needs are compacted. It reports
// whether a message with entries was sent (callers loop to fill the
// pipeline).
func (r *raft) sendAppend(to transport.NodeID, pr *progress, sendIfEmpty bool) bool {
	if pr.isPaused() {
		return false
	}
	last := r.log.lastIndex()
	if pr.next > last+1 {
		pr.next = last + 1
	}
	prevIndex := pr.next - 1
	prevTerm, errTerm := r.log.term(prevIndex)
	ents, errEnts := r.log.entriesFrom(pr.next, r.cfg.MaxMsgBytes)
	if errors.Is(errTerm, ErrCompacted) || errors.Is(errEnts, ErrCompacted) {
		r.startSnapshot(to, pr)
		return false
	}
	if errTerm != nil || errEnts != nil {
		r.logger.Warn("cannot read log for append", "to", string(to), "next", pr.next, "err", errors.Join(errTerm, errEnts))
		return false
	}
	if len(ents) == 0 && !sendIfEmpty {
		return false
	}
	r.send(Message{Type: MsgApp, To: to, Index: prevIndex, LogTerm: prevTerm, Entries: ents, Commit: r.log.committed})
	switch pr.state {
	case ProgressReplicate:
		if n := len(ents); n > 0 {
			// Optimistic pipelining: assume delivery, roll back on reject.
			last := ents[n-1].Index
			pr.next = last + 1
			pr.inflight.add(last, entsSize(ents))
		}
	case ProgressProbe:
		pr.probeSent = true
	}
	return len(ents) > 0
}

// bcastHeartbeat sends every member a heartbeat. With reads waiting for a
// round or lease reads on, it starts a new heartbeat round whose number the
// voters echo (see readonly.go).
func (r *raft) bcastHeartbeat() {
	ctx := r.startReadRound()
	for _, v := range r.members {
		if v == r.id {
			continue
		}
		pr := r.prs[v]
		r.send(Message{Type: MsgHeartbeat, To: v, Commit: min(pr.match, r.log.committed), Context: ctx})
	}
}
