package consensus

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distkit/distkit/internal/benchload"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
	"github.com/distkit/distkit/transport/tcp"
)

// countSM is the benchmarks' state machine: it counts commands, so the
// figures measure replication rather than the application.
type countSM struct{ n atomic.Uint64 }

func (s *countSM) Apply(Entry) any { s.n.Add(1); return nil }
func (s *countSM) Snapshot(w io.Writer) error {
	_, err := fmt.Fprint(w, s.n.Load())
	return err
}
func (s *countSM) Restore(r io.Reader) error {
	var v uint64
	_, err := fmt.Fscan(r, &v)
	s.n.Store(v)
	return err
}

// benchTarget proposes to the leader of a benchmark cluster.
type benchTarget struct {
	nodes  map[transport.NodeID]*Node
	client *Client
	leader atomic.Pointer[Node]
}

// propose proposes on the cached leader and, should leadership move (a
// starved machine can delay heartbeats past an election timeout), lets the
// client find the new one. Commands are only counted, so a command retried
// after an ambiguous failure is harmless.
func (t *benchTarget) propose(ctx context.Context, cmd []byte) error {
	if _, err := t.leader.Load().Propose(ctx, cmd); err == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := t.client.Propose(cctx, cmd); err != nil {
		return err
	}
	t.leader.Store(t.nodes[t.client.Leader()])
	return nil
}

// benchCluster starts three nodes and returns a target bound to the
// leader, and a cleanup.
func benchCluster(b *testing.B, durable bool, transports func(ids []transport.NodeID) []transport.Transport) (*benchTarget, func()) {
	b.Helper()
	trs := transports(three)
	target := &benchTarget{nodes: map[transport.NodeID]*Node{}}
	members := map[transport.NodeID]Proposer{}
	cleanup := func() {
		for _, n := range target.nodes {
			n.Close()
		}
		for _, tr := range trs {
			tr.Close()
		}
	}
	for i, id := range three {
		cfg := DefaultConfig()
		cfg.ID, cfg.Peers = id, three
		if durable {
			cfg.DataDir = b.TempDir()
		}
		n, err := New(cfg, trs[i], &countSM{})
		if err != nil {
			cleanup()
			b.Fatal(err)
		}
		target.nodes[id] = n
		members[id] = n
	}
	ccfg := DefaultClientConfig()
	target.client, _ = NewClient(members, ccfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := target.client.Propose(ctx, []byte("warm-up")); err != nil {
		cleanup()
		b.Fatalf("no leader: %v", err)
	}
	target.leader.Store(target.nodes[target.client.Leader()])
	return target, cleanup
}

// memnetTransports joins the nodes to a fault-free memnet network, which
// is closed with the last transport.
func memnetTransports(b *testing.B) func(ids []transport.NodeID) []transport.Transport {
	return func(ids []transport.NodeID) []transport.Transport {
		net, err := memnet.New(memnet.DefaultConfig())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { net.Close() })
		var out []transport.Transport
		for _, id := range ids {
			tr, err := net.Join(id)
			if err != nil {
				b.Fatal(err)
			}
			out = append(out, tr)
		}
		return out
	}
}

func tcpTransports(b *testing.B) func(ids []transport.NodeID) []transport.Transport {
	return func(ids []transport.NodeID) []transport.Transport {
		ts, err := tcp.ListenMesh(tcp.MeshConfigs(tcp.DefaultConfig(), nil, ids...)...)
		if err != nil {
			b.Fatal(err)
		}
		out := make([]transport.Transport, len(ts))
		for i, t := range ts {
			out[i] = t
		}
		return out
	}
}

// runProposers proposes b.N 128-byte commands to the leader from the given
// number of goroutines and reports throughput and latency percentiles.
func runProposers(b *testing.B, target *benchTarget, proposers int) {
	cmd := make([]byte, 128)
	benchload.Run(b, proposers, "ops/s", func(ctx context.Context, _ int) error {
		return target.propose(ctx, cmd)
	})
}

// BenchmarkRaftPropose measures a three-node cluster committing 128-byte
// commands from 64 concurrent proposers: mem is memnet and memory storage;
// wal is loopback TCP and the durable write-ahead log (one fsync per Ready
// on every node). mem-serial is a single proposer, i.e. the commit latency
// of an idle cluster.
func BenchmarkRaftPropose(b *testing.B) {
	b.Run("mem", func(b *testing.B) {
		target, cleanup := benchCluster(b, false, memnetTransports(b))
		defer cleanup()
		runProposers(b, target, 64)
	})
	b.Run("wal", func(b *testing.B) {
		target, cleanup := benchCluster(b, true, tcpTransports(b))
		defer cleanup()
		runProposers(b, target, 64)
	})
	b.Run("mem-serial", func(b *testing.B) {
		target, cleanup := benchCluster(b, false, memnetTransports(b))
		defer cleanup()
		runProposers(b, target, 1)
	})
}
