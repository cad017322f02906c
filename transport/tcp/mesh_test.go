package tcp_test

import (
	"context"
	"errors"
	"testing"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/tcp"
)

// TestListenMeshConnectsEveryPair checks that every transport of a mesh can
// reach every other one.
func TestListenMeshConnectsEveryPair(t *testing.T) {
	ids := []transport.NodeID{"a", "b", "c"}
	ts, err := tcp.ListenMesh(tcp.MeshConfigs(tcp.DefaultConfig(), nil, ids...)...)
	if err != nil {
		t.Fatalf("ListenMesh = %v", err)
	}
	defer func() {
		for _, tr := range ts {
			tr.Close()
		}
	}()
	got := make(chan transport.Message, len(ids)*len(ids)) // every pair sends once; never blocks a handler
	for _, tr := range ts {
		tr.Handle("mesh", func(m transport.Message) { got <- m })
	}
	ctx := context.Background()
	for _, from := range ts {
		for _, to := range ids {
			if to != from.ID() {
				if err := from.Send(ctx, to, "mesh", []byte("hi")); err != nil {
					t.Fatalf("%s.Send(%s) = %v", from.ID(), to, err)
				}
			}
		}
	}
	seen := map[[2]transport.NodeID]bool{}
	for len(seen) < len(ids)*(len(ids)-1) {
		m := <-got
		seen[[2]transport.NodeID{m.From, m.To}] = true
	}
}

// TestListenMeshClosesOnError checks that a failing member leaves nothing
// running (goleak in TestMain would report the listeners' goroutines).
func TestListenMeshClosesOnError(t *testing.T) {
	_, err := tcp.ListenMesh(tcp.MeshConfigs(tcp.DefaultConfig(), nil, "a", "b", "")...)
	if !errors.Is(err, tcp.ErrInvalidConfig) {
		t.Fatalf("ListenMesh with an empty ID = %v; want ErrInvalidConfig", err)
	}
}
