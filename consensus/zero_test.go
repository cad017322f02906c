package consensus

import (
	"context"
	"errors"
	"testing"
	"time"
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
