package raft

import (
	"errors"

	"github.com/distkit/distkit/transport"
)

// snapshotRetries is how many times a leader resends an unacknowledged
// snapshot chunk (one per election timeout) before it restarts the transfer
// from the newest snapshot.
const snapshotRetries = 3

// startSnapshot switches a follower whose next entries are compacted to a
// snapshot transfer (§7) and sends the first chunk. A storage that keeps
// only the snapshot's metadata (Data empty, as consensus.DiskStorage does)
// makes that one MsgSnap with Last set and no data: the runtime then
// carries the data itself (the consensus package streams the snapshot
// file) and hands the follower's core that MsgSnap once the data is there.
func (r *raft) startSnapshot(to transport.NodeID, pr *progress) {
	snap, err := r.cfg.Storage.Snapshot()
	if errors.Is(err, ErrUnavailable) {
		// The caller is producing one; try again on the next heartbeat.
		return
	}
	if err != nil || snap.IsZero() {
		r.logger.Warn("entries compacted but no snapshot available", "to", string(to), "err", err)
		return
	}
	r.logger.Info("sending snapshot", "to", string(to), "index", snap.Meta.Index, "bytes", len(snap.Data))
	pr.becomeSnapshot(&snap)
	r.sendSnapshotChunk(to, pr)
}

// sendSnapshotChunk sends the chunk after the acknowledged bytes. Chunks go
// one at a time (stop and wait), so a transfer holds at most MaxMsgBytes in
// flight and the follower never receives them out of order.
func (r *raft) sendSnapshotChunk(to transport.NodeID, pr *progress) {
	t := &pr.snap
	data := t.snap.Data
	end := min(t.acked+r.cfg.MaxMsgBytes, uint64(len(data)))
	r.send(Message{
		Type:     MsgSnap,
		To:       to,
		Snapshot: &t.snap.Meta,
		Offset:   t.acked,
		Data:     data[t.acked:end],
		Last:     end == uint64(len(data)),
	})
	t.sent = end
	t.idleTicks = 0
}

// tickSnapshot resends a chunk that went unanswered for an election
// timeout, and after snapshotRetries such resends restarts the transfer
// with the newest snapshot. This is how a follower stuck mid-snapshot (it
// restarted, lost its partial copy, or the chunk was lost) recovers.
func (r *raft) tickSnapshot(to transport.NodeID, pr *progress) {
	t := &pr.snap
	t.idleTicks++
	if t.idleTicks < r.cfg.ElectionTicks {
		return
	}
	t.retries++
	if t.retries > snapshotRetries {
		r.logger.Info("restarting stalled snapshot transfer", "to", string(to))
		pr.becomeProbe()
		r.startSnapshot(to, pr)
		return
	}
	r.sendSnapshotChunk(to, pr)
}

// handleSnapshotResponse advances a transfer by one chunk.
func (r *raft) handleSnapshotResponse(m *Message, pr *progress) {
	t := &pr.snap
	if pr.state != ProgressSnapshot || t.snap == nil ||
		m.Snapshot.Index != t.snap.Meta.Index || m.Snapshot.Term != t.snap.Meta.Term {
		return // about another transfer
	}
	held := m.Index
	switch {
	case held > uint64(len(t.snap.Data)):
		return
	case held == t.sent && t.sent > t.acked:
		// The chunk in flight arrived.
		t.acked = held
		t.retries = 0
		if t.acked < uint64(len(t.snap.Data)) {
			r.sendSnapshotChunk(m.From, pr)
		}
	case m.Reject && held != t.sent:
		// The follower holds something else than we assumed (it
		// restarted, or a chunk was lost): resume where it is.
		t.acked = held
		r.sendSnapshotChunk(m.From, pr)
	}
	// Anything else is a duplicate or stale acknowledgement.
}

// handleSnapshot is the follower's side of InstallSnapshot (§7), one chunk
// at a time. The reply goes out after the Ready that persists the snapshot.
func (r *raft) handleSnapshot(m *Message) {
	meta := m.Snapshot
	if meta.Index <= r.log.committed {
		// Already have all of it; tell the leader where we are.
		r.incoming = nil
		r.send(Message{Type: MsgAppResp, To: m.From, Index: r.log.committed})
		return
	}
	in := r.incoming
	same := in != nil && in.meta.Index == meta.Index && in.meta.Term == meta.Term
	switch {
	case m.Offset == 0:
		// A new transfer (or a restarted one) starts from scratch.
		in = &incomingSnapshot{meta: SnapshotMeta{Index: meta.Index, Term: meta.Term, Membership: meta.Membership.Clone()}}
		r.incoming = in
	case !same || m.Offset != uint64(len(in.buf)):
		var held uint64
		if same {
			held = uint64(len(in.buf))
		}
		r.send(Message{Type: MsgSnapResp, To: m.From, Index: held, Reject: true, Snapshot: &SnapshotMeta{Index: meta.Index, Term: meta.Term}})
		return
	}
	// Copy: m.Data may alias a network buffer.
	in.buf = append(in.buf, m.Data...)
	if !m.Last {
		r.send(Message{Type: MsgSnapResp, To: m.From, Index: uint64(len(in.buf)), Snapshot: &SnapshotMeta{Index: meta.Index, Term: meta.Term}})
		return
	}
	r.incoming = nil
	snap := &Snapshot{Meta: in.meta, Data: in.buf}
	if r.restore(snap) {
		r.logger.Info("installed snapshot", "index", snap.Meta.Index, "term", snap.Meta.Term, "bytes", len(snap.Data))
		r.send(Message{Type: MsgAppResp, To: m.From, Index: r.log.lastIndex()})
		return
	}
	r.send(Message{Type: MsgAppResp, To: m.From, Index: r.log.committed})
}

// restore replaces the follower's log with snap unless the log already
// contains the snapshot's last entry, in which case it only moves the commit
// index (the entries after it may still be useful).
func (r *raft) restore(snap *Snapshot) bool {
	if snap.Meta.Index <= r.log.committed {
		return false
	}
	if r.log.matchTerm(snap.Meta.Index, snap.Meta.Term) {
		r.log.commitTo(snap.Meta.Index)
		return false
	}
	r.log.restore(snap)
	if len(snap.Meta.Membership.Voters) > 0 {
		// The membership lives in the snapshot and comes back with it;
		// whatever the replaced log said is gone with the log.
		r.restoreConf(snap)
	} else if r.truncateConf(snap.Meta.Index + 1) {
		r.setConf()
	}
	return true
}
