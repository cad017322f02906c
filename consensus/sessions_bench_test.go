package consensus

import (
	"context"
	"testing"
	"time"

	"github.com/distkit/distkit/internal/benchload"
	"github.com/distkit/distkit/transport"
)

// benchSessionCluster starts three nodes whose countSMs are wrapped by
// WithSessions, and returns a Client (which therefore uses sessions) and a
// cleanup.
func benchSessionCluster(b *testing.B, durable bool, transports func(ids []transport.NodeID) []transport.Transport) (*Client, func()) {
	b.Helper()
	trs := transports(three)
	var nodes []*Node
	members := map[transport.NodeID]Proposer{}
	cleanup := func() {
		for _, n := range nodes {
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
		sm, err := WithSessions(&countSM{}, DefaultSessionConfig())
		if err != nil {
			cleanup()
			b.Fatal(err)
		}
		n, err := New(cfg, trs[i], sm)
		if err != nil {
			cleanup()
			b.Fatal(err)
		}
		nodes = append(nodes, n)
		members[id] = n
	}
	cl, err := NewClient(members, DefaultClientConfig())
	if err != nil || !cl.Sessions() {
		cleanup()
		b.Fatalf("NewClient = %v, sessions %v", err, cl.Sessions())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cl.Propose(ctx, []byte("warm-up")); err != nil { // elects a leader, opens the session
		cleanup()
		b.Fatalf("no leader: %v", err)
	}
	return cl, cleanup
}

// BenchmarkRaftProposeSessions is BenchmarkRaftPropose with sessions on:
// every 128-byte command goes through one Client, stamped with its session
// and sequence number, applied through the session table (whose cached
// results the Client's acknowledgements keep trimmed). Compare its mem
// and wal figures with BenchmarkRaftPropose's.
func BenchmarkRaftProposeSessions(b *testing.B) {
	run := func(b *testing.B, durable bool, transports func(ids []transport.NodeID) []transport.Transport, proposers int) {
		cl, cleanup := benchSessionCluster(b, durable, transports)
		defer cleanup()
		cmd := make([]byte, 128)
		benchload.Run(b, proposers, "ops/s", func(ctx context.Context, _ int) error {
			_, err := cl.Propose(ctx, cmd) // each attempt is bounded by AttemptTimeout
			return err
		})
	}
	b.Run("mem", func(b *testing.B) { run(b, false, memnetTransports(b), 64) })
	b.Run("wal", func(b *testing.B) { run(b, true, tcpTransports(b), 64) })
	b.Run("mem-serial", func(b *testing.B) { run(b, false, memnetTransports(b), 1) })
}
