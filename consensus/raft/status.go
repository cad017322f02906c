package raft

import "github.com/distkit/distkit/transport"

// Status is a snapshot of a node's state, for monitoring and tests.
type Status struct {
	// ID is this node.
	ID transport.NodeID
	// Role is this node's current role.
	Role Role
	// Term is the current term and Vote the node voted for in it ("" if none).
	Term uint64
	Vote transport.NodeID
	// Leader is the leader this node knows of ("" during an election).
	Leader transport.NodeID
	// Commit is the highest index known committed; Applied the highest
	// index delivered in CommittedEntries and acknowledged by Advance.
	Commit  uint64
	Applied uint64
	// LastIndex is the index of the last entry in the log.
	LastIndex uint64
	// FirstIndex is the first log index still held (entries before it are
	// in the snapshot).
	FirstIndex uint64
	// Voters is the current membership's voters (the incoming ones in a
	// joint configuration); Membership is the whole configuration in force
	// (the latest one appended to the log, committed or not).
	Voters     []transport.NodeID
	Membership Membership
	// MembershipIndex is the index of the entry that set Membership (the
	// snapshot's index, or 0 for the bootstrap configuration): Membership
	// is committed once Commit >= MembershipIndex.
	MembershipIndex uint64
	// LeadTransferee is the voter a leader is handing leadership to, ""
	// when none.
	LeadTransferee transport.NodeID
	// Progress is the leader's view of each member (voters and learners),
	// itself included; nil on followers and candidates.
	Progress map[transport.NodeID]ProgressStatus
	// UncommittedBytes is the data a leader has accepted and not yet seen
	// committed (flow control).
	UncommittedBytes uint64
}

// ProgressStatus is the leader's view of one follower's replication.
type ProgressStatus struct {
	// Match is the highest index known to be replicated on the follower.
	Match uint64
	// Next is the index of the next entry to send.
	Next uint64
	// Lag is how far the follower is behind: the leader's last index minus
	// Match (0 once it holds everything). Next says what was sent, not what
	// arrived, so it does not count.
	Lag uint64
	// Learner says the member is a learner (a non-voter) in the
	// configuration in force; otherwise it is a voter.
	Learner bool
	// State is how the leader replicates to the follower.
	State ProgressState
	// Inflight and InflightBytes count the MsgApps sent and not yet
	// acknowledged, and their entry bytes.
	Inflight      int
	InflightBytes uint64
	// RecentActive says the leader heard from the member (any message of
	// its term) within the check-quorum window (Config.CheckQuorumTicks).
	RecentActive bool
	// TicksSinceHeard is the number of ticks since the leader last heard
	// from the member (any message of its term). A new leader counts every
	// member as heard at its election.
	TicksSinceHeard uint64
	// SnapshotIndex and SnapshotSent describe an ongoing snapshot
	// transfer (State == ProgressSnapshot): the snapshot's index and the
	// bytes acknowledged so far.
	SnapshotIndex uint64
	SnapshotSent  uint64
}

// Status returns the node's current state. It allocates; do not call it on
// a hot path.
func (rn *RawNode) Status() Status {
	if rn == nil {
		return Status{}
	}
	r := rn.r
	if r == nil {
		return Status{} // a zero RawNode
	}
	s := Status{
		ID:               r.id,
		Role:             r.role,
		Term:             r.term,
		Vote:             r.vote,
		Leader:           r.lead,
		Commit:           r.log.committed,
		Applied:          r.log.applied,
		Voters:           append([]transport.NodeID(nil), r.conf.Voters...),
		Membership:       r.conf.Clone(),
		MembershipIndex:  r.confIndex(),
		LeadTransferee:   r.leadTransferee,
		UncommittedBytes: r.uncommittedBytes,
	}
	func() {
		// Storage failures surface through Ready; Status just omits.
		defer func() {
			if v := recover(); v != nil {
				_ = storageFailure(v)
			}
		}()
		s.LastIndex = r.log.lastIndex()
		s.FirstIndex = r.log.firstIndex()
	}()
	if r.role == Leader {
		s.Progress = make(map[transport.NodeID]ProgressStatus, len(r.prs))
		for id, pr := range r.prs {
			ps := ProgressStatus{
				Match:         pr.match,
				Next:          pr.next,
				Learner:       r.conf.IsLearner(id),
				State:         pr.state,
				Inflight:      pr.inflight.count,
				InflightBytes: pr.inflight.bytes,
				RecentActive:  r.heardRecently(pr),
			}
			if s.LastIndex > pr.match {
				ps.Lag = s.LastIndex - pr.match
			}
			if pr.heard > 0 {
				ps.TicksSinceHeard = r.ticks + 1 - pr.heard
			}
			if pr.snap.snap != nil {
				ps.SnapshotIndex = pr.snap.snap.Meta.Index
				ps.SnapshotSent = pr.snap.acked
			}
			s.Progress[id] = ps
		}
	}
	return s
}
