package raft

import (
	"errors"
	"fmt"

	"github.com/distkit/distkit/transport"
)

// Sentinel errors. Compare with errors.Is; returned errors may wrap them
// with more detail.
var (
	// ErrCompacted is returned by Storage when the requested index is older
	// than the first entry it still holds: the entries were compacted into
	// a snapshot.
	ErrCompacted = errors.New("raft: requested index is compacted")
	// ErrUnavailable is returned by Storage when the requested index is
	// beyond its last entry, or when no snapshot is available yet.
	ErrUnavailable = errors.New("raft: requested entry is unavailable")
	// ErrSnapshotOutOfDate is returned by MemoryStorage when asked to apply
	// or create a snapshot older than the one it holds.
	ErrSnapshotOutOfDate = errors.New("raft: snapshot is out of date")
	// ErrNotLeader is returned by Propose on a node that is not the leader.
	// The returned error is a *NotLeaderError carrying the known leader.
	ErrNotLeader = errors.New("raft: not the leader")
	// ErrProposalDropped is returned by Propose when the leader refuses a
	// proposal to protect itself: too many uncommitted bytes (flow
	// control). Retry later.
	ErrProposalDropped = errors.New("raft: proposal dropped")
	// ErrInvalidConfig is wrapped by the errors of Config.Validate.
	ErrInvalidConfig = errors.New("raft: invalid config")
	// ErrInvalidMessage is returned for a malformed message, whether it came
	// from Unmarshal or was handed to Step.
	ErrInvalidMessage = errors.New("raft: invalid message")
	// ErrUnsupported is kept for compatibility: every message kind is
	// supported now, and Step no longer returns it.
	ErrUnsupported = errors.New("raft: unsupported message kind")
	// ErrInvalidConfChange is returned for a membership change that makes no
	// sense (adding a member, removing a stranger, removing every voter) and
	// for a malformed encoded ConfChangeEntry or Membership.
	ErrInvalidConfChange = errors.New("raft: invalid membership change")
	// ErrConfChangeInProgress is returned by ProposeConfChange while another
	// change is pending: appended but not committed, or a joint
	// configuration not yet left. It is also returned until a new leader
	// has committed an entry of its own term (a change appended before that
	// could overlap an uncommitted one of the previous leader). Retry once
	// the pending change is applied.
	ErrConfChangeInProgress = errors.New("raft: membership change in progress")
	// ErrTransferInProgress is returned (together with ErrProposalDropped)
	// by Propose and ProposeConfChange while the leader hands leadership
	// over, and by TransferLeadership while another transfer runs.
	ErrTransferInProgress = errors.New("raft: leadership transfer in progress")
	// ErrNoTransferTarget is returned by TransferLeadership when the target
	// is not a voter other than the leader, or when no voter qualifies.
	ErrNoTransferTarget = errors.New("raft: no eligible leadership transfer target")
	// ErrReadyPending is returned by Ready when the previous Ready has not
	// been acknowledged with Advance yet.
	ErrReadyPending = errors.New("raft: previous Ready not advanced")
	// ErrStorage wraps an unexpected error from Storage.
	ErrStorage = errors.New("raft: storage failure")
)

// NotLeaderError is returned by Propose on a follower or candidate. Leader is
// the leader this node currently follows, or "" when it knows none (during
// an election). It matches ErrNotLeader under errors.Is.
type NotLeaderError struct {
	Leader transport.NodeID
}

// Error implements error.
func (e *NotLeaderError) Error() string {
	if e.Leader == "" {
		return "raft: not the leader (leader unknown)"
	}
	return fmt.Sprintf("raft: not the leader (leader is %q)", e.Leader)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }
