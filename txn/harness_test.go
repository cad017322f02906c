package txn_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/txn"
)

// The simulation harness: cores wrapped as sim.Nodes, logs on sim.Disk,
// and a crash plan that kills a node after a chosen number of effects
// (log writes and messages), so a test can crash it at every step.

const logFile = "txn.log"

func testConfig() txn.Config {
	cfg := txn.DefaultConfig()
	cfg.VoteTimeout = 2 * time.Second
	cfg.RetryInterval = 100 * time.Millisecond
	cfg.FinishedTTL = 30 * time.Second
	cfg.CheckpointEvery = 8
	return cfg
}

// diskLog is a txn.Log on a sim.Disk: frames appended to one file, synced;
// a checkpoint rewrites the file.
type diskLog struct{ d *sim.Disk }

func (l diskLog) load() ([]txn.Record, error) {
	b, err := l.d.ReadFile(logFile)
	if err != nil {
		return nil, nil // no file yet
	}
	recs, rest, err := txn.DecodeFramed(b)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 { // a torn tail: cut it off
		if err := l.d.Truncate(logFile, int64(len(b)-len(rest))); err != nil {
			return nil, err
		}
		if err := l.d.Sync(logFile); err != nil {
			return nil, err
		}
	}
	return recs, nil
}

func (l diskLog) append(recs []txn.Record) error {
	b, err := txn.AppendFramed(nil, recs...)
	if err != nil {
		return err
	}
	if err := l.d.Append(logFile, b); err != nil {
		return err
	}
	return l.d.Sync(logFile)
}

// appendLazy appends without syncing: a crash before the next sync may
// lose (or tear) what it wrote.
func (l diskLog) appendLazy(recs []txn.Record) error {
	b, err := txn.AppendFramed(nil, recs...)
	if err != nil {
		return err
	}
	return l.d.Append(logFile, b)
}

func (l diskLog) replace(recs []txn.Record) error {
	b, err := txn.AppendFramed(nil, recs...)
	if err != nil {
		return err
	}
	if err := l.d.WriteFile(logFile, b); err != nil {
		return err
	}
	return l.d.Sync(logFile)
}

// crashPlan kills node after it has performed `after` effects.
type crashPlan struct {
	node  transport.NodeID
	after int
	down  time.Duration // how long it stays crashed
	// delay is how long after its last effect the node really crashes:
	// 0 loses the messages it had in flight; a delay longer than the
	// network's lets them arrive (it does nothing in the meantime).
	delay   time.Duration
	fired   bool
	effects map[transport.NodeID]int // effects per node, for enumerating crash points
}

// world is the state shared by all nodes of one simulation and the test.
type world struct {
	s       *sim.Sim
	cfg     txn.Config
	plan    *crashPlan
	results map[uuid.UUID]txn.Result
	// applied records, per participant, the transactions whose commit
	// was applied (after its DONE record was durable).
	applied map[transport.NodeID]map[uuid.UUID]bool
	// votes records the YES/NO votes sent, per transaction and participant.
	votes  map[uuid.UUID]map[transport.NodeID]txn.Outcome
	errs   []error
	stores map[transport.NodeID]*txn.Store
	// abortedOnRecovery counts the transactions a restarting coordinator
	// found begun but not committed in its log (and so aborts actively).
	abortedOnRecovery int
}

func newWorld(seed int64, f sim.Faults) (*world, error) {
	s, err := sim.New(sim.Config{Seed: seed, Faults: f, Trace: os.Getenv("TXN_TRACE") == "1"})
	if err != nil {
		return nil, err
	}
	return &world{s: s, cfg: testConfig(), plan: &crashPlan{effects: map[transport.NodeID]int{}},
		results: map[uuid.UUID]txn.Result{}, applied: map[transport.NodeID]map[uuid.UUID]bool{},
		votes: map[uuid.UUID]map[transport.NodeID]txn.Outcome{}, stores: map[transport.NodeID]*txn.Store{}}, nil
}

func (w *world) fail(err error) { w.errs = append(w.errs, err) }

// effect is called before each log write or message; false means the node
// has reached its crash point and must stop doing anything.
func (w *world) effect(id transport.NodeID, dead *bool) bool {
	if *dead {
		return false
	}
	p := w.plan
	if !p.fired && p.node == id && w.plan.effects[id] == p.after {
		p.fired = true
		*dead = true
		w.s.At(p.delay, func() { w.s.Crash(id) })
		w.s.At(p.delay+p.down, func() { w.s.Restart(id) })
		return false
	}
	w.plan.effects[id]++
	return true
}

// step performs one effect of node id (a log write or sync), unless the
// node has reached its crash point; false means stop draining.
func (w *world) step(id transport.NodeID, dead *bool, do func() error) bool {
	if !w.effect(id, dead) {
		return false
	}
	if err := do(); err != nil {
		w.fail(err)
		return false
	}
	return true
}

// sendAll sends msgs from env's node, each one an effect; false means the
// node reached its crash point. observe, if not nil, sees each message
// just before it leaves.
func (w *world) sendAll(env sim.Env, dead *bool, msgs []txn.Envelope, observe func(txn.Envelope)) bool {
	for _, e := range msgs {
		if !w.effect(env.ID(), dead) {
			return false
		}
		b, err := e.Msg.MarshalBinary()
		if err != nil {
			w.fail(err)
			return false
		}
		if observe != nil {
			observe(e)
		}
		env.Send(e.To, e.Service, b)
	}
	return true
}

const tickName = "tick"

type coordNode struct {
	w    *world
	core *txn.RawCoordinator
	log  diskLog
	dead bool
	// unsynced: lazy records were appended since the last sync; the next
	// tick syncs them, like the runtime driver.
	unsynced bool
}

func (w *world) addCoordinator(id transport.NodeID) {
	_ = w.s.AddNode(id, func() sim.Node { return &coordNode{w: w} })
}

func (n *coordNode) Start(env sim.Env) {
	var err error
	if n.core, err = txn.NewRawCoordinator(env.ID(), n.w.cfg); err != nil {
		n.w.fail(err)
		return
	}
	n.log = diskLog{env.Disk()}
	recs, err := n.log.load()
	if err == nil {
		n.w.abortedOnRecovery += begunNotCommitted(recs)
		err = n.core.Recover(env.Now(), recs)
	}
	if err != nil {
		n.w.fail(fmt.Errorf("%s recover: %w", env.ID(), err))
	}
	env.SetTimer(n.w.cfg.RetryInterval/2, tickName)
	n.drain(env)
}

// begunNotCommitted counts the transactions with a BEGIN record and no
// COMMIT record in a coordinator's log.
func begunNotCommitted(recs []txn.Record) int {
	begun := map[uuid.UUID]bool{}
	for _, r := range recs {
		switch r.Type {
		case txn.RecBegin:
			if _, ok := begun[r.Txn]; !ok {
				begun[r.Txn] = true
			}
		case txn.RecCommit:
			begun[r.Txn] = false
		}
	}
	n := 0
	for _, b := range begun {
		if b {
			n++
		}
	}
	return n
}

func (n *coordNode) begin(env sim.Env, id uuid.UUID, work []txn.Work) {
	if err := n.core.Begin(env.Now(), id, work, 0); err != nil {
		n.w.fail(err)
	}
	n.drain(env)
}

func (n *coordNode) Receive(env sim.Env, msg transport.Message) {
	m, err := txn.UnmarshalMessage(msg.Payload)
	if err != nil {
		n.w.fail(err)
		return
	}
	n.core.Step(env.Now(), msg.From, m)
	n.drain(env)
}

func (n *coordNode) Timer(env sim.Env, _ sim.TimerID, _ string) {
	n.core.Tick(env.Now())
	n.drain(env)
	if n.unsynced && !n.dead {
		if !n.w.step(env.ID(), &n.dead, func() error { return n.log.d.Sync(logFile) }) {
			return
		}
		n.unsynced = false
	}
	env.SetTimer(n.w.cfg.RetryInterval/2, tickName)
}

func (n *coordNode) drain(env sim.Env) {
	id := env.ID()
	for n.core.HasReady() {
		rd := n.core.Ready()
		if len(rd.Lazy) > 0 {
			if !n.w.step(id, &n.dead, func() error { return n.log.appendLazy(rd.Lazy) }) {
				return
			}
			n.unsynced = true
		}
		if len(rd.Log) > 0 {
			if !n.w.step(id, &n.dead, func() error { return n.log.append(rd.Log) }) {
				return
			}
			n.unsynced = false
		}
		if rd.Checkpoint != nil {
			if !n.w.step(id, &n.dead, func() error { return n.log.replace(rd.Checkpoint) }) {
				return
			}
			n.unsynced = false
		}
		if !n.w.sendAll(env, &n.dead, rd.Messages, nil) {
			return
		}
		for _, r := range rd.Results {
			if old, ok := n.w.results[r.Txn]; ok && old.Outcome != r.Outcome {
				n.w.fail(fmt.Errorf("%s: two results for %s: %v then %v", env.ID(), r.Txn, old.Outcome, r.Outcome))
			}
			n.w.results[r.Txn] = r
		}
	}
}

type partNode struct {
	w     *world
	id    transport.NodeID
	core  *txn.RawParticipant
	store *txn.Store
	log   diskLog
	dead  bool
}

func (w *world) addParticipant(id transport.NodeID) {
	_ = w.s.AddNode(id, func() sim.Node { return &partNode{w: w, id: id} })
}

func (n *partNode) Start(env sim.Env) {
	var err error
	if n.core, err = txn.NewRawParticipant(env.ID(), n.w.cfg); err != nil {
		n.w.fail(err)
		return
	}
	n.store = txn.NewStore()
	n.w.stores[env.ID()] = n.store
	n.log = diskLog{env.Disk()}
	recs, err := n.log.load()
	var rec txn.Recovery
	if err == nil {
		rec, err = n.core.Recover(env.Now(), recs)
	}
	if err == nil {
		err = n.store.Recover(rec)
	}
	if err != nil {
		n.w.fail(fmt.Errorf("%s recover: %w", env.ID(), err))
	}
	env.SetTimer(n.w.cfg.RetryInterval/2+time.Duration(env.Rand().IntN(10))*time.Millisecond, tickName)
	n.drain(env)
}

func (n *partNode) Receive(env sim.Env, msg transport.Message) {
	m, err := txn.UnmarshalMessage(msg.Payload)
	if err != nil {
		n.w.fail(err)
		return
	}
	n.core.Step(env.Now(), msg.From, m)
	n.drain(env)
}

func (n *partNode) Timer(env sim.Env, _ sim.TimerID, _ string) {
	n.core.Tick(env.Now())
	n.drain(env)
	env.SetTimer(n.w.cfg.RetryInterval/2, tickName)
}

func (n *partNode) drain(env sim.Env) {
	id := env.ID()
	for n.core.HasReady() {
		rd := n.core.Ready()
		if len(rd.Log) > 0 && !n.w.step(id, &n.dead, func() error { return n.log.append(rd.Log) }) {
			return
		}
		for _, a := range rd.Actions {
			switch a.Kind {
			case txn.ActPrepare:
				intent, err := n.store.Prepare(context.Background(), a.Txn, a.Data)
				n.core.Prepared(env.Now(), a.Txn, intent, err)
			case txn.ActCommit:
				if err := n.store.Commit(a.Txn, a.Data); err != nil {
					n.w.fail(err)
				}
				if n.w.applied[id] == nil {
					n.w.applied[id] = map[uuid.UUID]bool{}
				}
				n.w.applied[id][a.Txn] = true
			case txn.ActAbort:
				if err := n.store.Abort(a.Txn, a.Data); err != nil {
					n.w.fail(err)
				}
			}
		}
		if rd.Checkpoint != nil {
			checkpoint := func() error {
				snap, err := n.store.Snapshot()
				if err != nil {
					return err
				}
				return n.log.replace(append([]txn.Record{{Type: txn.RecSnapshot, Data: snap}}, rd.Checkpoint...))
			}
			if !n.w.step(id, &n.dead, checkpoint) {
				return
			}
		}
		if !n.w.sendAll(env, &n.dead, rd.Messages, n.recordVote) {
			return
		}
	}
}

// recordVote notes the first vote each participant sends per transaction.
func (n *partNode) recordVote(e txn.Envelope) {
	if e.Msg.Type != txn.MsgVote {
		return
	}
	id := e.Msg.Txn
	if n.w.votes[id] == nil {
		n.w.votes[id] = map[transport.NodeID]txn.Outcome{}
	}
	// A NO after a YES can only answer a duplicate PREPARE of a finished
	// transaction; keep the first vote.
	if _, ok := n.w.votes[id][n.id]; !ok {
		n.w.votes[id][n.id] = e.Msg.Outcome
	}
}

// newSimCluster returns a world with coordinator coordID and participants
// partIDs.
func newSimCluster(t *testing.T, seed int64, f sim.Faults) *world {
	t.Helper()
	w, err := newWorld(seed, f)
	if err != nil {
		t.Fatal(err)
	}
	w.addCoordinator(coordID)
	for _, p := range partIDs {
		w.addParticipant(p)
	}
	return w
}

// addToX returns a transaction's work: amounts[i] added to key "x" on
// partIDs[i].
func addToX(t *testing.T, amounts ...int64) []txn.Work {
	t.Helper()
	work := make([]txn.Work, len(amounts))
	for i, a := range amounts {
		ops, err := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: "x", Amount: a})
		if err != nil {
			t.Fatal(err)
		}
		work[i] = txn.Work{Participant: partIDs[i], Ops: ops}
	}
	return work
}

// begin starts a transaction on coordinator c at the current time.
func (w *world) begin(c transport.NodeID, id uuid.UUID, work []txn.Work) {
	w.s.Inject(c, func(env sim.Env) {
		if n, ok := w.s.Node(c).(*coordNode); ok && n.core != nil {
			n.begin(env, id, work)
		}
	})
}

// inDoubt counts the prepared-but-undecided transactions over the
// participants that are up.
func (w *world) inDoubt(parts []transport.NodeID) int {
	total := 0
	for _, p := range parts {
		if n, ok := w.s.Node(p).(*partNode); ok && n.core != nil {
			total += n.core.Status().InDoubt + n.core.Status().Preparing
		}
	}
	return total
}

// seededID returns a transaction ID drawn from rng (deterministic in the sim).
func seededID(rng *rand.Rand) uuid.UUID {
	var id uuid.UUID
	for i := range id {
		id[i] = byte(rng.UintN(256))
	}
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	return id
}
