package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/txn"
)

// The single-coordinator scenes run the txn package's deterministic cores
// (txn.RawCoordinator, txn.RawParticipant) on the simulator: virtual time,
// a seeded network, disks that keep only what was synced. The same seed
// prints the same story, line for line.

const (
	coordinator = transport.NodeID("coordinator")
	tick        = 10 * time.Millisecond
)

func coreConfig() txn.Config {
	cfg := txn.DefaultConfig()
	cfg.RetryInterval = 60 * time.Millisecond
	cfg.TickInterval = tick
	cfg.CheckpointEvery = 1 << 20 // the story is short: no checkpoints
	return cfg
}

// story prints the narration; every line names its transaction.
type story struct {
	out     *printer
	s       *sim.Sim
	queried map[string]bool           // QUERY lines printed once per sender, receiver and transaction
	cut     map[transport.NodeID]bool // nodes isolated by a partition
}

func (st *story) say(id uuid.UUID, format string, args ...any) {
	st.out.printf("  [txn %s] %s\n", id.String()[:8], fmt.Sprintf(format, args...))
}

// diskLog reads a node's framed records back from its simulated disk.
func diskLog(env sim.Env) ([]txn.Record, error) {
	b, err := env.Disk().ReadFile("log")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	recs, rest, err := txn.DecodeFramed(b)
	if err == nil && len(rest) > 0 {
		err = fmt.Errorf("bank: %d bytes of torn log", len(rest))
	}
	return recs, err
}

func appendLog(env sim.Env, recs []txn.Record) error {
	if len(recs) == 0 {
		return nil
	}
	b, err := txn.AppendFramed(nil, recs...)
	if err == nil {
		err = env.Disk().Append("log", b)
	}
	if err == nil {
		err = env.Disk().Sync("log")
	}
	return err
}

func send(st *story, env sim.Env, msgs []txn.Envelope, drop func(txn.Envelope) bool) {
	for _, e := range msgs {
		b, err := e.Msg.MarshalBinary()
		if err != nil {
			continue
		}
		line := fmt.Sprintf("%-11s → %-11s %s", env.ID(), e.To, describe(e.Msg))
		if e.Msg.Type == txn.MsgQuery {
			k := string(env.ID()) + ">" + string(e.To) + e.Msg.Txn.String()
			quiet := st.queried[k]
			st.queried[k] = true
			if quiet {
				env.Send(e.To, e.Service, b)
				continue
			}
			line += " (asked again every retry interval, not shown)"
		}
		switch {
		case st.s.Node(e.To) == nil:
			line += "   ✗ lost (node down)"
		case st.cut[env.ID()] || st.cut[e.To]:
			line += "   ✗ lost (partition)"
		}
		if drop != nil && drop(e) {
			st.say(e.Msg.Txn, "%s   ✗ lost (partition)", line)
			continue
		}
		st.say(e.Msg.Txn, "%s", line)
		env.Send(e.To, e.Service, b)
	}
}

func describe(m txn.Message) string {
	if m.Type == txn.MsgDecision && m.Outcome == txn.Unknown {
		return "STILL VOTING"
	}
	return strings.Replace(m.String(), " "+m.Txn.String()[:8], "", 1)
}

// coordNode runs a RawCoordinator on the simulator.
type coordNode struct {
	st   *story
	core *txn.RawCoordinator
	// crashOnCommit: die right after the COMMIT record is durable, before
	// any COMMIT message leaves.
	crashOnCommit bool
	// partition, if set, is called before each message: true drops it.
	partition func(txn.Envelope) bool
	results   map[uuid.UUID]txn.Result
}

func (n *coordNode) Start(env sim.Env) {
	var err error
	if n.core, err = txn.NewRawCoordinator(env.ID(), coreConfig()); err != nil {
		env.Logf("bank: %v", err)
		return
	}
	recs, err := diskLog(env)
	if err == nil {
		err = n.core.Recover(env.Now(), recs)
	}
	if err != nil {
		env.Logf("bank: recovery: %v", err)
		return
	}
	if s := n.core.Status(); s.Committed > 0 {
		seen := map[uuid.UUID]bool{}
		for _, r := range recs {
			if r.Type == txn.RecEnd {
				seen[r.Txn] = true
			}
		}
		for _, r := range recs {
			if r.Type == txn.RecCommit && !seen[r.Txn] {
				n.st.say(r.Txn, "coordinator restarts, reads COMMIT in its log: sends the decision again")
			}
		}
	}
	n.process(env)
	env.SetTimer(tick, "tick")
}

func (n *coordNode) Receive(env sim.Env, msg transport.Message) {
	m, err := txn.UnmarshalMessage(msg.Payload)
	if err != nil {
		return
	}
	n.core.Step(env.Now(), msg.From, m)
	n.process(env)
}

func (n *coordNode) Timer(env sim.Env, _ sim.TimerID, _ string) {
	n.core.Tick(env.Now())
	n.process(env)
	env.SetTimer(tick, "tick")
}

func (n *coordNode) begin(env sim.Env, id uuid.UUID, work []txn.Work) {
	if err := n.core.Begin(env.Now(), id, work, 0); err != nil {
		n.st.say(id, "cannot begin: %v", err)
		return
	}
	n.process(env)
}

func (n *coordNode) process(env sim.Env) {
	for n.core.HasReady() {
		rd := n.core.Ready()
		recs := append(rd.Lazy, rd.Log...)
		for _, r := range recs {
			kind := strings.SplitN(r.String(), " ", 2)[0]
			n.st.say(r.Txn, "coordinator writes %s to its log", kind)
		}
		if err := appendLog(env, recs); err != nil {
			env.Logf("bank: log: %v", err)
			return
		}
		for _, r := range rd.Results {
			n.results[r.Txn] = r
			n.st.say(r.Txn, "coordinator decides: %v", r.Outcome)
		}
		for _, r := range recs {
			if r.Type == txn.RecCommit && n.crashOnCommit {
				n.crashOnCommit = false
				n.st.say(r.Txn, "coordinator CRASHES: COMMIT is in its log, no COMMIT message has left")
				n.st.s.Crash(env.ID())
				return
			}
		}
		send(n.st, env, rd.Messages, n.partition)
	}
}

// partNode runs a RawParticipant over a txn.Store on the simulator.
type partNode struct {
	st    *story
	core  *txn.RawParticipant
	store *txn.Store
}

func (n *partNode) Start(env sim.Env) {
	var err error
	if n.core, err = txn.NewRawParticipant(env.ID(), coreConfig()); err != nil {
		env.Logf("bank: %v", err)
		return
	}
	recs, err := diskLog(env)
	if err != nil {
		env.Logf("bank: %v", err)
		return
	}
	rec, err := n.core.Recover(env.Now(), recs)
	if err == nil {
		n.store = txn.NewStore()
		err = n.store.Recover(rec)
	}
	if err != nil {
		env.Logf("bank: recovery: %v", err)
		return
	}
	env.SetTimer(tick, "tick")
}

func (n *partNode) Receive(env sim.Env, msg transport.Message) {
	m, err := txn.UnmarshalMessage(msg.Payload)
	if err != nil {
		return
	}
	n.core.Step(env.Now(), msg.From, m)
	n.process(env)
}

func (n *partNode) Timer(env sim.Env, _ sim.TimerID, _ string) {
	n.core.Tick(env.Now())
	n.process(env)
	env.SetTimer(tick, "tick")
}

func (n *partNode) process(env sim.Env) {
	for n.core.HasReady() {
		rd := n.core.Ready()
		for _, r := range rd.Log {
			kind := strings.SplitN(r.String(), " ", 2)[0]
			if r.Type == txn.RecDone {
				kind = "DONE " + r.Outcome.String()
			}
			n.st.say(r.Txn, "%-11s writes %s to its log", env.ID(), kind)
		}
		if err := appendLog(env, rd.Log); err != nil {
			env.Logf("bank: log: %v", err)
			return
		}
		for _, a := range rd.Actions {
			switch a.Kind {
			case txn.ActPrepare:
				intent, err := n.store.Prepare(context.Background(), a.Txn, a.Data)
				if err != nil {
					n.st.say(a.Txn, "%-11s cannot prepare (%v): it votes NO", env.ID(), err)
				} else {
					n.st.say(a.Txn, "%-11s prepares: its locks are taken, it can vote YES", env.ID())
				}
				n.core.Prepared(env.Now(), a.Txn, intent, err)
			case txn.ActCommit:
				n.store.Commit(a.Txn, a.Data)
				n.st.say(a.Txn, "%-11s applies the commit, releases its locks", env.ID())
			case txn.ActAbort:
				n.store.Abort(a.Txn, a.Data)
				n.st.say(a.Txn, "%-11s releases its locks", env.ID())
			}
		}
		send(n.st, env, rd.Messages, nil)
	}
}

// simBank is the single-coordinator world: a coordinator and three banks.
type simBank struct {
	st    *story
	s     *sim.Sim
	coord *coordNode
	parts map[transport.NodeID]*partNode
	rng   *rand.Rand
}

func newSimBank(out *printer, seed int64) (*simBank, error) {
	s, err := sim.New(sim.Config{Seed: seed, Faults: sim.Faults{MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}})
	if err != nil {
		return nil, err
	}
	b := &simBank{s: s, parts: map[transport.NodeID]*partNode{}, rng: rand.New(rand.NewPCG(uint64(seed), 1))}
	b.st = &story{out: out, s: s, queried: map[string]bool{}, cut: map[transport.NodeID]bool{}}
	b.coord = &coordNode{st: b.st, results: map[uuid.UUID]txn.Result{}}
	if err := s.AddNode(coordinator, func() sim.Node { return b.coord }); err != nil {
		return nil, err
	}
	for _, id := range []transport.NodeID{"bank1", "bank2", "bank3"} {
		p := &partNode{st: b.st}
		b.parts[id] = p
		if err := s.AddNode(id, func() sim.Node { return p }); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// newID draws a transaction ID from the seed.
func (b *simBank) newID() uuid.UUID {
	var u uuid.UUID
	for i := range u {
		u[i] = byte(b.rng.Uint32())
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

// transact runs one transaction to its end (decided and acknowledged by
// every participant), at most limit of virtual time.
func (b *simBank) transact(work []txn.Work, limit time.Duration) (uuid.UUID, txn.Result) {
	id := b.newID()
	b.s.Inject(coordinator, func(env sim.Env) { b.coord.begin(env, id, work) })
	b.settle(id, limit)
	return id, b.coord.results[id]
}

// settle runs the simulation until the coordinator tracks no transaction
// and no bank is in doubt.
func (b *simBank) settle(id uuid.UUID, limit time.Duration) {
	b.s.RunUntil(func() bool {
		if b.s.Node(coordinator) == nil || b.coord.core.Status() != (txn.CoordinatorStatus{}) {
			return false
		}
		_, ok := b.coord.results[id]
		return ok && b.inDoubt() == 0
	}, limit)
}

func (b *simBank) inDoubt() int {
	n := 0
	for _, p := range b.parts {
		n += p.core.Status().InDoubt
	}
	return n
}

func (b *simBank) balance(bank transport.NodeID, key string) int64 {
	v, _ := b.parts[bank].store.Get(key)
	return v
}

func (b *simBank) balances() {
	b.st.out.printf("  balances: A@bank1 = %d, B@bank2 = %d, C@bank3 = %d\n\n",
		b.balance("bank1", "A"), b.balance("bank2", "B"), b.balance("bank3", "C"))
}

func add(bank transport.NodeID, key string, amount int64) txn.Work {
	ops, err := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: key, Amount: amount})
	if err != nil {
		panic(err) // constant, valid input
	}
	return txn.Work{Participant: bank, Ops: ops}
}
