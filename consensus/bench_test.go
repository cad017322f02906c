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

// bigSM is a state machine with a large state: an immutable blob standing
// for the data, and a counter the commands bump. Its views share the blob
// (a persistent structure's root, in a real application), so SnapshotView
// is instant and the write happens on the Node's snapshot goroutine.
type bigSM struct {
	n     atomic.Uint64
	blob  []byte
	snaps *atomic.Int64 // snapshots written, on every node
}

func (s *bigSM) Apply(Entry) any { s.n.Add(1); return nil }

func (s *bigSM) Snapshot(w io.Writer) error {
	return (&bigView{n: s.n.Load(), blob: s.blob, snaps: s.snaps}).WriteSnapshot(w)
}

func (s *bigSM) Restore(r io.Reader) error {
	var n uint64
	if _, err := fmt.Fscanln(r, &n); err != nil {
		return err
	}
	blob, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.n.Store(n)
	s.blob = blob
	return nil
}

func (s *bigSM) SnapshotView() (SnapshotWriter, error) {
	return &bigView{n: s.n.Load(), blob: s.blob, snaps: s.snaps}, nil
}

type bigView struct {
	n     uint64
	blob  []byte
	snaps *atomic.Int64
}

func (v *bigView) WriteSnapshot(w io.Writer) error {
	if _, err := fmt.Fprintln(w, v.n); err != nil {
		return err
	}
	for b := v.blob; len(b) > 0; {
		k := min(len(b), 1<<20)
		if _, err := w.Write(b[:k]); err != nil {
			return err
		}
		b = b[k:]
	}
	v.snaps.Add(1)
	return nil
}

func (v *bigView) Release() {}

// syncOnlySM hides bigSM's SnapshotView: the Node snapshots it on its own
// goroutine, as it does state machines without views.
type syncOnlySM struct{ sm *bigSM }

func (s syncOnlySM) Apply(e Entry) any          { return s.sm.Apply(e) }
func (s syncOnlySM) Snapshot(w io.Writer) error { return s.sm.Snapshot(w) }
func (s syncOnlySM) Restore(r io.Reader) error  { return s.sm.Restore(r) }

// BenchmarkRaftProposeLargeState is the wal workload of BenchmarkRaftPropose
// (three nodes over loopback TCP with the durable log, 64 proposers of
// 128-byte commands) on a state machine holding 100 MB, with
// SnapshotThreshold 1000 and at most one snapshot in flight per node:
//
//   - view: the default snapshot policy. The view is written on the Node's
//     snapshot goroutine (SnapshotViewer) at SnapshotWriteRate (64 MiB/s);
//     the first snapshot is taken at entry 1000, and each later one once
//     the commands applied since the last one reach SnapshotLogPercent
//     (25%) of its size: 25 MB of commands, about 205k entries of 128
//     bytes. A run shorter than that takes one snapshot per node.
//   - view-every-1000: the same with SnapshotLogPercent 0, i.e. a snapshot
//     every 1000 entries, or as soon as the previous one is written: the
//     nodes rewrite 100 MB back to back for the whole run.
//   - sync: the default policy, on a state machine without a view: the
//     snapshot is written on the Node's goroutine.
//
// It reports ops/s, p50 and p99 latency, the snapshots written during the
// run (on all three nodes), and the leader changes (any is a stall long
// enough to look like a dead leader). Compare with BenchmarkRaftPropose/wal
// for the small-state figure; run it long enough (-benchtime 300000x or
// more) for the policy's second snapshots to be in the figure.
func BenchmarkRaftProposeLargeState(b *testing.B) {
	const stateBytes = 100 << 20
	blob := make([]byte, stateBytes)
	for i := range blob {
		blob[i] = byte(i * 7)
	}
	for _, mode := range []string{"view", "view-every-1000", "sync"} {
		b.Run(mode, func(b *testing.B) {
			var snaps atomic.Int64
			trs := tcpTransports(b)(three)
			target := &benchTarget{nodes: map[transport.NodeID]*Node{}}
			members := map[transport.NodeID]Proposer{}
			defer func() {
				for _, n := range target.nodes {
					n.Close()
				}
				for _, tr := range trs {
					tr.Close()
				}
			}()
			for i, id := range three {
				cfg := DefaultConfig()
				cfg.ID, cfg.Peers = id, three
				cfg.DataDir = b.TempDir()
				cfg.SnapshotThreshold = 1000
				if mode == "view-every-1000" {
					cfg.SnapshotLogPercent = 0
				}
				var sm StateMachine = &bigSM{blob: blob, snaps: &snaps}
				if mode == "sync" {
					sm = syncOnlySM{sm: &bigSM{blob: blob, snaps: &snaps}}
				}
				n, err := New(cfg, trs[i], sm)
				if err != nil {
					b.Fatal(err)
				}
				target.nodes[id] = n
				members[id] = n
			}
			target.client, _ = NewClient(members, DefaultClientConfig())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := target.client.Propose(ctx, []byte("warm-up")); err != nil {
				b.Fatalf("no leader: %v", err)
			}
			leader := target.nodes[target.client.Leader()]
			target.leader.Store(leader)
			before := leader.Status().Term
			snaps.Store(0)
			runProposers(b, target, 64)
			b.ReportMetric(float64(snaps.Load()), "snapshots")
			after := before
			for _, n := range target.nodes {
				after = max(after, n.Status().Term)
			}
			b.ReportMetric(float64(after-before), "leader-changes")
		})
	}
}
