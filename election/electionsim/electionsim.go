// Package electionsim runs the election package's Bully and Ring cores as
// nodes of the deterministic simulator (package sim), for tests, examples
// and experiments: elections under message loss, partitions and crashes,
// replayable by seed.
//
//	s, _ := sim.New(sim.Config{Seed: 1, Faults: sim.Faults{MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}})
//	for _, m := range members {
//		cfg := election.DefaultConfig()
//		cfg.ID, cfg.Members = m.ID, members
//		s.AddNode(m.ID, func() sim.Node { return electionsim.NewBully(cfg) })
//	}
//	s.Run(5 * time.Second)
//	leader := s.Node("n1").(*electionsim.Node).Leader()
//
// Each Node keeps its core's State (the highest epoch) in a file on its
// sim.Disk, synced before the messages announcing it are sent, so a crashed
// and restarted node resumes from its epoch, as election.Node does with a
// FileEpochStore.
//
// A Node belongs to the simulator's goroutine, like everything in sim.
package electionsim

import (
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/distkit/distkit/election"
	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
)

// Node drives one election core in the simulator. A new Node (from the
// factory given to sim.AddNode) builds a fresh core at every boot from the
// epoch on its disk: a restarted node remembers that and nothing else, as
// after a real crash.
type Node struct {
	cfg     election.Config
	newCore func(cfg election.Config, st election.State, seed uint64, now time.Time) (election.Core, error)
	core    election.Core
	timer   sim.TimerID
	timerAt time.Time
	err     error

	// OnLeader, if set, is called with the view at every boot (after a
	// restart: the restored epoch, leader not known yet) and with every
	// change of it.
	OnLeader func(id transport.NodeID, l election.Leader)
	// OnSend, if set, is called for every message the node sends
	// (election.DescribeMessage tells what it is).
	OnSend func(from, to transport.NodeID, payload []byte)
	last   election.Leader
	booted bool // the boot view has been reported
}

// NewBully returns a sim.Node running election.BullyCore with cfg.
// cfg.Store is not used: the epoch lives on the node's sim.Disk.
func NewBully(cfg election.Config) *Node {
	return &Node{cfg: cfg, newCore: func(cfg election.Config, st election.State, seed uint64, now time.Time) (election.Core, error) {
		return election.NewBullyCore(cfg, st, seed, now)
	}}
}

// NewRing returns a sim.Node running election.RingCore with cfg.
// cfg.Store is not used: the epoch lives on the node's sim.Disk.
func NewRing(cfg election.Config) *Node {
	return &Node{cfg: cfg, newCore: func(cfg election.Config, st election.State, seed uint64, now time.Time) (election.Core, error) {
		return election.NewRingCore(cfg, st, seed, now)
	}}
}

// EpochFile returns the name of the file on the node's sim.Disk that holds
// the epoch of an elector on service (election.EncodeEpoch's record).
func EpochFile(service string) string { return service + ".epoch" }

// Core returns the running core (nil before Start or if it failed to
// build): a *election.BullyCore or *election.RingCore.
func (n *Node) Core() election.Core { return n.core }

// Err returns the error that kept the core from being built (a bad
// config, a corrupt epoch file) or stopped it (a failed disk write), if any.
func (n *Node) Err() error { return n.err }

// Leader returns the node's view of the leader.
func (n *Node) Leader() election.Leader { return n.last }

// Stats returns the core's counters.
func (n *Node) Stats() election.Stats {
	if s, ok := n.core.(interface{ Stats() election.Stats }); ok {
		return s.Stats()
	}
	return election.Stats{}
}

// SetCandidate makes the node stand for election or withdraw. Call it from
// inside the simulation (sim.Inject) so the messages it causes are sent.
func (n *Node) SetCandidate(env sim.Env, on bool) {
	if n.core == nil {
		return
	}
	n.core.SetCandidate(env.Now(), on)
	n.flush(env)
}

// Start implements sim.Node. It reports the boot view through OnLeader
// (the restored epoch, no leader known yet) so observers see every view
// the node holds, across restarts too.
func (n *Node) Start(env sim.Env) {
	st, err := n.loadState(env)
	var core election.Core
	if err == nil {
		core, err = n.newCore(n.cfg, st, env.Rand().Uint64(), env.Now())
	}
	if err != nil {
		// core is a typed nil here; keep the interface nil.
		n.core, n.err = nil, err
		env.Logf("electionsim: %v", err)
		return
	}
	n.core, n.err, n.booted = core, nil, false
	n.flush(env)
}

func (n *Node) loadState(env sim.Env) (election.State, error) {
	b, err := env.Disk().ReadFile(EpochFile(n.cfg.Service))
	if errors.Is(err, fs.ErrNotExist) {
		return election.State{}, nil // first boot
	}
	if err != nil {
		return election.State{}, fmt.Errorf("electionsim: reading the epoch: %w", err)
	}
	e, err := election.DecodeEpoch(b)
	if err != nil {
		return election.State{}, fmt.Errorf("electionsim: %w", err)
	}
	return election.State{Epoch: e}, nil
}

// saveState writes and syncs the epoch file, as FileEpochStore does.
func (n *Node) saveState(env sim.Env, st election.State) error {
	name := EpochFile(n.cfg.Service)
	if err := env.Disk().WriteFile(name, election.EncodeEpoch(st.Epoch)); err != nil {
		return err
	}
	return env.Disk().Sync(name)
}

// Receive implements sim.Node.
func (n *Node) Receive(env sim.Env, msg transport.Message) {
	if n.core == nil || msg.Service != n.cfg.Service {
		return
	}
	if err := n.core.Receive(env.Now(), msg.From, msg.Payload); err != nil {
		env.Logf("electionsim: %v", err)
	}
	n.flush(env)
}

// Timer implements sim.Node.
func (n *Node) Timer(env sim.Env, id sim.TimerID, _ string) {
	if n.core == nil || id != n.timer {
		return
	}
	n.timer = 0
	n.core.Tick(env.Now())
	n.flush(env)
}

// flush makes the core's State durable, sends what the core produced,
// reports a view change, and keeps one timer armed at the core's NextTick.
// A failed disk write stops the node (Err tells why) before it sends.
func (n *Node) flush(env sim.Env) {
	rd := n.core.Ready()
	if rd.State != (election.State{}) {
		if err := n.saveState(env, rd.State); err != nil {
			n.core, n.err = nil, fmt.Errorf("electionsim: saving epoch %d: %w", rd.State.Epoch, err)
			env.Logf("%v", n.err)
			if n.timer != 0 {
				env.CancelTimer(n.timer)
				n.timer = 0
			}
			return
		}
	}
	for _, m := range rd.Messages {
		if n.OnSend != nil {
			n.OnSend(env.ID(), m.To, m.Payload)
		}
		env.Send(m.To, n.cfg.Service, m.Payload)
	}
	if rd.Leader != n.last || !n.booted {
		n.last, n.booted = rd.Leader, true
		if n.OnLeader != nil {
			n.OnLeader(env.ID(), rd.Leader)
		}
	}
	next := n.core.NextTick()
	if n.timer != 0 && n.timerAt.Equal(next) {
		return
	}
	if n.timer != 0 {
		env.CancelTimer(n.timer)
	}
	n.timerAt = next
	n.timer = env.SetTimer(max(next.Sub(env.Now()), 0), "tick")
}
