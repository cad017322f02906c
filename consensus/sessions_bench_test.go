package consensus

import (
	"context"
	"testing"
	"time"

	"github.com/distkit/distkit/consensus/session"
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

// BenchmarkRaftProposeSessions is BenchmarkRaftPropose with sessions on.
// In mem, wal and mem-serial every 128-byte command goes through one
// Client, stamped with its session and sequence number, applied through
// the session table (whose cached results the Client's acknowledgements
// keep trimmed). mem-stamped and wal-stamped take BenchmarkRaftPropose's
// path instead (proposals straight to the leader's Node), each proposer
// stamping its commands in a session of its own: the cost of sessions in
// the replicated path alone, without the Client's. Compare the figures
// with BenchmarkRaftPropose's.
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
	b.Run("mem-stamped", func(b *testing.B) { runStamped(b, false, memnetTransports(b), 64) })
	b.Run("wal-stamped", func(b *testing.B) { runStamped(b, true, tcpTransports(b), 64) })
}

// runStamped proposes session-stamped commands straight to the leader
// from proposers goroutines, each in its own session.
func runStamped(b *testing.B, durable bool, transports func(ids []transport.NodeID) []transport.Transport, proposers int) {
	cl, cleanup := benchSessionCluster(b, durable, transports)
	defer cleanup()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type stamper struct {
		id  SessionID
		seq uint64
	}
	stampers := make([]stamper, proposers)
	for i := range stampers {
		res, err := cl.members[cl.Leader()].Propose(ctx, session.AppendRegister(nil))
		if err != nil {
			b.Fatal(err)
		}
		stampers[i].id = res.(SessionID)
	}
	leader := cl.members[cl.Leader()]
	cmd := make([]byte, 128)
	benchload.Run(b, proposers, "ops/s", func(ctx context.Context, w int) error {
		st := &stampers[w]
		st.seq++
		stamped := session.AppendCommand(make([]byte, 0, len(cmd)+32), st.id, st.seq, st.seq, cmd)
		if _, err := leader.Propose(ctx, stamped); err == nil {
			return nil
		}
		// Leadership moved (a starved machine): retry the same stamp
		// through the members until one applies it.
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, _, err := cl.send(cctx, func() []byte { return stamped }, true)
		return err
	})
}
