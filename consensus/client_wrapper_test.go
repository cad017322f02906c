package consensus_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/consensus/consensustest"
	"github.com/distkit/distkit/transport"
)

// readOnly is a user's Proposer that wraps a *Node and refuses every
// command (an access check, a maintenance switch, a smaller size limit).
type readOnly struct {
	*consensus.Node
	calls *atomic.Int32
}

var errReadOnly = errors.New("read-only")

func (r readOnly) Propose(context.Context, []byte) (any, error) {
	r.calls.Add(1)
	return nil, errReadOnly
}

// TestClientCallsWrapperPropose: a Client proposes through its members'
// Propose. A type embedding *Node also inherits the node's unexported
// way of taking a Client's attempts; the Client must not take it and skip
// the wrapper's own Propose. (Found by review: it did.)
func TestClientCallsWrapperPropose(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := consensustest.Start(t, 3)
	c.WaitLeader(ctx)
	var calls atomic.Int32
	members := map[transport.NodeID]consensus.Proposer{}
	for _, id := range c.IDs() {
		members[id] = readOnly{Node: c.Node(id), calls: &calls}
	}
	cl, err := consensus.NewClient(members, consensus.DefaultClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	if res, err := cl.Propose(ctx, []byte("x=1")); !errors.Is(err, errReadOnly) || calls.Load() == 0 {
		t.Fatalf("Client.Propose through read-only wrappers = %v, %v after %d calls of their Propose; want errReadOnly", res, err, calls.Load())
	}
}
