package consensus

import (
	"context"
	"fmt"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
)

// LeaderInfo is what a node knows about leadership: the leader of Term
// ("" during an election), and this node's role.
type LeaderInfo struct {
	Leader transport.NodeID
	Term   uint64
	Role   raft.Role
}

// publishLeader records the loop's view of leadership and wakes every
// observer. It runs on the loop and never blocks.
func (n *Node) publishLeader() {
	li := LeaderInfo{Leader: n.leader, Term: n.term, Role: n.role}
	n.rt.leaderMu.Lock()
	defer n.rt.leaderMu.Unlock()
	if li == n.rt.leader {
		return
	}
	n.rt.leader = li
	close(n.rt.leaderChanged)
	n.rt.leaderChanged = make(chan struct{})
}

// leaderView returns the latest published LeaderInfo and a channel closed
// at the next change.
func (n *Node) leaderView() (LeaderInfo, <-chan struct{}) {
	n.rt.leaderMu.Lock()
	defer n.rt.leaderMu.Unlock()
	return n.rt.leader, n.rt.leaderChanged
}

// Leader returns what this node currently knows about leadership, without
// waiting for the loop.
func (n *Node) Leader() LeaderInfo {
	if !n.started() {
		return LeaderInfo{}
	}
	li, _ := n.leaderView()
	return li
}

// WaitLeader blocks until this node knows a leader and returns it. Call it
// after New before proposing: a fresh cluster has no leader for an
// election timeout or more, and Propose fails with ErrNotLeader meanwhile
// (a Client retries for you). Errors: ctx's, or ErrClosed once the node
// stopped.
func (n *Node) WaitLeader(ctx context.Context) (transport.NodeID, error) {
	if !n.started() {
		return "", errNotStarted
	}
	if ctx == nil {
		return "", ErrNilContext
	}
	for {
		li, changed := n.leaderView()
		if li.Leader != "" {
			return li.Leader, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return "", fmt.Errorf("consensus: wait for a leader: %w", ctx.Err())
		case <-n.donec:
			return "", ErrClosed
		}
	}
}

// Observe returns a channel that receives this node's LeaderInfo at once
// and again after every change of leader, term or role. It coalesces:
// an observer that reads slowly sees the latest value, never a backlog,
// and the node never waits for it. The channel is closed when ctx ends or
// the node stops; a goroutine serves it until then.
func (n *Node) Observe(ctx context.Context) <-chan LeaderInfo {
	out := make(chan LeaderInfo, 1) // size 1: holds the latest value only
	if !n.started() || ctx == nil {
		close(out)
		return out
	}
	go func() {
		defer close(out)
		var last LeaderInfo
		first := true
		for {
			li, changed := n.leaderView()
			if first || li != last {
				first, last = false, li
				select { // replace an unread older value
				case <-out:
				default:
				}
				out <- li // never blocks: this goroutine is the only sender
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return
			case <-n.donec:
				return
			}
		}
	}()
	return out
}
