package consensus

import (
	"errors"

	"github.com/distkit/distkit/consensus/raft"
)

// Sentinel errors. Compare with errors.Is.
var (
	// ErrNotLeader is returned by Propose on a node that is not the leader.
	// The error is a *raft.NotLeaderError carrying the leader this node
	// knows of ("" during an election); use errors.As to read it.
	ErrNotLeader = raft.ErrNotLeader
	// ErrClosed is returned by operations on a closed Node.
	ErrClosed = errors.New("consensus: node closed")
	// ErrInvalidConfig is wrapped by the errors of Config.Validate and of
	// constructors given bad arguments.
	ErrInvalidConfig = errors.New("consensus: invalid config")
	// ErrStopped is returned for proposals still pending when the node
	// stopped: whether they were committed is unknown.
	ErrStopped = errors.New("consensus: node stopped before the proposal completed")
	// ErrProposalLost is returned when another entry was committed at the
	// index of a proposal's entry: the proposal was certainly not applied,
	// and retrying it is safe.
	ErrProposalLost = errors.New("consensus: proposal lost to a leader change")
	// ErrOutcomeUnknown is returned when a proposal's entry left this
	// node's log before it was known to be committed (a new leader
	// overwrote it, or a snapshot replaced the log) and its index was not
	// applied soon after. Almost always it was not applied, but in rare
	// histories (Raft §5.4.2, Figure 8) another node may still commit it,
	// so treat it like a timeout.
	ErrOutcomeUnknown = errors.New("consensus: proposal outcome unknown")
	// ErrTooLarge is returned by Propose, and by a Client's Propose, for a
	// command larger than Config.MaxCommandBytes (for a Client with a
	// session, the command with its session stamp).
	ErrTooLarge = errors.New("consensus: command too large")
	// ErrNilContext is returned by Propose when given a nil context.
	ErrNilContext = errors.New("consensus: nil context")
	// ErrClusterMismatch is returned by New when Config.Peers or
	// Config.ClusterName disagree with the cluster identity recorded in
	// DataDir at bootstrap. The error names both peer lists.
	ErrClusterMismatch = errors.New("consensus: config disagrees with the data directory's cluster identity")
	// ErrNoClusterIdentity is returned by New when DataDir holds Raft state
	// (a log, hard state or snapshot) but no readable cluster identity
	// file: which cluster the state belongs to is unknown, so the node
	// refuses to start rather than guess.
	ErrNoClusterIdentity = errors.New("consensus: data directory has no readable cluster identity")
)
