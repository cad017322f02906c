package consensus

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/distkit/distkit/consensus/session"
	"github.com/distkit/distkit/internal/benchload"
	"github.com/distkit/distkit/transport"
)

// benchSessionCluster starts three nodes whose countSMs are wrapped by
// WithSessions, and returns a Client (which therefore uses sessions) and a
// cleanup. With sessions false the countSMs are not wrapped, and the
// Client proposes plain commands.
func benchSessionCluster(b *testing.B, durable, sessions bool, transports func(ids []transport.NodeID) []transport.Transport) (*Client, func()) {
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
		var sm StateMachine = &countSM{}
		if sessions {
			var err error
			if sm, err = WithSessions(sm, DefaultSessionConfig()); err != nil {
				cleanup()
				b.Fatal(err)
			}
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
	if err != nil || cl.Sessions() != sessions {
		cleanup()
		b.Fatalf("NewClient = %v, sessions %v; want sessions %v", err, cl.Sessions(), sessions)
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
// the replicated path alone, without the Client's. mem-client-nosessions
// is mem with sessions off (plain commands through the same Client, to
// unwrapped state machines): the cost of the Client's own machinery (the
// attempt bound, the leader guess, the retry loop) without sessions.
// Compare the figures with BenchmarkRaftPropose's.
func BenchmarkRaftProposeSessions(b *testing.B) {
	b.Run("mem", func(b *testing.B) { runClient(b, false, true, memnetTransports(b), 64) })
	b.Run("wal", func(b *testing.B) { runClient(b, true, true, tcpTransports(b), 64) })
	b.Run("mem-serial", func(b *testing.B) { runClient(b, false, true, memnetTransports(b), 1) })
	b.Run("mem-stamped", func(b *testing.B) { runStamped(b, false, memnetTransports(b), 64) })
	b.Run("wal-stamped", func(b *testing.B) { runStamped(b, true, tcpTransports(b), 64) })
	b.Run("mem-client-nosessions", func(b *testing.B) { runClient(b, false, false, memnetTransports(b), 64) })
}

// runClient proposes 128-byte commands through a Client from proposers
// goroutines, on a cluster with sessions on or off (benchSessionCluster).
func runClient(b *testing.B, durable, sessions bool, transports func(ids []transport.NodeID) []transport.Transport, proposers int) {
	cl, cleanup := benchSessionCluster(b, durable, sessions, transports)
	defer cleanup()
	cmd := make([]byte, 128)
	benchload.Run(b, proposers, "ops/s", func(ctx context.Context, _ int) error {
		_, err := cl.Propose(ctx, cmd) // each attempt is bounded by AttemptTimeout
		return err
	})
}

// runStamped proposes session-stamped commands straight to the leader
// from proposers goroutines, each in its own session.
func runStamped(b *testing.B, durable bool, transports func(ids []transport.NodeID) []transport.Transport, proposers int) {
	cl, cleanup := benchSessionCluster(b, durable, true, transports)
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
		stamped := session.AppendCommand(make([]byte, 0, len(cmd)+session.MaxCommandOverhead), st.id, st.seq, st.seq, cmd)
		if _, err := leader.Propose(ctx, stamped); err == nil {
			return nil
		}
		// Leadership moved (a starved machine): retry the same stamp
		// through the members until one applies it.
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, _, err := cl.send(cctx, &request{plain: stamped}, true)
		return err
	})
}

// nopProposer applies nothing and answers at once: what is left of a
// Client's Propose is the Client's own work per command.
type nopProposer struct{ keeps bool }

func (p nopProposer) Propose(context.Context, []byte) (any, error) { return nil, nil }
func (p nopProposer) KeepsSessions() bool                          { return p.keeps }

// nopNode is nopProposer taking attempts the way a *Node does (an attempt
// bound instead of a context, the stamped command handed over).
type nopNode struct{ nopProposer }

func (nopNode) propose(context.Context, []byte, bool, time.Time) (any, error) { return nil, nil }

// BenchmarkClientOverhead measures the Client's own work per command (the
// members answer at once): plain, and with a session (sequence numbers,
// stamping, acknowledgement mark), from one goroutine and from many; with
// members that take attempts as a Proposer (a context per attempt), and,
// under node/, as a *Node does (the attempt's bound and the command
// handed over).
func BenchmarkClientOverhead(b *testing.B) {
	for _, node := range []bool{false, true} {
		for _, keeps := range []bool{false, true} {
			name := map[bool]string{false: "plain", true: "sessions"}[keeps]
			var m Proposer = nopProposer{keeps: keeps}
			if node {
				name, m = "node/"+name, nopNode{nopProposer{keeps: keeps}}
			}
			clientOverhead(b, name, keeps, m)
		}
	}
}

// clientOverhead runs BenchmarkClientOverhead's name and name-parallel on
// a Client of two members m.
func clientOverhead(b *testing.B, name string, keeps bool, m Proposer) {
	cl, err := NewClient(map[transport.NodeID]Proposer{"a": m, "b": m}, DefaultClientConfig())
	if err != nil {
		b.Fatal(err)
	}
	if n, ok := m.(boundedProposer); ok {
		// NewClient hands attempts this way to a *Node only.
		for i := range cl.bounded {
			cl.bounded[i] = n
		}
	}
	if keeps {
		// The session: as if the register command answered ID 1.
		cl.sess.Store(newClientSession(1, sessionRing))
	}
	cmd := make([]byte, 128)
	b.Run(name, func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cl.Propose(context.Background(), cmd); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run(name+"-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := cl.Propose(context.Background(), cmd); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkSessionMachineApply measures what wrapping a state machine with
// WithSessions costs each replica per command: plain is countSM itself,
// sessions the same command stamped in a session whose client keeps about
// 64 commands in flight. The commands are built (and stamped, as the
// leader does) before the clock runs, 100000 at a time: only the apply is
// measured, the table starting afresh for each batch.
func BenchmarkSessionMachineApply(b *testing.B) {
	cmd := make([]byte, 128)
	b.Run("plain", func(b *testing.B) {
		b.ReportAllocs()
		sm := &countSM{}
		i := uint64(0)
		for b.Loop() {
			i++
			sm.Apply(Entry{Index: i, Term: 1, Command: cmd})
		}
	})
	b.Run("sessions", func(b *testing.B) { sessionMachineApply(b, cmd, false) })
	b.Run("sessions-reordered", func(b *testing.B) { sessionMachineApply(b, cmd, true) })
}

// sessionMachineApply is BenchmarkSessionMachineApply's sessions and, with
// reordered, sessions-reordered: there the commands reach the log out of
// seq order within runs of 16, as the commands of a Client's concurrent
// callers do (numbered in one order, queued at the leader in another), and
// each acknowledges up to 64 below the lowest seq not yet applied.
func sessionMachineApply(b *testing.B, cmd []byte, reordered bool) {
	b.ReportAllocs()
	const batch = 100000
	reg := session.AppendRegister(nil)
	session.Stamp(reg, 1)
	const id = 5 // the register command's index
	order := make([]uint64, batch)
	for i := range order {
		order[i] = uint64(i + 1)
	}
	if reordered {
		rng := rand.New(rand.NewPCG(1, 2))
		for i := 0; i+16 <= batch; i += 16 {
			rng.Shuffle(16, func(a, c int) { order[i+a], order[i+c] = order[i+c], order[i+a] })
		}
	}
	cmds := make([][]byte, batch)
	applied := make([]bool, batch+2)
	low := uint64(1) // the lowest seq not yet applied
	for i, seq := range order {
		c := session.AppendCommand(nil, id, seq, max(1, low-min(low, 64)), cmd)
		session.Stamp(c, int64(i+2))
		cmds[i] = c
		for applied[seq] = true; applied[low]; low++ {
		}
	}
	var sm *SessionMachine
	i := batch
	for b.Loop() {
		if i == batch {
			b.StopTimer()
			var err error
			if sm, err = WithSessions(&countSM{}, DefaultSessionConfig()); err != nil {
				b.Fatal(err)
			}
			if got := sm.Apply(Entry{Index: id, Term: 1, Command: reg}); got != SessionID(id) {
				b.Fatalf("register = %v; want session %d", got, id)
			}
			i = 0
			b.StartTimer()
		}
		if v := sm.Apply(Entry{Index: uint64(id + 1 + i), Term: 1, Command: cmds[i]}); v != nil {
			b.Fatal(v)
		}
		i++
	}
}
