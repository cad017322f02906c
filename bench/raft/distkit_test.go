package raft

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/tcp"
)

var ids = []transport.NodeID{"n1", "n2", "n3"}

type counter struct{ n atomic.Uint64 }

func (c *counter) Apply(consensus.Entry) any { c.n.Add(1); return nil }
func (c *counter) Snapshot(w io.Writer) error {
	_, err := fmt.Fprint(w, c.n.Load())
	return err
}
func (c *counter) Restore(r io.Reader) error {
	var v uint64
	_, err := fmt.Fscan(r, &v)
	c.n.Store(v)
	return err
}

// distkitCluster starts three distkit nodes and returns a propose function
// bound to the leader. durable selects loopback TCP and the WAL; otherwise
// an in-process transport and memory storage.
func distkitCluster(b *testing.B, durable bool) (proposeFunc, func()) {
	b.Helper()
	var trs []transport.Transport
	if durable {
		var tcps []*tcp.Transport
		for _, id := range ids {
			cfg := tcp.DefaultConfig()
			cfg.ID = id
			t, err := tcp.Listen(cfg)
			if err != nil {
				b.Fatal(err)
			}
			tcps = append(tcps, t)
			trs = append(trs, t)
		}
		for _, t := range tcps {
			for _, p := range tcps {
				if p != t {
					t.AddPeer(p.ID(), p.Addr().String())
				}
			}
		}
	} else {
		net := &inprocNet{nodes: map[transport.NodeID]*inprocTransport{}}
		for _, id := range ids {
			trs = append(trs, net.join(id))
		}
	}
	members := map[transport.NodeID]consensus.Proposer{}
	var nodes []*consensus.Node
	cleanup := func() {
		for _, n := range nodes {
			n.Close()
		}
		for _, t := range trs {
			t.Close()
		}
	}
	for i, id := range ids {
		cfg := consensus.DefaultConfig()
		cfg.ID, cfg.Peers = id, ids
		if durable {
			cfg.DataDir = b.TempDir()
		}
		n, err := consensus.New(cfg, trs[i], &counter{})
		if err != nil {
			cleanup()
			b.Fatal(err)
		}
		nodes = append(nodes, n)
		members[id] = n
	}
	cl, err := consensus.NewClient(members, consensus.DefaultClientConfig())
	if err != nil {
		cleanup()
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cl.Propose(ctx, []byte("warm-up")); err != nil {
		cleanup()
		b.Fatal(err)
	}
	leader := members[cl.Leader()]
	return func(ctx context.Context, cmd []byte) error {
		_, err := leader.Propose(ctx, cmd)
		return err
	}, cleanup
}

// inprocNet is a minimal in-process transport for the benchmark: Send hands
// the payload to the receiver's handler directly (handlers only queue).
type inprocNet struct {
	mu    sync.Mutex // guards nodes
	nodes map[transport.NodeID]*inprocTransport
}

func (n *inprocNet) join(id transport.NodeID) *inprocTransport {
	t := &inprocTransport{net: n, id: id, handlers: map[string]transport.Handler{}}
	n.mu.Lock()
	n.nodes[id] = t
	n.mu.Unlock()
	return t
}

type inprocTransport struct {
	net      *inprocNet
	id       transport.NodeID
	mu       sync.Mutex // guards handlers
	handlers map[string]transport.Handler
}

func (t *inprocTransport) ID() transport.NodeID { return t.id }

func (t *inprocTransport) Send(_ context.Context, to transport.NodeID, service string, payload []byte) error {
	t.net.mu.Lock()
	dst := t.net.nodes[to]
	t.net.mu.Unlock()
	if dst == nil {
		return transport.ErrUnknownPeer
	}
	dst.mu.Lock()
	h := dst.handlers[service]
	dst.mu.Unlock()
	if h != nil {
		h(transport.Message{From: t.id, To: to, Service: service, Payload: payload})
	}
	return nil
}

func (t *inprocTransport) Handle(service string, h transport.Handler) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if h == nil {
		delete(t.handlers, service)
	} else {
		t.handlers[service] = h
	}
}

func (t *inprocTransport) Close() error { return nil }
