package raft

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
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
// memnet (the in-memory network) and memory storage.
func distkitCluster(b *testing.B, durable bool) (proposeFunc, func()) {
	b.Helper()
	var trs []transport.Transport
	if durable {
		tcps, err := tcp.ListenMesh(tcp.MeshConfigs(tcp.DefaultConfig(), nil, ids...)...)
		if err != nil {
			b.Fatal(err)
		}
		for _, t := range tcps {
			trs = append(trs, t)
		}
	} else {
		net, err := memnet.New(memnet.DefaultConfig())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { net.Close() })
		for _, id := range ids {
			t, err := net.Join(id)
			if err != nil {
				b.Fatal(err)
			}
			trs = append(trs, t)
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
	ccfg := consensus.DefaultClientConfig()
	cl, err := consensus.NewClient(members, ccfg)
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
	var leader atomic.Pointer[consensus.Node]
	leader.Store(members[cl.Leader()].(*consensus.Node))
	return func(ctx context.Context, cmd []byte) error {
		if _, err := leader.Load().Propose(ctx, cmd); err == nil {
			return nil
		}
		// Leadership moved: let the client find the new leader.
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if _, err := cl.Propose(cctx, cmd); err != nil {
			return err
		}
		leader.Store(members[cl.Leader()].(*consensus.Node))
		return nil
	}, cleanup
}
