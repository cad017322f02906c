package raft

import (
	"errors"
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

	role   Role
	lead   transport.NodeID
	voters []transport.NodeID
	// prs is the leader's view of every voter (itself included); it is
	// rebuilt at each election win and nil otherwise.
	prs   map[transport.NodeID]*progress
	votes map[transport.NodeID]bool

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
	if len(membership.Voters) == 0 {
		membership = Membership{Voters: slices.Clone(cfg.Peers)}
	}
	if err := validateMembership(cfg.ID, membership); err != nil {
		return nil, err
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
		// The state machine cannot be ahead of what is known committed;
		// deliver from the commit point rather than skip entries.
		log.applied = log.committed
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
		voters: slices.Clone(membership.Voters),
		rng:    rand.New(rand.NewPCG(cfg.Seed, h.Sum64())),
		logger: logger.With("raft", string(cfg.ID)),
	}
	r.becomeFollower(r.term, "")
	return r, nil
}

func (r *raft) quorum() int { return len(r.voters)/2 + 1 }

func (r *raft) promotable() bool { return slices.Contains(r.voters, r.id) }

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
	}
	r.lead = ""
	r.electionElapsed = 0
	r.heartbeatElapsed = 0
	r.randomizedElectionTimeout = r.cfg.ElectionTicks + r.rng.IntN(r.cfg.ElectionTicks)
	clear(r.votes)
	r.prs = nil
	r.bcastPending = false
	r.uncommittedBytes = 0
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
	maxInflightBytes := r.cfg.MaxInflightBytes
	if maxInflightBytes == 0 {
		maxInflightBytes = uint64(r.cfg.MaxInflightMsgs) * r.cfg.MaxMsgBytes
	}
	r.prs = make(map[transport.NodeID]*progress, len(r.voters))
	for _, v := range r.voters {
		// Figure 2: nextIndex starts just after the leader's last entry.
		pr := &progress{next: last + 1, inflight: newInflights(r.cfg.MaxInflightMsgs, maxInflightBytes)}
		if v == r.id {
			pr.match = last
			pr.recentActive = true
			pr.state = ProgressReplicate
		}
		r.prs[v] = pr
	}
	// §5.4.2 and §8: a leader commits entries of earlier terms only by
	// committing one of its own term, so it starts with an empty one.
	r.appendEntry(EntryNoop, nil)
	r.logger.Info("became leader", "term", r.term, "lastIndex", r.log.lastIndex())
}

// appendEntry appends one entry of the current term to the leader's log.
func (r *raft) appendEntry(typ EntryType, data []byte) uint64 {
	i := r.log.lastIndex() + 1
	u := &r.log.unstable
	if i == u.offset+uint64(len(u.entries)) {
		u.entries = append(u.entries, Entry{Term: r.term, Index: i, Type: typ, Data: data})
	} else {
		r.log.append([]Entry{{Term: r.term, Index: i, Type: typ, Data: data}})
	}
	r.prs[r.id].maybeUpdate(i)
	r.bcastPending = true
	// A single-node cluster commits on its own; otherwise commits follow
	// acknowledgements.
	r.maybeCommit()
	return i
}

// propose appends a command to the leader's log.
func (r *raft) propose(data []byte) (index, term uint64, err error) {
	if r.role != Leader {
		return 0, 0, &NotLeaderError{Leader: r.lead}
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
	for id, pr := range r.prs {
		if pr.state == ProgressSnapshot {
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

// detectStalls moves back to probing any pipeline whose match has not moved
// for two heartbeat intervals while messages are in flight: one of them was
// lost, and without new proposals nothing else would resend it.
func (r *raft) detectStalls() {
	for id, pr := range r.prs {
		if id == r.id || pr.state != ProgressReplicate {
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

// step handles one message from a peer.
func (r *raft) step(m *Message) error {
	switch {
	case m.Term > r.term:
		if m.Type == MsgVote || m.Type == MsgPreVote {
			// Thesis §4.2.3 and §9.6: a node that heard from a leader
			// within the minimum election timeout neither grants a vote
			// nor adopts the term. A node rejoining after a partition
			// therefore cannot depose a healthy leader.
			if r.cfg.CheckQuorum && r.lead != "" && r.electionElapsed < r.cfg.ElectionTicks {
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
		case (r.cfg.CheckQuorum || r.cfg.PreVote) && (m.Type == MsgApp || m.Type == MsgHeartbeat):
			// A leader cut off by a partition keeps its old term while
			// we moved on; tell it, so it steps down. (With pre-vote and
			// check-quorum it would otherwise never learn: our side does
			// not disrupt it with vote requests.)
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
		if r.role == Candidate {
			r.poll(m.From, !m.Reject)
		}
	}
	return nil
}

func (r *raft) stepLeader(m *Message) {
	pr := r.prs[m.From]
	if pr == nil || m.From == r.id {
		return
	}
	switch m.Type {
	case MsgAppResp:
		pr.recentActive = true
		r.handleAppendResponse(m, pr)
	case MsgHeartbeatResp:
		pr.recentActive = true
		r.handleHeartbeatResponse(m, pr)
	case MsgSnapResp:
		pr.recentActive = true
		r.handleSnapshotResponse(m, pr)
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
	lastNew, ok, err := r.log.maybeAppend(prevIndex, prevTerm, m.Commit, ents)
	if err != nil {
		return err
	}
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
	r.send(Message{Type: MsgHeartbeatResp, To: m.From, Index: r.log.lastIndex()})
}

func (r *raft) handleAppendResponse(m *Message, pr *progress) {
	if m.Reject {
		probe := m.RejectHint
		if m.LogTerm > 0 {
			probe = r.log.findConflictByTerm(m.RejectHint, m.LogTerm)
		}
		if pr.maybeDecrTo(m.Index, probe) {
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
}

func (r *raft) handleHeartbeatResponse(m *Message, pr *progress) {
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
func (r *raft) maybeCommit() bool {
	r.matchBuf = r.matchBuf[:0]
	for _, v := range r.voters {
		r.matchBuf = append(r.matchBuf, r.prs[v].match)
	}
	slices.Sort(r.matchBuf)
	mci := r.matchBuf[len(r.matchBuf)-r.quorum()]
	if mci > r.log.committed && r.log.termOr0(mci) == r.term {
		r.log.commitTo(mci)
		return true
	}
	return false
}

// flush sends the entries appended since the last flush to every follower
// (one MsgApp per follower for any number of proposals).
func (r *raft) flush() {
	if !r.bcastPending {
		return
	}
	r.bcastPending = false
	if r.role != Leader {
		return
	}
	for _, v := range r.voters {
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

func (r *raft) bcastHeartbeat() {
	for _, v := range r.voters {
		if v == r.id {
			continue
		}
		pr := r.prs[v]
		r.send(Message{Type: MsgHeartbeat, To: v, Commit: min(pr.match, r.log.committed)})
	}
}

// validate rejects messages the core cannot interpret safely.
func (r *raft) validate(m *Message) error {
	switch {
	case m.Type == 0 || m.Type > maxMessageType:
		return fmt.Errorf("%w: type %d", ErrInvalidMessage, m.Type)
	case m.Type == MsgTimeoutNow || m.Type == MsgReadIndex || m.Type == MsgReadIndexResp:
		return fmt.Errorf("%w: %v", ErrUnsupported, m.Type)
	case m.From == "":
		return fmt.Errorf("%w: %v without sender", ErrInvalidMessage, m.Type)
	case m.From == r.id:
		return fmt.Errorf("%w: %v from this node itself", ErrInvalidMessage, m.Type)
	case !slices.Contains(r.voters, m.From):
		// Membership is static in this release: a stranger (another
		// cluster, a misconfigured node) must not vote or lead here.
		return fmt.Errorf("%w: %v from %q, which is not a member %v", ErrInvalidMessage, m.Type, m.From, r.voters)
	case m.To != r.id:
		return fmt.Errorf("%w: %v addressed to %q, this node is %q", ErrInvalidMessage, m.Type, m.To, r.id)
	case m.Term == 0 && !(m.Reject && (m.Type == MsgVoteResp || m.Type == MsgPreVoteResp)):
		// Term 0 precedes every election; only a brand-new node refusing
		// a vote can speak from it.
		return fmt.Errorf("%w: %v with term 0", ErrInvalidMessage, m.Type)
	case m.Type == MsgSnap && m.Snapshot == nil:
		return fmt.Errorf("%w: MsgSnap without snapshot metadata", ErrInvalidMessage)
	case m.Type == MsgSnap && (m.Snapshot.Index == 0 || m.Snapshot.Term == 0 || m.Snapshot.Term > m.Term):
		return fmt.Errorf("%w: MsgSnap with snapshot at index %d term %d (message term %d)", ErrInvalidMessage, m.Snapshot.Index, m.Snapshot.Term, m.Term)
	case m.Type == MsgSnapResp && m.Snapshot == nil:
		return fmt.Errorf("%w: MsgSnapResp without snapshot metadata", ErrInvalidMessage)
	}
	if len(m.Entries) > 0 && m.Type != MsgApp {
		return fmt.Errorf("%w: %v with entries", ErrInvalidMessage, m.Type)
	}
	prevTerm := m.LogTerm
	for i := range m.Entries {
		e := &m.Entries[i]
		if e.Index != m.Index+1+uint64(i) {
			return fmt.Errorf("%w: MsgApp entry %d has index %d; want %d", ErrInvalidMessage, i, e.Index, m.Index+1+uint64(i))
		}
		// Terms never decrease along a log and never exceed the leader's.
		if e.Term < prevTerm || e.Term > m.Term || e.Type > maxEntryType {
			return fmt.Errorf("%w: MsgApp entry %d has term %d type %d (previous term %d, message term %d)", ErrInvalidMessage, e.Index, e.Term, e.Type, prevTerm, m.Term)
		}
		prevTerm = e.Term
	}
	return nil
}
