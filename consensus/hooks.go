package consensus

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
)

// runtimeState is the part of a Node that serves leadership notifications,
// reads, leadership transfers and membership changes. The loop owns every
// field except those documented otherwise; node.go calls the hooks below
// at fixed points of the loop.
type runtimeState struct {
	// reqc carries work to run on the loop goroutine (unbuffered: the
	// caller waits until the loop takes it).
	reqc chan func()

	// leaderMu guards leader and leaderChanged, read by any goroutine.
	leaderMu      sync.Mutex
	leader        LeaderInfo
	leaderChanged chan struct{} // closed (and replaced) when leader changes

	// known is the set of nodes messages are accepted from: every member
	// this node has seen in a configuration (never shrinks, so a removed
	// leader's hand-over still reaches its target), or nil to accept any
	// sender of this cluster (a joining node that knows no members yet).
	known atomic.Pointer[map[transport.NodeID]bool]

	reads     map[uint64]*readReq // unanswered, by request ID
	readWait  []*readReq          // answered, waiting for the applied index
	nextRead  uint64
	transfers []*transferWait
	confs     []*confWait
}

func (rt *runtimeState) init(peers []transport.NodeID) {
	rt.reqc = make(chan func())
	rt.leaderChanged = make(chan struct{})
	rt.reads = make(map[uint64]*readReq)
	if len(peers) > 0 {
		m := make(map[transport.NodeID]bool, len(peers))
		for _, p := range peers {
			m[p] = true
		}
		rt.known.Store(&m)
	}
}

// knownMember reports whether messages from id are accepted (see known).
func (n *Node) knownMember(id transport.NodeID) bool {
	m := n.rt.known.Load()
	return m == nil || (*m)[id]
}

// refreshMembers adds the members of the configuration in force to the
// accepted senders. It runs on the loop after a Ready that may have changed
// the configuration.
func (n *Node) refreshMembers() {
	ms := n.core.Status().Membership
	nodes := ms.Nodes()
	if len(nodes) == 0 {
		return
	}
	old := n.rt.known.Load()
	if old != nil {
		missing := false
		for _, id := range nodes {
			if !(*old)[id] {
				missing = true
				break
			}
		}
		if !missing {
			return
		}
	}
	m := make(map[transport.NodeID]bool, len(nodes))
	if old != nil {
		for id := range *old {
			m[id] = true
		}
	}
	for _, id := range nodes {
		m[id] = true
	}
	n.rt.known.Store(&m)
}

// do runs f on the loop goroutine. It returns once the loop has taken f
// (not once f ran: f reports its outcome itself), or with an error if ctx
// ends or the node stops first.
func (n *Node) do(ctx context.Context, f func()) error {
	if !n.started() {
		return errNotStarted
	}
	if ctx == nil {
		return ErrNilContext
	}
	if err := ctx.Err(); err != nil {
		return err // as Propose: nothing is asked of the loop for a caller gone already
	}
	select {
	case n.rt.reqc <- f:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-n.donec:
		return ErrClosed
	}
}

// serveRequests runs f and every request already waiting, so that the
// reads arriving together are asked of the core before its next Ready and
// share one heartbeat round (the core batches them).
func (n *Node) serveRequests(f func()) {
	f()
	for range maxQueuedMessages {
		select {
		case f := <-n.rt.reqc:
			f()
		default:
			return
		}
	}
}

// onReady is called by handleReadies for each Ready before it is
// persisted: it publishes leadership changes and records read answers.
func (n *Node) onReady(rd *raft.Ready, termChanged bool) {
	if rd.SoftState != nil || termChanged {
		n.publishLeader()
		if rd.SoftState != nil {
			n.retryReads()
		}
	}
	if len(rd.ReadStates) > 0 {
		n.answerReads(rd.ReadStates)
	}
}

// afterReady is called by handleReadies after each Ready was applied and
// advanced: it releases the reads, transfers and membership changes that
// are now complete.
func (n *Node) afterReady(rd *raft.Ready) {
	if rd.Snapshot != nil || hasConfChange(rd.Entries) {
		n.refreshMembers()
	}
	if len(n.rt.readWait) > 0 {
		n.releaseReads()
	}
	if len(n.rt.transfers) > 0 {
		n.checkTransfers()
	}
	if len(n.rt.confs) > 0 {
		n.checkConfs()
	}
}

// onTick is called by the loop on every tick.
func (n *Node) onTick() {
	if len(n.rt.reads) > 0 || len(n.rt.readWait) > 0 {
		n.expireReads()
	}
	if len(n.rt.transfers) > 0 {
		n.checkTransfers()
	}
}

// onShutdown fails every waiting read, transfer and membership change.
func (n *Node) onShutdown() {
	// Readers also give up on Node.donec; finishing their batches is
	// tidiness (the open one, those in flight, those waiting to apply).
	n.reads.mu.Lock()
	open := n.reads.open
	n.reads.open = nil
	n.reads.mu.Unlock()
	if open != nil {
		open.finish(ErrStopped)
	}
	for id, r := range n.rt.reads {
		delete(n.rt.reads, id)
		r.finish(ErrStopped)
	}
	for _, r := range n.rt.readWait {
		r.finish(ErrStopped)
	}
	n.rt.readWait = nil
	for _, w := range n.rt.transfers {
		w.done <- ErrStopped
	}
	n.rt.transfers = nil
	for _, w := range n.rt.confs {
		w.done <- ErrStopped
	}
	n.rt.confs = nil
	n.publishLeader()
}

func hasConfChange(ents []raft.Entry) bool {
	for i := range ents {
		if ents[i].Type == raft.EntryConfChange {
			return true
		}
	}
	return false
}
