package raft

import (
	"fmt"
	"log/slog"
	"slices"

	"github.com/distkit/distkit/transport"
)

// Config configures a RawNode. Start from DefaultConfig, set ID, Peers and
// Storage, and adjust what you need; NewRawNode calls Validate.
type Config struct {
	// ID is this node's identity. A node that bootstraps a new cluster must
	// be one of Peers.
	ID transport.NodeID
	// Peers lists every voter of a new cluster, this node included. It is
	// used only when Storage holds no membership yet (a fresh node);
	// afterwards the membership comes from Storage: the latest snapshot's,
	// then every EntryConfChange in the log after it. Every node that
	// bootstraps the cluster must be given the same Peers, and so must a
	// node that restarts before it has a snapshot.
	Peers []transport.NodeID
	// Join says this fresh node joins a running cluster instead of
	// bootstrapping a new one: it has been added (as a learner or a voter)
	// through the leader, and learns the membership from the leader's log
	// or snapshot. Peers must then be empty, and stay so (with Join still
	// set) whenever the node restarts. Until it learns that it is a voter
	// it never campaigns.
	Join bool
	// Storage is where the core reads the log, the hard state and the
	// snapshot from. The caller writes it (see the package documentation).
	Storage Storage
	// Applied is the index of the last entry the state machine has applied
	// (after a restart: the index its state reflects, at least the
	// snapshot's). Committed entries after it are delivered again; those up
	// to it never are. It must not exceed the last index in Storage. A
	// saved commit index below it is raised to it: the state machine only
	// ever applies committed entries.
	Applied uint64

	// ElectionTicks is the number of Ticks a follower waits without hearing
	// from a leader before it campaigns. The actual timeout is randomized in
	// [ElectionTicks, 2*ElectionTicks) per election to avoid split votes
	// (§5.2). It is also the check-quorum period of a leader.
	ElectionTicks int
	// HeartbeatTicks is the number of Ticks between a leader's heartbeats.
	// It must be smaller than ElectionTicks (usually a tenth).
	HeartbeatTicks int

	// MaxMsgBytes bounds the entry bytes of one MsgApp and the data of one
	// snapshot chunk. A single entry larger than this still travels alone.
	MaxMsgBytes uint64
	// MaxInflightMsgs bounds the MsgApps in flight to one follower while
	// replicating optimistically (pipelining).
	MaxInflightMsgs int
	// MaxInflightBytes bounds the entry bytes in flight to one follower; 0
	// means MaxInflightMsgs*MaxMsgBytes. Together with MaxInflightMsgs it
	// keeps a slow follower from piling up the leader's memory.
	MaxInflightBytes uint64
	// MaxUncommittedBytes bounds the data of entries a leader has accepted
	// but not yet committed; beyond it Propose fails with
	// ErrProposalDropped until commits catch up. 0 means no limit.
	MaxUncommittedBytes uint64
	// MaxCommittedBytesPerReady bounds the entry bytes of one
	// Ready.CommittedEntries (at least one entry is always delivered).
	MaxCommittedBytesPerReady uint64

	// SnapshotThreshold is the number of applied entries beyond the latest
	// snapshot after which Ready.SnapshotDue asks the caller to snapshot its
	// state machine and compact the log. 0 disables the signal.
	SnapshotThreshold uint64

	// PreVote makes a node ask whether it could win before it disrupts the
	// cluster with a higher term (thesis §9.6). On in DefaultConfig.
	PreVote bool
	// CheckQuorum makes a leader step down when it has not heard from a
	// quorum within an election timeout, and makes followers that hear from
	// a leader ignore vote requests (thesis §6.2 and §9.6). On in
	// DefaultConfig.
	CheckQuorum bool

	// LeaseReads lets a leader answer ReadIndex without a heartbeat round
	// while its lease holds (thesis §6.4.1). It requires CheckQuorum and
	// must be set on every node: it relies on the followers' check-quorum
	// lease, and makes a node that starts refuse votes for ElectionTicks
	// ticks (it may have heard from a leader just before it restarted).
	// Safe only if the nodes' clocks run at rates that differ by less than
	// LeaseDriftTicks per election timeout; see the package documentation.
	LeaseReads bool
	// LeaseDriftTicks is the clock drift bound of lease reads: the leader
	// trusts its lease for ElectionTicks - LeaseDriftTicks ticks after
	// sending the heartbeat a quorum acknowledged. It must be below
	// ElectionTicks.
	LeaseDriftTicks int

	// CheckQuorumTicks is the check-quorum window: a leader steps down when
	// it has heard nothing (any message of its term counts, however late)
	// from a quorum for that many ticks. 0 or less than ElectionTicks means
	// ElectionTicks. Leave it at 0 when responses take well under an
	// election timeout; when they may take longer (a slow or congested
	// network, responses queued behind large appends), set it above the
	// worst expected response latency plus an election timeout, or set
	// ElectionTicks that high, else leaders step down again and again
	// although every node is up (see the package documentation). Only
	// liveness depends on it: lease reads rely on acknowledged heartbeat
	// rounds, not on this window.
	CheckQuorumTicks int

	// Seed seeds the randomized election timeouts. Together with ID it
	// makes a node's behaviour a pure function of its inputs: replaying the
	// same inputs replays the same run.
	Seed uint64
	// Logger receives state changes (elections, leader changes, snapshot
	// transfers). nil means silent.
	Logger *slog.Logger
}

// DefaultConfig returns the recommended settings. ID, Peers and Storage are
// still to be set.
func DefaultConfig() Config {
	return Config{
		ElectionTicks:             10,
		HeartbeatTicks:            1,
		MaxMsgBytes:               1 << 20,
		MaxInflightMsgs:           256,
		MaxUncommittedBytes:       64 << 20,
		MaxCommittedBytesPerReady: 4 << 20,
		SnapshotThreshold:         10000,
		PreVote:                   true,
		CheckQuorum:               true,
	}
}

// Validate reports the first problem with c, wrapping ErrInvalidConfig.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case c.ID == "":
		return bad("ID is empty")
	case c.Storage == nil || c.Storage == Storage((*MemoryStorage)(nil)):
		return bad("Storage is nil")
	case c.HeartbeatTicks < 1:
		return bad("HeartbeatTicks is %d; want at least 1", c.HeartbeatTicks)
	case c.ElectionTicks <= c.HeartbeatTicks:
		return bad("ElectionTicks (%d) must be greater than HeartbeatTicks (%d)", c.ElectionTicks, c.HeartbeatTicks)
	case c.MaxMsgBytes < 1:
		return bad("MaxMsgBytes is 0; want at least 1")
	case c.MaxInflightMsgs < 1:
		return bad("MaxInflightMsgs is %d; want at least 1", c.MaxInflightMsgs)
	case c.MaxCommittedBytesPerReady < 1:
		return bad("MaxCommittedBytesPerReady is 0; want at least 1")
	case c.LeaseReads && !c.CheckQuorum:
		return bad("LeaseReads needs CheckQuorum")
	case c.LeaseDriftTicks < 0 || (c.LeaseReads && c.LeaseDriftTicks >= c.ElectionTicks):
		return bad("LeaseDriftTicks (%d) must be in [0, ElectionTicks (%d))", c.LeaseDriftTicks, c.ElectionTicks)
	case c.Join && len(c.Peers) > 0:
		return bad("Join with Peers: a joining node learns the membership from the leader")
	}
	for i, p := range c.Peers {
		if p == "" {
			return bad("Peers[%d] is empty", i)
		}
		if slices.Contains(c.Peers[:i], p) {
			return bad("Peers lists %q twice", p)
		}
	}
	return nil
}

// validateMembership checks the membership a fresh node starts with (from
// Peers): a node that bootstraps must be one of the voters, a node that
// joins starts with none.
func validateMembership(c Config, m Membership) error {
	switch {
	case c.Join:
		return nil
	case len(m.Voters) == 0:
		return fmt.Errorf("%w: no voters: set Peers for a new cluster, or Join", ErrInvalidConfig)
	case !slices.Contains(m.Voters, c.ID):
		return fmt.Errorf("%w: ID %q is not a voter %v (a node added to a running cluster sets Join)", ErrInvalidConfig, c.ID, m.Voters)
	}
	return nil
}
