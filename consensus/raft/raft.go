package raft

import (
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"slices"

	"github.com/distkit/distkit/transport"
)

// Role is a node's part in the protocol.
type Role uint8

const (
	// Follower: answers leaders and candidates, campaigns when the leader
	// goes silent.
	Follower Role = iota
	// PreCandidate: asking whether it could win an election, without
	// raising its term yet (thesis §9.6).
	PreCandidate
	// Candidate: campaigning for votes in a new term (§5.2).
	Candidate
	// Leader: accepts proposals and replicates the log (§5.3).
	Leader
)

// String returns the role's name.
func (r Role) String() string {
	switch r {
	case Follower:
		return "follower"
	case PreCandidate:
		return "pre-candidate"
	case Candidate:
		return "candidate"
	case Leader:
		return "leader"
	}
	return "unknown"
}

// raft is the protocol state machine. RawNode wraps it with the Ready
// bookkeeping; raft itself only reacts to inputs and queues messages.
type raft struct {
	id  transport.NodeID
	cfg Config

	term uint64
	vote transport.NodeID
	log  *raftLog

	role Role
	lead transport.NodeID
	// conf is the configuration in force (the last of confs); members is
	// conf.Nodes() and voterSet its incoming and outgoing voters (a node
	// may appear twice there), both in a deterministic order.
	conf     Membership
	confs    []confAt
	members  []transport.NodeID
	voterSet []transport.NodeID
	// isVoter caches conf.IsVoter(id), asked on every step.
	isVoter bool
	// prs is the leader's view of every member (itself included); it is
	// rebuilt at each election win and nil otherwise.
	prs   map[transport.NodeID]*progress
	votes map[transport.NodeID]bool
	// termVotes are the answers to this node's own candidacy in the
	// current term, kept until the term changes: a vote granted for the
	// term stays valid when it arrives after the candidate timed out and
	// went back to a pre-vote (responses slower than an election timeout).
	termVotes map[transport.NodeID]bool

	// leadTransferee is the voter a leader is handing leadership to
	// (thesis §3.10), "" when none; transferElapsed counts the ticks since
	// the transfer started. timeoutNowSent says this leader sent a
	// MsgTimeoutNow in its term, after which its lease is void.
	leadTransferee  transport.NodeID
	transferElapsed int
	timeoutNowSent  bool
	// reads holds the ReadIndex requests (thesis §6.4).
	reads readOnly
	// readStates are the answered reads for the next Ready.
	readStates []ReadState
	// ticks counts every Tick (a leader's clock for leases).
	ticks uint64
	// voteGuard counts down the ticks after a start during which a node
	// with lease reads refuses votes, as if it had just heard from a
	// leader: it may have, before it restarted (thesis §6.4.1).
	voteGuard int

	electionElapsed           int
	heartbeatElapsed          int
	randomizedElectionTimeout int
	rng                       *rand.Rand

	// msgs are queued for the next Ready.
	msgs []Message
	// bcastPending defers the MsgApp broadcast of new entries to the next
	// Ready, so that all proposals of one step travel in one message.
	bcastPending bool
	// uncommittedBytes is the data of entries this leader appended in its
	// term and has not yet seen committed (flow control).
	uncommittedBytes uint64
	// incoming is the snapshot a follower is receiving in chunks.
	incoming *incomingSnapshot
	// matchBuf is scratch space for the commit computation.
	matchBuf []uint64

	logger *slog.Logger
}

// incomingSnapshot is a follower's partial snapshot transfer.
type incomingSnapshot struct {
	meta SnapshotMeta
	buf  []byte
}

func newRaft(cfg Config) (*raft, error) {
	hs, membership, err := cfg.Storage.InitialState()
	if err != nil {
		return nil, fmt.Errorf("%w: InitialState: %w", ErrStorage, err)
	}
	if err := membership.Validate(); err != nil {
		return nil, fmt.Errorf("%w: InitialState: %w", ErrStorage, err)
	}
	fresh := len(membership.Voters) == 0
	if fresh {
		membership = Membership{Voters: slices.Clone(cfg.Peers)}
		if err := validateMembership(cfg, membership); err != nil {
			return nil, err
		}
	}
	log, err := newRaftLog(cfg.Storage, cfg.Applied)
	if err != nil {
		return nil, err
	}
	last, err := cfg.Storage.LastIndex()
	if err != nil {
		return nil, fmt.Errorf("%w: LastIndex: %w", ErrStorage, err)
	}
	if hs.Commit > last {
		return nil, fmt.Errorf("%w: saved commit index %d is beyond the last log index %d", ErrStorage, hs.Commit, last)
	}
	log.commitTo(hs.Commit)
	if log.applied > log.committed {
		// The state machine applied only committed entries, so they are
		// committed even if the saved commit index lags behind (a commit
		// index change alone is not synced, see Ready.MustSync). They were
		// durable before they were applied. Delivering them again would
		// apply them twice.
		if log.applied > last {
			return nil, fmt.Errorf("%w: Applied (%d) is beyond the last log index %d", ErrInvalidConfig, log.applied, last)
		}
		log.commitTo(log.applied)
	}
	h := fnv.New64a()
	h.Write([]byte(cfg.ID))
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &raft{
		id:     cfg.ID,
		cfg:    cfg,
		term:   hs.Term,
		vote:   hs.Vote,
		log:    log,
		rng:    rand.New(rand.NewPCG(cfg.Seed, h.Sum64())),
		logger: logger.With("raft", string(cfg.ID)),
	}
	var baseIndex uint64
	if !fresh {
		baseIndex = log.firstIndex() - 1
	}
	if err := r.initConf(membership, baseIndex); err != nil {
		return nil, err
	}
	if cfg.LeaseReads {
		r.voteGuard = cfg.ElectionTicks
	}
	r.becomeFollower(r.term, "")
	return r, nil
}

// promotable reports whether this node may campaign: it votes in the
// configuration in force (learners and non-members never campaign).
func (r *raft) promotable() bool { return r.isVoter }

func (r *raft) hardState() HardState {
	return HardState{Term: r.term, Vote: r.vote, Commit: r.log.committed}
}

// send queues m, stamping the sender and, unless set, the current term.
func (r *raft) send(m Message) {
	m.From = r.id
	if m.Term == 0 {
		m.Term = r.term
	}
	r.msgs = append(r.msgs, m)
}

// reset clears the per-term state when the role or term changes.
func (r *raft) reset(term uint64) {
	if r.term != term {
		r.term = term
		r.vote = ""
		clear(r.termVotes)
	}
	r.lead = ""
	r.electionElapsed = 0
	r.heartbeatElapsed = 0
	r.randomizedElectionTimeout = r.cfg.ElectionTicks + r.rng.IntN(r.cfg.ElectionTicks)
	clear(r.votes)
	r.prs = nil
	r.bcastPending = false
	r.uncommittedBytes = 0
	r.leadTransferee, r.transferElapsed, r.timeoutNowSent = "", 0, false
	r.reads.reset()
}

func (r *raft) becomeFollower(term uint64, lead transport.NodeID) {
	r.reset(term)
	r.role = Follower
	r.lead = lead
	r.logger.Debug("became follower", "term", term, "leader", string(lead))
}

func (r *raft) becomePreCandidate() {
	// No term change and no vote: a pre-election must not disturb anyone
	// (thesis §9.6).
	r.reset(r.term)
	r.role = PreCandidate
	r.logger.Debug("became pre-candidate", "term", r.term)
}

func (r *raft) becomeCandidate() {
	r.reset(r.term + 1)
	r.vote = r.id
	r.role = Candidate
	r.logger.Debug("became candidate", "term", r.term)
}

func (r *raft) becomeLeader() {
	r.reset(r.term)
	r.role = Leader
	r.lead = r.id
	last := r.log.lastIndex()
	r.prs = make(map[transport.NodeID]*progress, len(r.members)+1)
	for _, v := range r.members {
		pr := r.newProgress(last)
		// A new leader gets a full check-quorum window before it is
		// judged: everyone counts as heard from at the election.
		pr.heard = r.ticks + 1
		r.prs[v] = pr
	}
	self := r.newProgress(last)
	// Only what is durable counts (selfDurable).
	self.match = r.log.stableIndex()
	self.heard = r.ticks + 1
	self.state = ProgressReplicate
	r.prs[r.id] = self
	// §5.4.2 and §8: a leader commits entries of earlier terms only by
	// committing one of its own term, so it starts with an empty one.
	r.appendEntry(EntryNoop, nil)
	r.logger.Info("became leader", "term", r.term, "lastIndex", r.log.lastIndex())
}

// step handles one message from a peer.
func (r *raft) step(m *Message) error {
	switch {
	case m.Term > r.term:
		if m.Type == MsgVote || m.Type == MsgPreVote {
			// Thesis §4.2.3 and §9.6: a node that heard from a leader
			// within the minimum election timeout neither grants a vote
			// nor adopts the term. A node rejoining after a partition
			// therefore cannot depose a healthy leader.
			// A campaign started by a leadership transfer (MsgTimeoutNow
			// from the leader itself, thesis §3.10) is the exception.
			if r.inLease() && !m.Transfer {
				return nil
			}
		}
		switch {
		case m.Type == MsgPreVote:
			// Asking about a future term changes nothing here.
		case m.Type == MsgPreVoteResp && !m.Reject:
			// A granted pre-vote echoes the future term; the candidate
			// adopts it only when it really campaigns.
		default:
			var lead transport.NodeID
			if m.Type == MsgApp || m.Type == MsgHeartbeat || m.Type == MsgSnap {
				lead = m.From
			}
			r.becomeFollower(m.Term, lead)
		}
	case m.Term < r.term:
		switch {
		case m.Type == MsgApp || m.Type == MsgHeartbeat:
			// A leader cut off by a partition keeps its old term while
			// we moved on; tell it, so it steps down. With pre-vote and
			// check-quorum it would otherwise never learn (our side does
			// not disrupt it with vote requests), and in a cluster whose
			// nodes disagree on those settings neither side would move.
			r.send(Message{Type: MsgAppResp, To: m.From})
		case m.Type == MsgPreVote:
			// Reject with our term so the pre-candidate catches up.
			r.send(Message{Type: MsgPreVoteResp, To: m.From, Reject: true})
		}
		return nil
	}

	switch m.Type {
	case MsgVote, MsgPreVote:
		r.handleVote(m)
		return nil
	case MsgReadIndex:
		r.handleReadIndex(m)
		return nil
	}
	switch r.role {
	case Leader:
		r.stepLeader(m)
	case Candidate, PreCandidate:
		return r.stepCandidate(m)
	default:
		return r.stepFollower(m)
	}
	return nil
}

func (r *raft) stepFollower(m *Message) error {
	switch m.Type {
	case MsgApp:
		r.electionElapsed = 0
		r.lead = m.From
		return r.handleAppend(m)
	case MsgHeartbeat:
		r.electionElapsed = 0
		r.lead = m.From
		r.handleHeartbeat(m)
	case MsgSnap:
		r.electionElapsed = 0
		r.lead = m.From
		r.handleSnapshot(m)
	case MsgTimeoutNow:
		r.handleTimeoutNow(m)
	case MsgReadIndexResp:
		r.handleReadIndexResp(m)
	}
	// Responses meant for an earlier role are dropped.
	return nil
}

func (r *raft) stepCandidate(m *Message) error {
	switch m.Type {
	case MsgApp, MsgHeartbeat, MsgSnap:
		// A leader exists for this term (§5.2): step down and follow it.
		r.becomeFollower(m.Term, m.From)
		return r.stepFollower(m)
	case MsgPreVoteResp:
		if r.role == PreCandidate && (m.Reject || m.Term == r.term+1) {
			r.poll(m.From, !m.Reject)
		}
	case MsgVoteResp:
		switch {
		case r.role == Candidate:
			r.poll(m.From, !m.Reject)
		case r.vote == r.id && !m.Reject:
			// A late vote for the candidacy this pre-candidate gave up in
			// this very term: one vote per term makes it as good as a
			// timely one.
			r.recordTermVote(m.From, true)
			if won, _ := r.conf.jointVoteResult(r.termVotes); won {
				r.logger.Info("won the election with late votes", "term", r.term)
				r.becomeLeader()
			}
		}
	}
	return nil
}

func (r *raft) stepLeader(m *Message) {
	pr := r.prs[m.From]
	if pr == nil || m.From == r.id {
		return
	}
	// Check-quorum counts any message of this term heard from a member,
	// however late: it proves the member is alive and follows this term.
	// Counting only timely responses makes a leader whose responses are
	// slower than an election timeout step down again and again.
	pr.heard = r.ticks + 1
	switch m.Type {
	case MsgAppResp:
		r.handleAppendResponse(m, pr)
	case MsgHeartbeatResp:
		r.handleHeartbeatResponse(m, pr)
	case MsgSnapResp:
		r.handleSnapshotResponse(m, pr)
	}
}
