package consensus

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/distkit/distkit/internal/vfs"
	"github.com/distkit/distkit/transport"
)

// Config configures a Node. Start from DefaultConfig and set ID and Peers
// (and DataDir for a durable node).
type Config struct {
	// ID is this node's identity on the transport; it must be in Peers.
	ID transport.NodeID
	// Peers lists every voter of the cluster, this node included. A new
	// cluster is bootstrapped from it: the first start with a DataDir
	// records it (with ClusterName) in the data directory, and a restart
	// with a different list fails with ErrClusterMismatch. Every founding
	// member must be given the same list, and keeps it after membership
	// changes (Node.ChangeMembership): the configuration in force comes from
	// the log and snapshots. A node added later starts with Join (see Join).
	Peers []transport.NodeID
	// ClusterName is an optional token that goes into the cluster ID with
	// the sorted Peers (see ClusterID): two clusters with the same peer
	// names (a staging and a production one sharing a network, say) keep
	// apart by giving different names. Every member must be given the same.
	ClusterName string
	// DataDir holds the node's durable state (write-ahead log, hard state,
	// snapshot). Empty means in memory only: nothing survives Close, which
	// suits tests and caches but not data of record. A memory-only node
	// restarted under the same ID comes back empty, having forgotten its
	// vote and the entries it acknowledged, which Raft's safety assumes
	// are never lost: the leader brings it up to date, but until then a
	// coinciding failure can lose a committed entry or elect two leaders
	// in one term. For data of record use a DataDir, or remove the node
	// and add it back under a new ID.
	DataDir string
	// Service is the transport service name Raft messages use, so several
	// Raft groups (or other protocols) can share one transport.
	Service string

	// TickInterval is the length of one logical clock tick.
	TickInterval time.Duration
	// ElectionTicks is the election timeout in ticks: a follower that hears
	// nothing from a leader for a random duration in [ElectionTicks,
	// 2*ElectionTicks) ticks starts an election (§5.2).
	ElectionTicks int
	// HeartbeatTicks is the interval between a leader's heartbeats in ticks.
	HeartbeatTicks int
	// MaxInflightMsgs bounds the append messages in flight to one follower
	// (pipelining).
	MaxInflightMsgs int
	// MaxMsgBytes bounds the entry bytes of one append message and the size
	// of one snapshot chunk.
	MaxMsgBytes uint64
	// MaxInflightBytes bounds the entry bytes in flight to one follower;
	// 0 means MaxInflightMsgs*MaxMsgBytes. With MaxInflightMsgs it keeps a
	// slow follower from piling up the leader's memory.
	MaxInflightBytes uint64
	// MaxUncommittedBytes bounds the command bytes a leader has accepted
	// but not yet committed; beyond it Propose fails with
	// raft.ErrProposalDropped until commits catch up. 0 means no limit.
	MaxUncommittedBytes uint64
	// PreVote makes a node check that it could win an election before it
	// disrupts the cluster with a higher term (thesis §9.6).
	PreVote bool
	// CheckQuorum makes a leader step down when it has not heard from a
	// majority within an election timeout, and a follower that hears from
	// its leader ignore vote requests (thesis §6.2, §9.6).
	CheckQuorum bool
	// CheckQuorumTicks is the check-quorum window in ticks: a leader steps
	// down when it has heard from no majority within it. 0 means
	// ElectionTicks.
	CheckQuorumTicks int
	// LeaseReads lets a leader answer Read without a heartbeat round while
	// its lease holds (thesis §6.4.1): it heard from a majority less than
	// ElectionTicks - LeaseDriftTicks ticks ago, and no other node can be
	// elected before ElectionTicks passed on the voters' clocks. This
	// assumes the clocks' rates differ by less than LeaseDriftTicks per
	// election timeout (a paused VM or a stepped clock breaks it: leave it
	// off unless reads must cost no round trip). It needs CheckQuorum.
	LeaseReads bool
	// LeaseDriftTicks is the clock drift bound of lease reads, in ticks per
	// election timeout; it must be below ElectionTicks.
	LeaseDriftTicks int
	// MaxCommandBytes bounds one proposed command; larger ones fail with
	// ErrTooLarge before they reach the log. A command a Client proposes
	// through a session counts with its session stamp
	// (session.MaxCommandOverhead, 37 bytes, more).
	MaxCommandBytes int
	// SnapshotThreshold is the number of applied entries after which the
	// state machine is snapshotted and the log compacted. 0 disables
	// snapshots (the log then grows without bound).
	SnapshotThreshold uint64
	// SnapshotRetainEntries is how many entries before a snapshot stay in
	// the log so a follower slightly behind catches up from the log.
	SnapshotRetainEntries uint64
	// SnapshotLogPercent keeps a large state from being rewritten every
	// SnapshotThreshold entries: a snapshot SnapshotThreshold calls for is
	// deferred until the command bytes applied since the last snapshot
	// started reach this percentage of that snapshot's size (the first
	// snapshot after a start is always taken). Snapshots then write at most
	// 100/SnapshotLogPercent bytes per byte of commands, and the log
	// between two snapshots holds about SnapshotLogPercent% of the state's
	// size or SnapshotThreshold entries, whichever is more. With
	// the default 25, a 1 KB state is still snapshotted every
	// SnapshotThreshold entries, a 100 MB one after 25 MB of commands. 0
	// snapshots every SnapshotThreshold entries whatever the state's size.
	// At most one snapshot is in flight either way.
	SnapshotLogPercent uint64
	// SnapshotWriteRate bounds, in bytes per second, how fast a snapshot
	// taken from a view (SnapshotViewer) is written, so that writing a
	// large state leaves the disk to the log's fsyncs and the CPU to
	// replication; 0 is no limit. A snapshot of S bytes then takes at least
	// S/SnapshotWriteRate seconds, during which no other snapshot starts.
	SnapshotWriteRate uint64

	// Join starts a node that joins a running cluster instead of
	// bootstrapping one. The rule: the members that found a cluster start
	// with Join false and the same Peers (they all list themselves); a node
	// added later (Node.AddLearner or ChangeMembership on the leader, first)
	// starts with Join true, on its first and every later start, and with
	// Peers set to the cluster's founding peer list exactly as the
	// founders were given it (and the same ClusterName). Peers then only
	// names the cluster: the cluster ID is derived from it and recorded in
	// the data directory as for the founders, so the joiner's messages are
	// accepted and its identity file matches theirs; its ID need not be in
	// Peers; it learns the real membership from the leader's log or
	// snapshot, and never campaigns until that makes it a voter.
	Join bool

	// Seed seeds the randomized election timeouts; 0 picks one at random.
	Seed uint64
	// Logger receives elections, leader changes and errors. nil is silent.
	Logger *slog.Logger

	// Metrics receives the node's events (saves, applies, leader changes,
	// dropped messages, snapshots) as they happen; nil means none. Its
	// methods must be fast and must never block (see Metrics). Status
	// reports the same figures accumulated, with or without it.
	Metrics Metrics

	// SnapshotChunkBytes is the chunk size in which a node with a DataDir
	// streams its snapshot file to a follower (0: 1 MiB). At most four
	// chunks of a transfer are unacknowledged, so it bounds the memory a
	// transfer takes at either end and the largest message it sends.
	SnapshotChunkBytes int

	// FS is the file system DataDir lives on. Nil is the operating
	// system's (vfs.OS); tests pass a vfs.CrashFS (package internal/vfs)
	// to run a Node through power loss.
	FS vfs.FS
}

// DefaultConfig returns settings suited to a LAN: 10 ms ticks, heartbeats
// every 10 ms, elections after 200-400 ms of silence (long enough that a
// busy or briefly starved machine does not trigger needless elections), 64
// append messages in flight per follower (enough to pipeline; fewer and
// larger messages once a follower lags), 64 MiB of uncommitted commands at
// most, pre-vote and check-quorum on, a snapshot every 10000 entries or
// once the commands since the last one reach 25% of its size, whichever
// comes later, written at 64 MiB/s at most.
func DefaultConfig() Config {
	return Config{
		Service:               "raft",
		TickInterval:          10 * time.Millisecond,
		ElectionTicks:         20,
		HeartbeatTicks:        1,
		MaxInflightMsgs:       64,
		MaxMsgBytes:           1 << 20,
		MaxUncommittedBytes:   64 << 20,
		PreVote:               true,
		CheckQuorum:           true,
		MaxCommandBytes:       1 << 20,
		SnapshotThreshold:     10000,
		SnapshotRetainEntries: 1000,
		SnapshotLogPercent:    25,
		SnapshotWriteRate:     64 << 20,
	}
}

// Bounds of the snapshot policy's settings: beyond them a node would
// practically never snapshot again, or take hours over one snapshot.
const (
	maxSnapshotLogPercent = 10000   // a log 100 times the state's size
	minSnapshotWriteRate  = 1 << 20 // 1 MiB/s
)

// Validate reports the first problem with c, wrapping ErrInvalidConfig.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case c.ID == "":
		return bad("ID is empty")
	case len(c.Peers) == 0:
		return bad("Peers is empty; list every voter, this node included")
	case !c.Join && !slices.Contains(c.Peers, c.ID):
		return bad("ID %q is not in Peers %v", c.ID, c.Peers)
	case c.Service == "":
		return bad("Service is empty")
	case c.TickInterval <= 0:
		return bad("TickInterval is %v; want > 0", c.TickInterval)
	case c.HeartbeatTicks < 1:
		return bad("HeartbeatTicks is %d; want at least 1", c.HeartbeatTicks)
	case c.ElectionTicks <= c.HeartbeatTicks:
		return bad("ElectionTicks (%d) must exceed HeartbeatTicks (%d)", c.ElectionTicks, c.HeartbeatTicks)
	case c.MaxInflightMsgs < 1:
		return bad("MaxInflightMsgs is %d; want at least 1", c.MaxInflightMsgs)
	case c.MaxMsgBytes < 1:
		return bad("MaxMsgBytes is 0; want at least 1")
	case c.MaxCommandBytes < 1:
		return bad("MaxCommandBytes is %d; want at least 1", c.MaxCommandBytes)
	case c.CheckQuorumTicks < 0:
		return bad("CheckQuorumTicks is %d; want >= 0", c.CheckQuorumTicks)
	case c.LeaseReads && !c.CheckQuorum:
		return bad("LeaseReads needs CheckQuorum")
	case c.SnapshotLogPercent > maxSnapshotLogPercent:
		return bad("SnapshotLogPercent is %d; want at most %d", c.SnapshotLogPercent, maxSnapshotLogPercent)
	case c.SnapshotWriteRate != 0 && c.SnapshotWriteRate < minSnapshotWriteRate:
		return bad("SnapshotWriteRate is %d bytes/s; want 0 (no limit) or at least %d", c.SnapshotWriteRate, minSnapshotWriteRate)
	case c.SnapshotChunkBytes < 0:
		return bad("SnapshotChunkBytes is %d; want >= 0 (0: 1 MiB)", c.SnapshotChunkBytes)
	case c.LeaseDriftTicks < 0 || (c.LeaseReads && c.LeaseDriftTicks >= c.ElectionTicks):
		return bad("LeaseDriftTicks (%d) must be in [0, ElectionTicks (%d))", c.LeaseDriftTicks, c.ElectionTicks)
	case c.Metrics != nil && isNil(c.Metrics):
		return bad("Metrics is a typed nil %T; leave it nil for none", c.Metrics)
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
