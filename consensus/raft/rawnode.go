package raft

import (
	"errors"
	"fmt"

	"github.com/distkit/distkit/transport"
)

// SoftState is volatile state worth reporting: who leads and what this node
// is. It is not persisted.
type SoftState struct {
	Role   Role
	Leader transport.NodeID
}

// Ready is the core's output of one step: what to persist, send and apply.
// Handle it following the duties in the package documentation, then call
// Advance. The slices are valid until Advance (the core reuses the Messages
// array afterwards; copy what you keep longer). Entries and messages share
// data with the core and must be treated as read-only.
type Ready struct {
	// SoftState is non-nil when the role or the known leader changed.
	SoftState *SoftState
	// HardState must be persisted before Messages are sent. It is the zero
	// value when it did not change since the previous Ready.
	HardState HardState
	// Entries must be appended to the log (overwriting any entries from
	// Entries[0].Index on) before Messages are sent.
	Entries []Entry
	// Snapshot, when non-nil, was received from the leader: persist it
	// (replacing the log) and restore the state machine from it before
	// applying CommittedEntries, which then start after it.
	Snapshot *Snapshot
	// Messages are to be sent after HardState, Entries and Snapshot are
	// durable. Delivery may fail; the protocol retries.
	Messages []Message
	// CommittedEntries are to be applied to the state machine, in order.
	// They were persisted by this or an earlier Ready.
	CommittedEntries []Entry
	// MustSync says whether the writes above must be fsynced before
	// sending: true when the term, the vote, the log or the snapshot
	// changed (a commit index change alone need not be synced).
	MustSync bool
	// ReadStates answer ReadIndex requests (made here or, on a leader,
	// forwarded by followers and answered by message): once the state
	// machine has applied ReadState.Index, a read of it is linearizable.
	ReadStates []ReadState
	// SnapshotDue says the state machine has applied SnapshotThreshold
	// entries since the latest snapshot: after applying CommittedEntries,
	// snapshot it and compact the log (see the package documentation).
	SnapshotDue bool
}

// containsUpdates reports whether rd carries anything at all.
func (rd *Ready) containsUpdates() bool {
	return rd.SoftState != nil || !rd.HardState.IsZero() || len(rd.Entries) > 0 ||
		rd.Snapshot != nil || len(rd.Messages) > 0 || len(rd.CommittedEntries) > 0 || rd.SnapshotDue ||
		len(rd.ReadStates) > 0
}

// RawNode is a deterministic Raft node: a state machine with no goroutines,
// no I/O and no clock. Feed it Ticks, Steps and Proposes; collect its output
// with Ready; acknowledge with Advance.
//
// A RawNode is not safe for concurrent use: drive it from one goroutine.
// Build it with NewRawNode; a zero RawNode reports ErrInvalidConfig from
// Step, Propose and Ready and ignores the other calls.
type RawNode struct {
	r *raft

	prevSoft SoftState
	prevHard HardState

	// pending describes the outstanding Ready (between Ready and Advance).
	pending      bool
	pendingLast  Entry // last entry of Ready.Entries (Index 0 if none)
	pendingSnap  *Snapshot
	pendingApply uint64 // last index of Ready.CommittedEntries (0 if none)
	// pendingCommitted is Ready.CommittedEntries, kept so that Advance
	// does not depend on the value the caller passes back.
	pendingCommitted []Entry

	// sentMsgs is the Messages array of the outstanding Ready, reused for
	// the next one after Advance.
	sentMsgs []Message

	// snapshotSignalled is the applied index at the last SnapshotDue.
	snapshotSignalled uint64

	// err is a sticky storage failure; the node is unusable after it.
	err error
}

// NewRawNode validates cfg and returns a node that starts as a follower,
// restoring its term, vote, log and membership from cfg.Storage.
func NewRawNode(cfg Config) (rn *RawNode, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	defer catchStorage(&err)
	r, err := newRaft(cfg)
	if err != nil {
		return nil, err
	}
	rn = &RawNode{r: r}
	rn.prevSoft = SoftState{Role: r.role, Leader: r.lead}
	rn.prevHard = r.hardState()
	rn.snapshotSignalled = r.log.firstIndex() - 1
	return rn, nil
}

// catchStorage turns a storage failure raised deep inside the core into an
// error. Other panics are bugs and propagate. It must be deferred directly
// (recover works only there).
func catchStorage(errp *error) {
	if v := recover(); v != nil {
		*errp = storageFailure(v)
	}
}

// storageFailure returns the error of a recovered storage failure, and
// re-panics anything else.
func storageFailure(v any) error {
	if err, ok := v.(error); ok && errors.Is(err, ErrStorage) {
		return err
	}
	panic(v)
}

// errZeroRawNode is what the methods of a zero RawNode report.
var errZeroRawNode = fmt.Errorf("%w: zero RawNode; use NewRawNode", ErrInvalidConfig)

// broken returns the error that makes the node unusable: a sticky storage
// failure, or errZeroRawNode for a RawNode not built by NewRawNode.
func (rn *RawNode) broken() error {
	if rn.r == nil {
		return errZeroRawNode
	}
	return rn.err
}

// guard is deferred by the methods that reach Storage: a storage failure
// becomes their error and makes the node unusable (sticky).
func (rn *RawNode) guard(errp *error) {
	if v := recover(); v != nil {
		*errp = storageFailure(v)
	}
	if *errp != nil && errors.Is(*errp, ErrStorage) {
		rn.err = *errp
	}
}

// Tick advances the node's logical clock by one tick: followers count
// towards an election, leaders towards a heartbeat and the check-quorum
// deadline. The caller ticks at a fixed interval (e.g. every 10 ms).
func (rn *RawNode) Tick() {
	if rn == nil {
		return
	}
	if rn.broken() != nil {
		return
	}
	var err error
	defer rn.guard(&err)
	rn.r.tick()
}

// Step hands the node a message received from a peer. It returns an error
// wrapping ErrInvalidMessage for a malformed message (which is dropped) and
// ErrUnsupported for reserved message kinds.
func (rn *RawNode) Step(m Message) (err error) {
	if rn == nil {
		return errNilReceiver
	}
	if err := rn.broken(); err != nil {
		return err
	}
	if err := rn.r.validate(&m); err != nil {
		return err
	}
	defer rn.guard(&err)
	return rn.r.step(&m)
}

// Propose appends data as a command to the log. It returns the index and
// term the entry got; the command is committed exactly when an entry with
// that index and term shows up in CommittedEntries (a different term at that
// index means it was lost to a leader change and may be retried).
//
// On a node that is not the leader it returns a *NotLeaderError (matching
// ErrNotLeader) carrying the known leader; under flow control it returns
// ErrProposalDropped. The core keeps data: do not modify it afterwards.
func (rn *RawNode) Propose(data []byte) (index, term uint64, err error) {
	if rn == nil {
		return 0, 0, errNilReceiver
	}
	if err := rn.broken(); err != nil {
		return 0, 0, err
	}
	defer rn.guard(&err)
	return rn.r.propose(data)
}

// ProposeConfChange appends a membership change to the log (thesis §4).
// The new configuration takes effect at once, on this leader and on each
// follower as the entry reaches it; it is in force for good once the entry
// is committed, which the caller learns as for Propose (the entry, of type
// EntryConfChange, shows up in CommittedEntries with the returned index
// and term). The core applies the change itself; the state machine only
// skips the entry (or records it).
//
// A change that adds or removes at most one voter takes effect directly;
// any other goes through the joint configuration of thesis §4.3, which the
// leader leaves on its own once it is committed (unless cc.ExplicitLeave,
// in which case propose ConfChange{LeaveJoint: true}); the caller waits
// for the configuration it asked for with Status().Membership or
// MembershipAt. A leader that removes itself keeps leading (without
// counting itself) until the change commits, then hands over to the most
// up-to-date voter and steps down.
//
// Errors: *NotLeaderError off the leader; ErrConfChangeInProgress while
// another change is uncommitted, during a joint configuration, or before
// the leader has committed an entry of its term; ErrInvalidConfChange for
// a change that makes no sense; ErrProposalDropped (with
// ErrTransferInProgress) during a leadership transfer.
func (rn *RawNode) ProposeConfChange(cc ConfChange) (index, term uint64, err error) {
	if rn == nil {
		return 0, 0, errNilReceiver
	}
	if err := rn.broken(); err != nil {
		return 0, 0, err
	}
	defer rn.guard(&err)
	return rn.r.proposeConfChange(cc)
}

// TransferLeadership hands leadership over to the voter to (thesis §3.10),
// or to the most up-to-date voter when to is "". From now on Propose and
// ProposeConfChange fail with ErrProposalDropped (and
// ErrTransferInProgress); once the target's log matches the leader's it
// receives MsgTimeoutNow and campaigns at once. The transfer is over when
// this node's SoftState shows another leader; if the target has not taken
// over within ElectionTicks ticks the transfer is abandoned and proposals
// are accepted again (Status().LeadTransferee is then "").
//
// Errors: *NotLeaderError off the leader, ErrNoTransferTarget if to is not
// another voter (or there is none), ErrTransferInProgress if a transfer to
// another node is under way.
func (rn *RawNode) TransferLeadership(to transport.NodeID) error {
	if rn == nil {
		return errNilReceiver
	}
	if err := rn.broken(); err != nil {
		return err
	}
	return rn.r.transferLeadership(to)
}

// ReadIndex requests a linearizable read (thesis §6.4). ctx identifies the
// request and comes back in the ReadState of a later Ready; the caller then
// waits until its state machine has applied ReadState.Index and reads it.
// A leader confirms its leadership with one heartbeat round (shared by
// every request made before the next Ready) or, with Config.LeaseReads,
// answers at once while its lease holds; a follower forwards the request to
// the leader. Requests are lost if leadership changes meanwhile: the caller
// retries those that stay unanswered (after a timeout), with a new ctx.
//
// On a node that knows no leader it returns a *NotLeaderError; a leader
// holding too many unconfirmed requests (it cannot reach a quorum) returns
// ErrProposalDropped.
func (rn *RawNode) ReadIndex(ctx []byte) error {
	if rn == nil {
		return errNilReceiver
	}
	if err := rn.broken(); err != nil {
		return err
	}
	return rn.r.readIndex(ctx, "")
}

// MembershipAt returns the configuration as of log index i, for i from the
// applied index (as of the last Advance) to the last index: what a snapshot
// taken at i must record (SnapshotMeta.Membership). It returns an error
// wrapping ErrCompacted for an older index.
func (rn *RawNode) MembershipAt(i uint64) (Membership, error) {
	if rn == nil {
		return Membership{}, errNilReceiver
	}
	if err := rn.broken(); err != nil {
		return Membership{}, err
	}
	return rn.r.membershipAt(i)
}

// CommittedInTerm reports whether this node, as leader, has committed an
// entry of its current term. Until it has, ProposeConfChange is refused
// with ErrConfChangeInProgress whatever the log holds: a change left
// uncommitted by an earlier leader is settled (committed or overwritten)
// by that first commit, so a caller may wait for it rather than give up.
// It is false on a follower or candidate, and on a nil or broken RawNode.
func (rn *RawNode) CommittedInTerm() bool {
	if rn == nil || rn.broken() != nil {
		return false
	}
	return rn.r.role == Leader && rn.r.committedInTerm()
}

// HasReady reports whether Ready would return something. It returns false
// while a Ready is outstanding (not yet Advanced), and true after a storage
// failure so that Ready reports it.
func (rn *RawNode) HasReady() (has bool) {
	if rn == nil {
		return false
	}
	if rn.broken() != nil {
		return true
	}
	if rn.pending {
		return false
	}
	var err error
	// Deferred calls run last-in first-out: guard records a storage
	// failure, then the failure is reported as something to do.
	defer func() { has = has || rn.err != nil }()
	defer rn.guard(&err)
	r := rn.r
	r.flush()
	if len(r.msgs) > 0 || r.log.unstable.hasNew() || r.log.hasNextCommitted() || len(r.readStates) > 0 {
		return true
	}
	if (SoftState{Role: r.role, Leader: r.lead}) != rn.prevSoft || r.hardState() != rn.prevHard {
		return true
	}
	return false
}

// Ready returns everything the node needs the caller to do, and must be
// followed by Advance before the next Ready (ErrReadyPending otherwise).
// An empty Ready means there is nothing to do. A storage failure is
// returned as an error wrapping ErrStorage; the node is unusable after it.
func (rn *RawNode) Ready() (rd Ready, err error) {
	if rn == nil {
		return Ready{}, errNilReceiver
	}
	if err := rn.broken(); err != nil {
		return Ready{}, err
	}
	if rn.pending {
		return Ready{}, ErrReadyPending
	}
	defer rn.guard(&err)
	r := rn.r
	r.flush()
	u := &r.log.unstable

	if soft := (SoftState{Role: r.role, Leader: r.lead}); soft != rn.prevSoft {
		rn.prevSoft = soft
		changed := soft // allocated only on a change
		rd.SoftState = &changed
	}
	hs := r.hardState()
	if hs != rn.prevHard {
		rd.HardState = hs
		rd.MustSync = hs.Term != rn.prevHard.Term || hs.Vote != rn.prevHard.Vote
		rn.prevHard = hs
	}
	if u.snapshot != nil && !u.snapInProgress {
		rd.Snapshot = u.snapshot
		u.snapInProgress = true
		rd.MustSync = true
	}
	if ents := u.newEntries(); len(ents) > 0 {
		rd.Entries = ents
		u.inProgress = ents[len(ents)-1].Index
		rd.MustSync = true
	}
	committed, err := r.log.nextCommitted(r.cfg.MaxCommittedBytesPerReady)
	if err != nil {
		return Ready{}, fmt.Errorf("%w: reading committed entries: %w", ErrStorage, err)
	}
	rd.CommittedEntries = committed
	rd.Messages = r.msgs
	r.msgs = nil
	rn.sentMsgs = rd.Messages
	rd.ReadStates = r.readStates
	r.readStates = nil

	applied := r.log.applied
	if n := len(committed); n > 0 {
		applied = committed[n-1].Index
	}
	if rd.Snapshot != nil {
		rn.snapshotSignalled = max(rn.snapshotSignalled, rd.Snapshot.Meta.Index)
	}
	if th := r.cfg.SnapshotThreshold; th > 0 && applied >= rn.snapshotSignalled+th {
		rd.SnapshotDue = true
		rn.snapshotSignalled = applied
	}

	if !rd.containsUpdates() {
		return Ready{}, nil
	}
	rn.pending = true
	rn.pendingSnap = rd.Snapshot
	rn.pendingLast = Entry{}
	if n := len(rd.Entries); n > 0 {
		rn.pendingLast = rd.Entries[n-1]
	}
	rn.pendingApply = 0
	if n := len(committed); n > 0 {
		rn.pendingApply = committed[n-1].Index
	}
	rn.pendingCommitted = committed
	return rd, nil
}

// Advance tells the node that the caller has done everything the last Ready
// asked: persisted, sent and applied. Calling it without an outstanding
// Ready does nothing. The node acts on what it handed out in that Ready;
// rd is not inspected, so a copy or the zero Ready will do. A storage
// failure while the node catches up with what became durable is reported
// by the next Ready.
func (rn *RawNode) Advance(rd Ready) {
	if rn == nil {
		return
	}
	if !rn.pending {
		return
	}
	// A leader reads its log here to commit what is now durable; a
	// storage failure becomes the sticky error the next Ready reports.
	var err error
	defer rn.guard(&err)
	rn.pending = false
	r := rn.r
	l := r.log
	if r.msgs == nil && cap(rn.sentMsgs) > 0 {
		// The caller is done with the Messages: reuse their array.
		clear(rn.sentMsgs)
		r.msgs = rn.sentMsgs[:0]
	}
	rn.sentMsgs = nil
	if rn.pendingSnap != nil {
		l.unstable.snapshotStable(rn.pendingSnap)
		l.applied = max(l.applied, rn.pendingSnap.Meta.Index)
	}
	if e := rn.pendingLast; e.Index != 0 {
		l.unstable.stableTo(e.Index, e.Term)
	}
	r.selfDurable()
	if rn.pendingApply > l.applied {
		l.applied = rn.pendingApply
		r.compactConf(l.applied)
		if r.role == Leader && r.uncommittedBytes > 0 {
			// Committed entries of this term leave the flow-control window.
			for i := range rn.pendingCommitted {
				if e := &rn.pendingCommitted[i]; e.Term == r.term {
					r.uncommittedBytes -= min(r.uncommittedBytes, uint64(len(e.Data)))
				}
			}
		}
	}
	rn.pendingSnap, rn.pendingCommitted = nil, nil // not retained until the next Ready
}

// ReportUnreachable tells the leader that the last message to id could not
// be delivered (the transport gave up). The leader stops pipelining to id
// and probes instead.
func (rn *RawNode) ReportUnreachable(id transport.NodeID) {
	if rn == nil {
		return
	}
	if rn.r == nil {
		return
	}
	if pr := rn.r.prs[id]; pr != nil && id != rn.r.id && pr.state == ProgressReplicate {
		pr.becomeProbe()
	}
}

// ReportSnapshot tells the leader how sending a snapshot chunk to id went.
// A non-nil err (the transport failed to deliver it) restarts the transfer
// from the newest snapshot at the next heartbeat; nil changes nothing, as
// the follower's acknowledgement drives the transfer.
func (rn *RawNode) ReportSnapshot(id transport.NodeID, err error) {
	if rn == nil {
		return
	}
	if rn.r == nil {
		return
	}
	pr := rn.r.prs[id]
	if err == nil || pr == nil || id == rn.r.id || pr.state != ProgressSnapshot {
		return
	}
	pr.becomeProbe()
}
