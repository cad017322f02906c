package raft

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
)

// simCluster is a Raft cluster plus clients inside a sim.Sim, with a
// checker that verifies Raft's safety properties after every event.
type simCluster struct {
	t       testing.TB
	s       *sim.Sim
	ids     []transport.NodeID
	clients []*kvClient
	failed  bool

	// leaders records the leader of every term seen (Election Safety).
	leaders map[uint64]transport.NodeID
	// committed is every entry known committed, by index: what any node
	// applied or holds at or below its commit index.
	committed map[uint64]Entry
	// history is the clients' operations, for porcupine.
	history []porcupine.Operation
	// asyncPersist makes nodes take time to fsync, stepping meanwhile and
	// sending a leader's appends before their own entries are durable.
	asyncPersist bool
	// tweak, if set, adjusts every node's Config.
	tweak func(*Config)
	// coverage counts what the run exercised.
	coverage simCoverage
	// sendDelay, if set, holds each raft message back for the duration it
	// returns (on top of the network's own delay): slow responses.
	sendDelay func(env sim.Env, m Message) time.Duration
	// initial, if set, lists the voters the cluster bootstraps with; the
	// other nodes of ids start with Config.Join (membership churn).
	initial []transport.NodeID
	// onReadStates, if set, receives every Ready's ReadStates.
	onReadStates func(s *kvServer, rs []ReadState)
}

// simCoverage counts interesting events, so that a test can check the
// harness really exercises them.
type simCoverage struct {
	Terms, SnapshotChunks, SnapshotsInstalled, Compactions, Restarts, Ops int
}

func newSimCluster(t testing.TB, seed int64, nodes, clients int, faults sim.Faults, tweak func(*Config), asyncPersist bool) *simCluster {
	cfg := sim.DefaultConfig()
	cfg.Seed = seed
	cfg.Faults = faults
	cfg.TornWrites = true
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatalf("sim.New: %v", err)
	}
	c := &simCluster{t: t, s: s, tweak: tweak, asyncPersist: asyncPersist, leaders: map[uint64]transport.NodeID{}, committed: map[uint64]Entry{}}
	for i := range nodes {
		c.ids = append(c.ids, transport.NodeID(fmt.Sprintf("n%d", i+1)))
	}
	for _, id := range c.ids {
		if err := s.AddNode(id, func() sim.Node { return &kvServer{c: c, id: id} }); err != nil {
			t.Fatalf("AddNode: %v", err)
		}
	}
	for i := range clients {
		k := &kvClient{c: c, index: i, id: transport.NodeID(fmt.Sprintf("client%d", i)), target: i % nodes}
		c.clients = append(c.clients, k)
		if err := s.AddNode(k.id, func() sim.Node { return k }); err != nil {
			t.Fatalf("AddNode: %v", err)
		}
	}
	return c
}

func (c *simCluster) fail(format string, args ...any) {
	c.t.Helper()
	if !c.failed {
		c.t.Errorf("at %v: "+format, append([]any{c.s.Elapsed()}, args...)...)
	}
	c.failed = true
}

func (c *simCluster) server(id transport.NodeID) *kvServer {
	if n, ok := c.s.Node(id).(*kvServer); ok && n.rn != nil {
		return n
	}
	return nil
}

// observe checks the invariants that concern one node's current state.
func (c *simCluster) observe(s *kvServer) {
	r := s.rn.r
	// Election Safety (§5.2): at most one leader per term.
	if r.role == Leader {
		if l, ok := c.leaders[r.term]; ok && l != s.id {
			c.fail("two leaders in term %d: %s and %s", r.term, l, s.id)
		}
		if !s.wasLeader || c.leaders[r.term] != s.id {
			c.leaders[r.term] = s.id
			// Leader Completeness (§5.4): a new leader holds every entry
			// committed so far (all of them from earlier terms).
			for i, e := range c.committed {
				t, err := r.log.term(i)
				switch {
				case errors.Is(err, ErrCompacted):
				case err != nil:
					c.fail("leader %s of term %d lacks committed entry %d (term %d): %v", s.id, r.term, i, e.Term, err)
				case t != e.Term:
					c.fail("leader %s of term %d has term %d at committed index %d; want %d", s.id, r.term, t, i, e.Term)
				}
			}
		}
	}
	s.wasLeader = r.role == Leader
	// Log Matching up to the commit index, and committed entries never
	// change: every entry at or below the commit index agrees with what
	// every other node committed there.
	if r.log.committed > s.checkedCommit {
		lo := max(s.checkedCommit+1, r.log.firstIndex())
		if lo <= r.log.committed {
			ents, err := r.log.slice(lo, r.log.committed+1, math.MaxUint64)
			if err != nil {
				c.fail("%s: reading committed entries [%d, %d]: %v", s.id, lo, r.log.committed, err)
			}
			for _, e := range ents {
				c.checkCommitted(s.id, e)
			}
		}
		s.checkedCommit = r.log.committed
	}
}

func (c *simCluster) checkCommitted(id transport.NodeID, e Entry) {
	prev, ok := c.committed[e.Index]
	if !ok {
		c.committed[e.Index] = e
		return
	}
	if prev.Term != e.Term || prev.Type != e.Type || !bytes.Equal(prev.Data, e.Data) {
		c.fail("%s: committed entry %d is (term %d, %q); another node committed (term %d, %q)", id, e.Index, e.Term, e.Data, prev.Term, prev.Data)
	}
}

// observeApply checks that every state machine applies the same sequence.
func (c *simCluster) observeApply(s *kvServer, e Entry) {
	c.checkCommitted(s.id, e)
}

// observeSnapshot checks that an installed snapshot agrees with the
// committed entries.
func (c *simCluster) observeSnapshot(s *kvServer, snap *Snapshot) {
	c.coverage.SnapshotsInstalled++
	if e, ok := c.committed[snap.Meta.Index]; ok && e.Term != snap.Meta.Term {
		c.fail("%s: snapshot at %d has term %d; committed entry has term %d", s.id, snap.Meta.Index, snap.Meta.Term, e.Term)
	}
}

// observeRestart checks that a restarted node lost nothing it had
// acknowledged: its durable commit index is covered by its log or snapshot.
func (c *simCluster) observeRestart(s *kvServer) {
	c.coverage.Restarts++
	c.observe(s)
}

// call records the start of a client operation and returns its position.
func (c *simCluster) call(client int, cmd kvCommand, now time.Time) int {
	c.history = append(c.history, porcupine.Operation{
		ClientId: client,
		Input:    kvInput{Op: cmd.Op, Key: cmd.Key, Value: cmd.Value},
		Call:     now.UnixNano(),
		Output:   kvOutput{Unknown: true},
		Return:   math.MaxInt64,
	})
	return len(c.history) - 1
}

func (c *simCluster) ret(op int, value string, now time.Time) {
	c.history[op].Output = kvOutput{Value: value}
	c.history[op].Return = now.UnixNano()
}

// leader returns the node that leads the highest term among live nodes.
func (c *simCluster) leader() *kvServer {
	var best *kvServer
	for _, id := range c.ids {
		if s := c.server(id); s != nil && s.rn.r.role == Leader && (best == nil || s.rn.r.term > best.rn.r.term) {
			best = s
		}
	}
	return best
}

// checkLinearizable runs porcupine on the client history. Gets that never
// returned are dropped (they had no effect); puts that never returned may
// or may not have happened, which the model allows.
func (c *simCluster) checkLinearizable(seed int64) {
	c.t.Helper()
	var ops []porcupine.Operation
	for _, op := range c.history {
		if op.Return == math.MaxInt64 && op.Input.(kvInput).Op == 'g' {
			continue
		}
		ops = append(ops, op)
	}
	res, info := porcupine.CheckOperationsVerbose(kvModel, ops, 30*time.Second)
	switch res {
	case porcupine.Ok:
		return
	case porcupine.Unknown:
		c.t.Errorf("seed %d: linearizability check timed out on %d operations", seed, len(ops))
		return
	}
	f, err := os.CreateTemp("", fmt.Sprintf("raft-linearizability-seed%d-*.html", seed))
	if err == nil {
		err = porcupine.Visualize(kvModel, info, f)
		f.Close()
	}
	if err != nil {
		c.t.Errorf("seed %d: history of %d operations is NOT linearizable (visualization failed: %v)", seed, len(ops), err)
		return
	}
	c.t.Errorf("seed %d: history of %d operations is NOT linearizable; visualization: %s", seed, len(ops), f.Name())
}
