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
	// ErrProposalLost is returned when a proposal's log entry was replaced
	// by another leader's entry: it was not applied.
	ErrProposalLost = errors.New("consensus: proposal lost to a leader change")
	// ErrTooLarge is returned by Propose for a command larger than
	// Config.MaxCommandBytes.
	ErrTooLarge = errors.New("consensus: command too large")
)
