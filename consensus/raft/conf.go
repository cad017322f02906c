package raft

import (
	"fmt"
	"math"
	"slices"

	"github.com/distkit/distkit/transport"
)

// How the core applies membership changes (thesis §4.1): a configuration
// takes effect as soon as its entry is in the log, committed or not, and is
// rolled back if that entry is truncated away. The core therefore keeps the
// configurations of its log as a short history: confs[0] is the
// configuration as of the applied index (or the snapshot), later elements
// come from EntryConfChange entries, and the last one is in force.

// confAt is the configuration set by the entry at index.
type confAt struct {
	index uint64
	m     Membership
}

// initConf rebuilds the configuration history at startup: the snapshot's
// membership (or base, for a node without one), then every EntryConfChange
// entry in the log after it.
func (r *raft) initConf(base Membership, baseIndex uint64) error {
	r.confs = []confAt{{index: baseIndex, m: base}}
	lo, last := r.log.firstIndex(), r.log.lastIndex()
	for lo <= last {
		ents, err := r.log.slice(lo, last+1, max(r.cfg.MaxMsgBytes, 1<<20))
		if err != nil {
			return fmt.Errorf("%w: reading the log for membership changes: %w", ErrStorage, err)
		}
		if err := r.scanConf(ents); err != nil {
			return fmt.Errorf("%w: log entry: %w", ErrStorage, err)
		}
		lo = ents[len(ents)-1].Index + 1
	}
	r.setConf()
	r.compactConf(r.log.applied)
	return nil
}

// scanConf records the configurations set by ents (consecutive, appended).
func (r *raft) scanConf(ents []Entry) error {
	for i := range ents {
		e := &ents[i]
		if e.Type != EntryConfChange {
			continue
		}
		var ce ConfChangeEntry
		if err := ce.UnmarshalBinary(e.Data); err != nil {
			return fmt.Errorf("conf change at index %d: %w", e.Index, err)
		}
		r.confs = append(r.confs, confAt{index: e.Index, m: ce.Membership})
	}
	return nil
}

// confAppended is called after entries were appended to the log at
// ents[0].Index, replacing any suffix from there: configurations of the
// replaced entries are rolled back, those of the new ones take effect.
func (r *raft) confAppended(ents []Entry) {
	if len(ents) == 0 {
		return
	}
	changed := r.truncateConf(ents[0].Index)
	n := len(r.confs)
	if err := r.scanConf(ents); err != nil {
		// validate refuses such messages; a log that holds one anyway is
		// a bug or corruption, and the entry is skipped with a complaint.
		r.logger.Error("undecodable membership change in the log", "err", err)
	}
	if changed || len(r.confs) != n {
		r.setConf()
	}
}

// truncateConf drops the configurations of entries at index from and
// later (a log truncation); it reports whether any was dropped.
func (r *raft) truncateConf(from uint64) bool {
	n := len(r.confs)
	for n > 1 && r.confs[n-1].index >= from {
		n--
	}
	if n == len(r.confs) {
		return false
	}
	clear(r.confs[n:])
	r.confs = r.confs[:n]
	return true
}

// restoreConf replaces the history with a received snapshot's membership.
func (r *raft) restoreConf(s *Snapshot) {
	r.confs = []confAt{{index: s.Meta.Index, m: s.Meta.Membership.Clone()}}
	r.setConf()
}

// compactConf forgets configurations superseded at or before applied:
// nobody will ask for the membership as of an earlier index.
func (r *raft) compactConf(applied uint64) {
	k := 0
	for k+1 < len(r.confs) && r.confs[k+1].index <= applied {
		k++
	}
	if k > 0 {
		r.confs = slices.Delete(r.confs, 0, k)
	}
}

// confIndex is the index of the entry that set the configuration in force.
func (r *raft) confIndex() uint64 { return r.confs[len(r.confs)-1].index }

// membershipAt returns the configuration as of log index i.
func (r *raft) membershipAt(i uint64) (Membership, error) {
	if i < r.confs[0].index {
		return Membership{}, fmt.Errorf("%w: membership as of index %d (the oldest kept is as of %d)", ErrCompacted, i, r.confs[0].index)
	}
	k := len(r.confs) - 1
	for r.confs[k].index > i {
		k--
	}
	return r.confs[k].m.Clone(), nil
}

// setConf puts the last configuration of the history in force and, on a
// leader, starts or stops tracking the nodes it adds or removes.
func (r *raft) setConf() {
	r.conf = r.confs[len(r.confs)-1].m
	r.members = r.conf.Nodes()
	r.voterSet = append(append(r.voterSet[:0], r.conf.Voters...), r.conf.OutgoingVoters...)
	r.isVoter = r.conf.IsVoter(r.id)
	if r.role != Leader {
		return
	}
	last := r.log.lastIndex()
	for _, id := range r.members {
		if r.prs[id] == nil {
			// A new member: probe from the end of the log, and let it
			// count as active until the next check-quorum round.
			r.prs[id] = r.newProgress(last)
			r.prs[id].heard = r.ticks + 1
		}
	}
	for id := range r.prs {
		if id != r.id && !slices.Contains(r.members, id) {
			// Thesis §4.2.2: a removed node gets nothing more, not even
			// the entry that removes it.
			delete(r.prs, id)
		}
	}
	if r.leadTransferee != "" && !slices.Contains(r.conf.Voters, r.leadTransferee) {
		r.abortTransfer()
	}
}

// committedInTerm reports whether a leader has committed an entry of its
// own term, which settles whatever the previous leaders left uncommitted.
func (r *raft) committedInTerm() bool { return r.log.termOr0(r.log.committed) == r.term }

// proposeConfChange appends a membership change to the leader's log; the new
// configuration takes effect at once (thesis §4.1).
func (r *raft) proposeConfChange(cc ConfChange) (index, term uint64, err error) {
	if r.role != Leader {
		return 0, 0, &NotLeaderError{Leader: r.lead}
	}
	if r.leadTransferee != "" {
		return 0, 0, fmt.Errorf("%w: %w", ErrProposalDropped, ErrTransferInProgress)
	}
	switch {
	case r.confIndex() > r.log.committed:
		return 0, 0, fmt.Errorf("%w: the change at index %d is not committed yet", ErrConfChangeInProgress, r.confIndex())
	case !r.committedInTerm():
		// The fix to the single-server change published by Ongaro (raft-dev,
		// 2015): a leader must not change the configuration before it has
		// committed an entry of its term, or two changes made by
		// successive leaders could each miss the other's majority.
		return 0, 0, fmt.Errorf("%w: the leader has not committed an entry of term %d yet", ErrConfChangeInProgress, r.term)
	case r.conf.Joint() && !cc.LeaveJoint:
		return 0, 0, fmt.Errorf("%w: in a joint configuration (leave it first)", ErrConfChangeInProgress)
	}
	next, err := r.conf.Apply(cc)
	if err != nil {
		return 0, 0, err
	}
	return r.appendConf(cc, next), r.term, nil
}

// appendConf appends the entry changing the configuration to next.
func (r *raft) appendConf(cc ConfChange, next Membership) uint64 {
	data, _ := ConfChangeEntry{Change: cc, Membership: next}.AppendBinary(nil)
	// Counted like a proposal, as Advance discounts every committed entry
	// of the term.
	r.uncommittedBytes += uint64(len(data))
	index := r.appendEntry(EntryConfChange, data)
	r.confs = append(r.confs, confAt{index: index, m: next})
	r.setConf()
	r.logger.Info("membership change appended", "index", index, "voters", next.Voters, "learners", next.Learners, "outgoing", next.OutgoingVoters)
	return index
}

// finishConfChange runs on a leader at the end of each step: once the
// configuration in force is committed, it leaves a joint configuration
// with AutoLeave, and steps down if it is no longer a voter (thesis §4.2.2:
// it led, without counting itself, until the change committed).
func (r *raft) finishConfChange() {
	if r.confIndex() > r.log.committed {
		return
	}
	switch {
	case r.conf.Joint() && r.conf.AutoLeave && r.leadTransferee == "":
		r.appendConf(ConfChange{LeaveJoint: true}, Membership{Voters: slices.Clone(r.conf.Voters), Learners: slices.Clone(r.conf.Learners)})
	case !r.isVoter:
		// Let the others learn the commit index, hand over to the most
		// up-to-date voter so that nobody waits for an election timeout,
		// and step down.
		r.bcastHeartbeat()
		if to := r.bestTransferTarget(); to != "" && r.prs[to].match == r.log.lastIndex() {
			r.sendTimeoutNow(to)
		}
		r.logger.Info("stepping down: removed from the configuration", "term", r.term)
		r.becomeFollower(r.term, "")
	}
}

// newProgress returns the leader's initial view of a follower.
func (r *raft) newProgress(last uint64) *progress {
	maxInflightBytes := r.cfg.MaxInflightBytes
	if maxInflightBytes == 0 {
		maxInflightBytes = uint64(r.cfg.MaxInflightMsgs) * r.cfg.MaxMsgBytes
	}
	// Figure 2: nextIndex starts just after the leader's last entry.
	return &progress{next: last + 1, inflight: newInflights(r.cfg.MaxInflightMsgs, maxInflightBytes)}
}

// quorumMatch returns the highest index a quorum of the configuration holds
// (majorities of both halves of a joint configuration).
func (r *raft) quorumMatch() uint64 {
	in := r.matchQuorum(r.conf.Voters)
	if !r.conf.Joint() {
		return in
	}
	return min(in, r.matchQuorum(r.conf.OutgoingVoters))
}

// matchQuorum returns the highest index a majority of ids holds (the hot
// path of every commit, hence not quorumOf's closure).
func (r *raft) matchQuorum(ids []transport.NodeID) uint64 {
	if len(ids) == 0 {
		return math.MaxUint64
	}
	r.matchBuf = r.matchBuf[:0]
	for _, id := range ids {
		var v uint64
		if pr := r.prs[id]; pr != nil {
			v = pr.match
		}
		r.matchBuf = append(r.matchBuf, v)
	}
	return quorumValue(r.matchBuf)
}

// quorumOf returns the largest v such that a majority of ids have val >= v.
func (r *raft) quorumOf(ids []transport.NodeID, val func(*progress) uint64) uint64 {
	r.matchBuf = r.matchBuf[:0]
	for _, id := range ids {
		var v uint64
		if pr := r.prs[id]; pr != nil {
			v = val(pr)
		}
		r.matchBuf = append(r.matchBuf, v)
	}
	if len(ids) == 0 {
		return math.MaxUint64
	}
	return quorumValue(r.matchBuf)
}
