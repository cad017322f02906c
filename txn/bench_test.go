package txn_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/distkit/distkit/internal/benchload"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
	"github.com/distkit/distkit/txn"
)

// benchCluster is a coordinator and three participants on memnet, with
// logs from newLog.
func benchCluster(b *testing.B, newLog func(name string) txn.Log) (*txn.Coordinator, []transport.NodeID) {
	b.Helper()
	cfg := memnet.DefaultConfig()
	cfg.QueueSize = 1 << 16
	net, err := memnet.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { net.Close() })
	tcfg := txn.DefaultConfig()
	tcfg.CheckpointEvery = 1 << 14
	parts := []transport.NodeID{"p1", "p2", "p3"}
	for _, id := range parts {
		tr, err := net.Join(id)
		if err != nil {
			b.Fatal(err)
		}
		p, err := txn.NewParticipant(tr, newLog(string(id)), txn.NewStore(), tcfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { p.Close() })
	}
	tr, err := net.Join("c")
	if err != nil {
		b.Fatal(err)
	}
	c, err := txn.NewCoordinator(tr, newLog("c"), tcfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c, parts
}

// runConcurrent runs b.N transactions from `workers` goroutines, each on
// its own key (no lock conflicts), and reports txn/s and the p50 and p99
// latencies.
func runConcurrent(b *testing.B, c *txn.Coordinator, parts []transport.NodeID, workers int) {
	works := make([][]txn.Work, workers)
	for w := range works {
		ops, err := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: fmt.Sprintf("k%d", w), Amount: 1})
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range parts {
			works[w] = append(works[w], txn.Work{Participant: p, Ops: ops})
		}
	}
	benchload.Run(b, workers, "txn/s", func(ctx context.Context, w int) error {
		if _, err := c.Run(ctx, works[w]...); err != nil {
			return fmt.Errorf("Run() = %w", err)
		}
		return nil
	})
}

// BenchmarkTwoPhaseCommit: three participants on memnet, in-memory logs,
// concurrent transactions. Target: ≥ 20,000 txn/s.
func BenchmarkTwoPhaseCommit(b *testing.B) {
	for _, workers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("concurrent=%d", workers), func(b *testing.B) {
			c, parts := benchCluster(b, func(string) txn.Log { return txn.NewMemoryLog() })
			runConcurrent(b, c, parts, workers)
		})
	}
}

// BenchmarkTwoPhaseCommitDurable: fsynced FileLogs in a temporary
// directory, 64 concurrent transactions. Group commit (one fsync per
// driver batch) is what makes it fast. Target: ≥ 5,000 txn/s.
func BenchmarkTwoPhaseCommitDurable(b *testing.B) {
	dir := b.TempDir()
	var logs []*txn.FileLog
	c, parts := benchCluster(b, func(name string) txn.Log {
		l, err := txn.OpenFileLog(fmt.Sprintf("%s/%s-%d", dir, name, b.N))
		if err != nil {
			b.Fatal(err)
		}
		logs = append(logs, l)
		return l
	})
	b.Cleanup(func() {
		for _, l := range logs {
			l.Close()
		}
	})
	runConcurrent(b, c, parts, 64)
}
