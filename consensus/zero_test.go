package consensus

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
)

// TestZeroNode: a Node not built by New (the zero value, or a nil pointer)
// reports ErrClosed from every method instead of panicking or hanging.
func TestZeroNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tests := []struct {
		name string
		n    *Node
	}{
		{"zero", &Node{}},
		{"nil", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.n.Propose(ctx, []byte("x")); !errors.Is(err, ErrClosed) {
				t.Errorf("Propose = %v; want ErrClosed", err)
			}
			if st := tt.n.Status(); !errors.Is(st.Err, ErrClosed) {
				t.Errorf("Status().Err = %v; want ErrClosed", st.Err)
			}
			if err := tt.n.Close(); !errors.Is(err, ErrClosed) {
				t.Errorf("Close = %v; want ErrClosed", err)
			}
			if id := tt.n.ID(); id != "" {
				t.Errorf("ID = %q; want empty", id)
			}
		})
	}
}

// TestProposeNilContext: a nil context is an error, not a panic.
func TestProposeNilContext(t *testing.T) {
	c := newCluster(t, false, nil)
	cl := c.client()
	//lint:ignore SA1012 the nil context is the input under test
	if _, err := c.nodes["n1"].Propose(nil, []byte("x=1")); !errors.Is(err, ErrNilContext) {
		t.Errorf("Node.Propose(nil ctx) = %v; want ErrNilContext", err)
	}
	//lint:ignore SA1012 the nil context is the input under test
	if _, err := cl.Propose(nil, []byte("x=1")); !errors.Is(err, ErrNilContext) {
		t.Errorf("Client.Propose(nil ctx) = %v; want ErrNilContext", err)
	}
}

// goneCtx is a context whose caller gives up right after Propose has
// queued the command: its first Err is nil, every later one Canceled, and
// Done is closed from the start.
type goneCtx struct {
	context.Context
	calls atomic.Int32
	done  chan struct{}
}

func (c *goneCtx) Done() <-chan struct{} { return c.done }

func (c *goneCtx) Err() error {
	if c.calls.Add(1) == 1 {
		return nil
	}
	return context.Canceled
}

// TestAbandonedProposalNotProposed: a command whose caller has given up
// before the node's loop takes it from the queue never reaches the log, so
// a caller that times out under load does not leave work behind.
func TestAbandonedProposalNotProposed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := newCluster(t, false, nil)
	leader := c.leader(ctx)
	gone := &goneCtx{Context: ctx, done: make(chan struct{})}
	close(gone.done)
	if _, err := c.nodes[leader].Propose(gone, []byte("gone=1")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Propose(abandoned) = %v; want context.Canceled", err)
	}
	// Proposals are taken in order: once this one is applied, the
	// abandoned one was either proposed before it or dropped.
	res, err := c.nodes[leader].Propose(ctx, []byte("after=1"))
	if err != nil {
		t.Fatalf("Propose(after=1) = %v", err)
	}
	if err := c.sms[leader].waitApplied(ctx, res.(uint64)); err != nil {
		t.Fatal(err)
	}
	if v, ok := c.sms[leader].get("gone"); ok {
		t.Fatalf("abandoned command applied: gone = %q; want absent", v)
	}
}

// TestZeroClient: a Client not built by NewClient reports ErrInvalidConfig
// instead of panicking.
func TestZeroClient(t *testing.T) {
	for _, c := range []*Client{{}, nil} {
		if _, err := c.Propose(context.Background(), []byte("x")); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Propose on %#v = %v; want ErrInvalidConfig", c, err)
		}
		if id := c.Leader(); id != "" {
			t.Errorf("Leader on %#v = %q; want empty", c, id)
		}
	}
}

// TestClientOfZeroNode: a Client whose member is a Node not built by New
// (which it hands attempts to directly, not through Node.Propose) gets
// ErrClosed, not a panic, and gives up at its context's end.
func TestClientOfZeroNode(t *testing.T) {
	cl, err := NewClient(map[transport.NodeID]Proposer{"a": &Node{}}, DefaultClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := cl.Propose(ctx, []byte("x")); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), ErrClosed.Error()) {
		t.Fatalf("Propose = %v; want the deadline, naming ErrClosed as the last failure", err)
	}
}

// TestZeroDiskStorage: a DiskStorage not opened by OpenDiskStorage reports
// ErrInvalidConfig from every method instead of panicking.
func TestZeroDiskStorage(t *testing.T) {
	for _, s := range []*DiskStorage{{}, nil} {
		_, _, initErr := s.InitialState()
		_, entErr := s.Entries(1, 2, 10)
		_, termErr := s.Term(1)
		_, firstErr := s.FirstIndex()
		_, lastErr := s.LastIndex()
		_, snapErr := s.Snapshot()
		_, createErr := s.CreateSnapshot(1, raft.Membership{}, nil)
		errs := map[string]error{
			"InitialState": initErr, "Entries": entErr, "Term": termErr,
			"FirstIndex": firstErr, "LastIndex": lastErr, "Snapshot": snapErr,
			"Save":           s.Save(raft.HardState{Term: 1}, nil),
			"ApplySnapshot":  s.ApplySnapshot(raft.Snapshot{Meta: raft.SnapshotMeta{Index: 1, Term: 1}}),
			"CreateSnapshot": createErr,
			"Close":          s.Close(),
		}
		for name, err := range errs {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("%s on %#v = %v; want ErrInvalidConfig", name, s, err)
			}
		}
	}
}
