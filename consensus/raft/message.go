package raft

import "github.com/distkit/distkit/transport"

// MessageType names a Raft RPC. Requests and their responses are separate
// messages: the core never waits for a reply, it reacts to whatever arrives.
type MessageType uint8

// The message kinds. Values are part of the wire format: never renumber.
const (
	// MsgVote is RequestVote (§5.2): Term is the candidate's term, Index
	// and LogTerm describe the candidate's last log entry.
	MsgVote MessageType = iota + 1
	// MsgVoteResp answers MsgVote; Reject says whether the vote was denied.
	MsgVoteResp
	// MsgPreVote asks "would you vote for me at Term?" without anyone
	// changing state (thesis §9.6). Term is the candidate's term plus one.
	MsgPreVote
	// MsgPreVoteResp answers MsgPreVote. A granted response carries the
	// term that was asked about; a rejection carries the voter's own term.
	MsgPreVoteResp
	// MsgApp is AppendEntries (§5.3): Index and LogTerm locate the entry
	// preceding Entries, Commit is the leader's commit index.
	MsgApp
	// MsgAppResp answers MsgApp. On success Index is the highest index the
	// follower now holds in agreement with the leader. On rejection Index is
	// the rejected MsgApp's Index and RejectHint/LogTerm point the leader at
	// the follower's probable conflict (fast backtracking, §5.3 last
	// paragraphs).
	MsgAppResp
	// MsgHeartbeat asserts leadership and carries the commit index the
	// receiver may safely adopt.
	MsgHeartbeat
	// MsgHeartbeatResp answers MsgHeartbeat; Index is the follower's last
	// log index (a hint for stalled replication, never trusted as a match).
	MsgHeartbeatResp
	// MsgSnap is one chunk of InstallSnapshot (§7): Snapshot identifies the
	// snapshot, Offset is where Data starts in the snapshot's bytes and
	// Last marks the final chunk.
	MsgSnap
	// MsgSnapResp acknowledges a chunk: Index is the number of snapshot
	// bytes the follower holds. With Reject set the follower had no use
	// for the chunk and Index says where the leader should resume.
	MsgSnapResp
	// MsgTimeoutNow tells a follower to campaign at once (leadership
	// transfer, thesis §3.10). Only the leader of the current term may send
	// it; Index is the leader's last index.
	MsgTimeoutNow
	// MsgReadIndex asks the leader for a read index (a follower read,
	// thesis §6.4); Context identifies the request.
	MsgReadIndex
	// MsgReadIndexResp answers MsgReadIndex: Index is the read index and
	// Context the request's.
	MsgReadIndexResp

	maxMessageType = MsgReadIndexResp
)

var messageTypeNames = [...]string{
	MsgVote:          "MsgVote",
	MsgVoteResp:      "MsgVoteResp",
	MsgPreVote:       "MsgPreVote",
	MsgPreVoteResp:   "MsgPreVoteResp",
	MsgApp:           "MsgApp",
	MsgAppResp:       "MsgAppResp",
	MsgHeartbeat:     "MsgHeartbeat",
	MsgHeartbeatResp: "MsgHeartbeatResp",
	MsgSnap:          "MsgSnap",
	MsgSnapResp:      "MsgSnapResp",
	MsgTimeoutNow:    "MsgTimeoutNow",
	MsgReadIndex:     "MsgReadIndex",
	MsgReadIndexResp: "MsgReadIndexResp",
}

// String returns the message kind's name.
func (t MessageType) String() string {
	if t == 0 || t > maxMessageType {
		return "MsgUnknown"
	}
	return messageTypeNames[t]
}

// Message is one Raft RPC between two nodes. Which fields are meaningful
// depends on Type (see the MessageType constants); the rest are zero.
//
// Messages produced by the core share Entries, Data and Snapshot with the
// core: send them (Marshal copies) and do not modify them.
type Message struct {
	Type MessageType
	From transport.NodeID
	To   transport.NodeID
	// Term is the sender's term (for MsgPreVote, the term it would campaign in).
	Term uint64
	// LogTerm is the term of the entry at Index (MsgApp, MsgVote, MsgPreVote)
	// or of the entry at RejectHint (a rejecting MsgAppResp).
	LogTerm uint64
	// Index is a log position; see the message kinds for its meaning.
	Index uint64
	// Commit is the sender's commit index (MsgApp, MsgHeartbeat).
	Commit uint64
	// Reject says a request was refused.
	Reject bool
	// RejectHint is the follower's guess at the last index the leader's log
	// may agree with (a rejecting MsgAppResp).
	RejectHint uint64
	// Entries are the log entries of a MsgApp, consecutive from Index+1.
	Entries []Entry
	// Snapshot identifies the snapshot a MsgSnap chunk belongs to.
	Snapshot *SnapshotMeta
	// Offset is the byte offset of Data within the snapshot (MsgSnap).
	Offset uint64
	// Data is a chunk of snapshot bytes (MsgSnap).
	Data []byte
	// Last marks the final chunk of a snapshot (MsgSnap).
	Last bool
	// Context identifies a ReadIndex request (MsgReadIndex and its
	// response) or a heartbeat round (MsgHeartbeat, echoed by
	// MsgHeartbeatResp).
	Context []byte
	// Transfer marks a MsgVote of a campaign started by MsgTimeoutNow
	// (leadership transfer): voters grant it despite their check-quorum
	// lease.
	Transfer bool
}
