package raft

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/distkit/distkit/transport"
)

// ReadIndex (thesis §6.4): a linearizable read that costs one heartbeat
// round instead of a log write.
//
//  1. The leader records its commit index as the read index, once it has
//     committed an entry of its own term (before that its commit index may
//     lag behind what earlier leaders committed): requests that arrive
//     earlier wait.
//  2. It confirms it is still the leader with one heartbeat round started
//     after the request arrived: every request that arrived since the
//     previous round shares the next one (batching). Rounds are numbered;
//     heartbeats carry the number in Context and voters echo it.
//  3. Once a quorum (majorities of both halves of a joint configuration)
//     has acknowledged a round, every request of that round or an earlier
//     one is answered with a ReadState (or a MsgReadIndexResp to the
//     follower that forwarded it).
//  4. The caller waits until its state machine has applied Index, then
//     reads it.
//
// With Config.LeaseReads the leader skips step 2 while its lease holds
// (thesis §6.4.1): the voters that acknowledged a heartbeat refuse to vote
// for anyone else for an election timeout after receiving it, so until
// ElectionTicks - LeaseDriftTicks of the leader's ticks have passed since it
// sent that heartbeat, no other leader can exist. That reasoning assumes
// clocks whose rates differ by less than the drift bound.

// maxPendingReads bounds the ReadIndex requests a leader holds.
const maxPendingReads = 1 << 16

// ReadState answers a ReadIndex request: once the state machine has applied
// Index, it reflects every write acknowledged before the request was made.
// Context is the request's, to match answers with requests.
type ReadState struct {
	Index   uint64
	Context []byte
}

// readRequest is a ReadIndex request waiting on the leader.
type readRequest struct {
	ctx  []byte
	from transport.NodeID // "" for a request made on this node
	// index is the read index, 0 while the leader has not committed an
	// entry of its term; round is the heartbeat round that confirms it, 0
	// until one starts.
	index, round uint64
}

// readOnly is a leader's ReadIndex state for its term.
type readOnly struct {
	pending []readRequest
	// round is the number of the last heartbeat round started; acked is
	// the highest round a quorum acknowledged.
	round, acked uint64
	// acks is the highest round each node acknowledged.
	acks map[transport.NodeID]uint64
	// started holds the start tick of each round above acked (for the
	// lease), oldest first; leaseStart is the start tick of round acked.
	started    []roundStart
	leaseStart uint64
	// leaseVoid is the last round started before ExpireLease: only a later
	// round's acknowledgement gives a lease again.
	leaseVoid uint64
}

type roundStart struct{ round, tick uint64 }

func (ro *readOnly) reset() {
	clear(ro.pending)
	ro.pending = ro.pending[:0]
	ro.round, ro.acked, ro.leaseStart, ro.leaseVoid = 0, 0, 0, 0
	clear(ro.acks)
	ro.started = ro.started[:0]
}

// readIndex handles a ReadIndex request made on this node (from == "") or
// forwarded by a follower.
func (r *raft) readIndex(ctx []byte, from transport.NodeID) error {
	if r.role != Leader {
		if r.lead == "" || r.role != Follower {
			return &NotLeaderError{Leader: r.lead}
		}
		// Follower read: the leader confirms and answers with the index.
		r.send(Message{Type: MsgReadIndex, To: r.lead, Context: ctx})
		return nil
	}
	if len(r.reads.pending) >= maxPendingReads {
		// A leader that cannot reach a quorum (and does not step down:
		// check-quorum off) must not pile up requests without bound.
		return fmt.Errorf("%w: %d reads waiting for confirmation", ErrProposalDropped, len(r.reads.pending))
	}
	ctx = slices.Clone(ctx)
	if r.leaseHolds() {
		r.answerRead(readRequest{ctx: ctx, from: from, index: r.log.committed})
		return nil
	}
	var index uint64
	if r.committedInTerm() {
		index = r.log.committed
	}
	r.reads.pending = append(r.reads.pending, readRequest{ctx: ctx, from: from, index: index})
	return nil
}

// handleReadIndex is the leader's side of a follower read.
func (r *raft) handleReadIndex(m *Message) {
	if r.role != Leader {
		return // the sender's idea of the leader is stale; it will retry
	}
	pr := r.prs[m.From]
	if pr == nil {
		return // only members read through this leader
	}
	pr.heard = r.ticks + 1 // any message counts for check-quorum

	_ = r.readIndex(m.Context, m.From)
}

// handleReadIndexResp is the follower's side: the leader of this term
// answered.
func (r *raft) handleReadIndexResp(m *Message) {
	r.readStates = append(r.readStates, ReadState{Index: m.Index, Context: slices.Clone(m.Context)})
}

// flushReads runs on a leader at the end of each step: it gives waiting
// requests their read index once an entry of this term is committed, and
// starts a heartbeat round for the requests that have none.
func (r *raft) flushReads() {
	ro := &r.reads
	if len(ro.pending) == 0 {
		return
	}
	if ro.pending[0].index == 0 {
		if !r.committedInTerm() {
			return
		}
		for i := range ro.pending {
			if ro.pending[i].index == 0 {
				ro.pending[i].index = r.log.committed
			}
		}
	}
	if ro.pending[len(ro.pending)-1].round == 0 {
		r.bcastHeartbeat()
		r.heartbeatElapsed = 0
		r.releaseReads()
	}
}

// startReadRound starts a heartbeat round if a read with a read index
// waits for confirmation (a new round also confirms the reads of older
// ones, whose heartbeats may have been lost) or lease reads are on, and
// returns the Context the heartbeats carry (nil if none).
func (r *raft) startReadRound() []byte {
	ro := &r.reads
	waiting := len(ro.pending) > 0 && ro.pending[len(ro.pending)-1].index != 0
	if !waiting && !r.cfg.LeaseReads {
		return nil
	}
	ro.round++
	for i := len(ro.pending) - 1; i >= 0 && ro.pending[i].round == 0; i-- {
		if ro.pending[i].index != 0 {
			ro.pending[i].round = ro.round
		}
	}
	if ro.acks == nil {
		ro.acks = make(map[transport.NodeID]uint64, len(r.voterSet))
	}
	ro.acks[r.id] = ro.round
	if r.cfg.LeaseReads {
		ro.started = append(ro.started, roundStart{round: ro.round, tick: r.ticks})
	}
	return binary.AppendUvarint(nil, ro.round)
}

// readAck records a voter's acknowledgement of a heartbeat round.
func (r *raft) readAck(m *Message) {
	if len(m.Context) == 0 {
		return
	}
	round, n := binary.Uvarint(m.Context)
	ro := &r.reads
	if n <= 0 || round > ro.round || round <= ro.acks[m.From] {
		return
	}
	if ro.acks == nil {
		ro.acks = make(map[transport.NodeID]uint64, len(r.voterSet))
	}
	ro.acks[m.From] = round
	r.releaseReads()
}

// releaseReads answers the reads whose round a quorum acknowledged.
func (r *raft) releaseReads() {
	ro := &r.reads
	acked := r.quorumAcked(r.conf.Voters)
	if r.conf.Joint() {
		acked = min(acked, r.quorumAcked(r.conf.OutgoingVoters))
	}
	if acked <= ro.acked {
		return
	}
	ro.acked = acked
	k := 0
	for k < len(ro.started) && ro.started[k].round <= acked {
		ro.leaseStart = ro.started[k].tick
		k++
	}
	ro.started = slices.Delete(ro.started, 0, k)
	k = 0
	for k < len(ro.pending) && ro.pending[k].round != 0 && ro.pending[k].round <= acked {
		r.answerRead(ro.pending[k])
		k++
	}
	if k > 0 {
		clear(ro.pending[:k])
		ro.pending = slices.Delete(ro.pending, 0, k)
	}
}

// quorumAcked returns the highest round a majority of ids acknowledged.
func (r *raft) quorumAcked(ids []transport.NodeID) uint64 {
	if len(ids) == 0 {
		return ^uint64(0)
	}
	r.matchBuf = r.matchBuf[:0]
	for _, id := range ids {
		r.matchBuf = append(r.matchBuf, r.reads.acks[id])
	}
	return quorumValue(r.matchBuf)
}

// answerRead delivers a confirmed read index.
func (r *raft) answerRead(rq readRequest) {
	if rq.from == "" || rq.from == r.id {
		r.readStates = append(r.readStates, ReadState{Index: rq.index, Context: rq.ctx})
		return
	}
	r.send(Message{Type: MsgReadIndexResp, To: rq.from, Index: rq.index, Context: rq.ctx})
}

// leaseHolds reports whether a leader may answer reads without a round
// (thesis §6.4.1): lease reads are on, an entry of its term is committed,
// no transfer is under way or happened in this term, and fewer than
// ElectionTicks - LeaseDriftTicks ticks have passed since it started the
// last heartbeat round a quorum acknowledged.
func (r *raft) leaseHolds() bool {
	ro := &r.reads
	return r.cfg.LeaseReads && r.cfg.CheckQuorum && r.role == Leader &&
		r.leadTransferee == "" && !r.timeoutNowSent && ro.acked > ro.leaseVoid && r.committedInTerm() &&
		r.ticks-ro.leaseStart < uint64(r.cfg.ElectionTicks-r.cfg.LeaseDriftTicks)
}

// LeaseRead reports whether this node is a leader whose lease holds
// (Config.LeaseReads, see leaseHolds), and if so its commit index and age:
// the ticks since it started (sent) the heartbeat round that confirms the
// lease. A driver that serves reads off the lease without calling
// ReadIndex converts age into its own clock's time of that round's start,
// never the time the acknowledgements arrived (thesis §6.4.1), and waits
// until its state machine has applied index.
func (rn *RawNode) LeaseRead() (index, age uint64, ok bool) {
	if rn == nil || rn.broken() != nil || !rn.r.leaseHolds() {
		return 0, 0, false
	}
	return rn.r.log.committed, rn.r.ticks - rn.r.reads.leaseStart, true
}

// ExpireLease ends a leader's lease (Config.LeaseReads) at once: reads need
// a heartbeat round again until one started after this call is
// acknowledged. A driver calls it when its own clock says the lease has
// run out before the tick count does (ticks were lost while it was
// paused), so that neither its reads nor the ones followers forward are
// answered off a lease that no longer holds.
func (rn *RawNode) ExpireLease() {
	if rn == nil || rn.broken() != nil {
		return
	}
	rn.r.reads.leaseVoid = rn.r.reads.round
}
