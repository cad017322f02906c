package consensus

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// waitLeaderNode returns the node that leads, as WaitLeader on every node
// of c agrees; it fails the test if they disagree, or if no node is seen
// leading within a minute (virtual time in a synctest bubble; generous: it
// only turns a broken leadership notification into a failure, never a
// hang, whatever deadline ctx has).
func waitLeaderNode(ctx context.Context, t *testing.T, c *cluster) *Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		var lead transport.NodeID
		agree := true
		for _, id := range c.ids {
			n := c.nodes[id]
			if n == nil {
				continue
			}
			l, err := n.WaitLeader(ctx)
			if err != nil {
				t.Fatalf("%s: WaitLeader = %v", id, err)
			}
			if lead == "" {
				lead = l
			} else if l != lead {
				agree = false
			}
		}
		if agree && c.nodes[lead] != nil && c.nodes[lead].Leader().Role == raft.Leader {
			return c.nodes[lead]
		}
		if ctx.Err() != nil {
			var seen []string
			for _, id := range c.ids {
				if n := c.nodes[id]; n != nil {
					seen = append(seen, fmt.Sprintf("%s: %+v", id, n.Leader()))
				}
			}
			t.Fatalf("no node published itself as the leader all others name: %v", seen)
		}
		time.Sleep(time.Millisecond) // an election is settling; virtual time
	}
}

// TestWaitLeaderThenPropose: WaitLeader on a fresh cluster returns the
// leader, and proposing to it right away succeeds (no ErrNotLeader trap).
func TestWaitLeaderThenPropose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _ := newMemnetCluster(t, false, memnet.Faults{}, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		l := waitLeaderNode(ctx, t, c)
		if _, err := l.Propose(ctx, []byte("a=1")); err != nil {
			t.Fatalf("Propose on the leader WaitLeader named = %v", err)
		}
		var zero Node
		if _, err := zero.WaitLeader(ctx); err == nil {
			t.Errorf("zero Node WaitLeader = nil; want an error")
		}
		//lint:ignore SA1012 a nil context is the bad input under test
		if _, err := l.WaitLeader(nil); err != ErrNilContext {
			t.Errorf("WaitLeader(nil) = %v; want ErrNilContext", err)
		}
	})
}

// TestObserveLeaderChange: an observer on a follower sees the current
// leader, then, when the leader stops, a new leader in a higher term; an
// observer that never reads does not hold the node up; the channel closes
// when its context ends.
func TestObserveLeaderChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, net := newMemnetCluster(t, false, memnet.Faults{}, nil)
		// Generous (virtual time): a deadline only turns a missing
		// notification into a failure instead of a hang.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		l := waitLeaderNode(ctx, t, c)
		f := c.nodes[c.others(l.ID())[0]]
		obs := f.Observe(ctx)
		_ = c.nodes[c.others(l.ID())[1]].Observe(ctx) // never read
		var first LeaderInfo
		select {
		case first = <-obs:
		case <-ctx.Done():
			t.Fatalf("Observe delivered no first value: %v", ctx.Err())
		}
		if first.Leader != l.ID() {
			t.Fatalf("Observe first value = %+v; want leader %s", first, l.ID())
		}
		net.Isolate(l.ID())
		var got LeaderInfo
		timeout := time.After(10 * time.Second)
		for got.Leader == "" || got.Leader == l.ID() {
			select {
			case v, ok := <-obs:
				if !ok {
					t.Fatalf("Observe channel closed before a new leader; last %+v", got)
				}
				got = v
			case <-timeout:
				t.Fatalf("Observe: no new leader after %s was cut off; last %+v", l.ID(), got)
			}
		}
		if got.Term <= first.Term {
			t.Fatalf("new leader %s in term %d; want a term above %d", got.Leader, got.Term, first.Term)
		}
		// The node behind the unread observer still serves proposals.
		if _, err := c.nodes[got.Leader].Propose(ctx, []byte("b=1")); err != nil {
			t.Fatalf("Propose on the new leader = %v", err)
		}
		cancel()
		for range obs { // drains and ends: closed after ctx ends
		}
	})
}
