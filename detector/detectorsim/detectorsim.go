// Package detectorsim runs the detector package's Membership core as nodes
// of the deterministic simulator (package sim), for examples, tests and
// experiments: failure detection under message loss, partitions, one-way
// cuts and crash-restarts, replayable by seed.
//
//	ids := []transport.NodeID{"n1", "n2", "n3"}
//	s, _ := sim.New(sim.Config{Seed: 1, Faults: sim.Faults{Drop: 0.01, MaxDelay: 10 * time.Millisecond}})
//	for _, id := range ids {
//		s.AddNode(id, func() sim.Node {
//			n := detectorsim.New(detector.DefaultConfig(), ids)
//			n.OnEvent = func(by transport.NodeID, e detector.Event) { fmt.Println(by, e) }
//			return n
//		})
//	}
//	s.Run(30 * time.Second) // the detectors learn the heartbeat rhythm
//	s.Crash("n3")
//	s.Run(10 * time.Second) // n1 and n2 report n3 suspect, then failed
//	st, _ := s.Node("n1").(*detectorsim.Node).Core().Member("n3", s.Now())
//
// A Node belongs to the simulator's goroutine, like everything in sim.
package detectorsim

import (
	"fmt"

	"github.com/distkit/distkit/detector"
	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
)

// Node drives one detector.Membership in the simulator: a single timer at
// the core's NextTick, messages on detector.Service and ticks in, the
// core's messages and events out. A new Node (from the factory given to
// sim.AddNode) builds a fresh core at every boot, so a restarted node
// remembers nothing, as after a real crash, and comes back with a higher
// incarnation.
type Node struct {
	cfg     detector.Config
	members []transport.NodeID
	core    *detector.Membership
	err     error

	// OnEvent, if set, is called with every event the node's core reports,
	// in order, by is the reporting node.
	OnEvent func(by transport.NodeID, e detector.Event)
	// OnReceiveError, if set, is called with every error of
	// Membership.Receive (a malformed message).
	OnReceiveError func(err error)
}

var _ sim.Node = (*Node)(nil)

// New returns a Node that monitors every one of members except itself with
// cfg. Errors in cfg or members surface at boot (see Err).
func New(cfg detector.Config, members []transport.NodeID) *Node {
	return &Node{cfg: cfg, members: members}
}

// Core returns the running core, or nil before Start or if it failed to
// build (see Err).
func (n *Node) Core() *detector.Membership { return n.core }

// Err returns the error that kept the core from being built, if any.
func (n *Node) Err() error { return n.err }

// Start implements sim.Node: it builds the core, seeded from env, with
// every member added, and arms the timer.
func (n *Node) Start(env sim.Env) {
	core, err := detector.NewMembership(env.ID(), n.cfg, env.Rand().Uint64(), env.Now())
	if err != nil {
		n.fail(env, err)
		return
	}
	for _, p := range n.members {
		if p == env.ID() {
			continue
		}
		if err := core.AddMember(p, env.Now()); err != nil {
			n.fail(env, err)
			return
		}
	}
	n.core = core
	n.arm(env)
}

// Receive implements sim.Node.
func (n *Node) Receive(env sim.Env, msg transport.Message) {
	if n.core == nil || msg.Service != detector.Service {
		return
	}
	if err := n.core.Receive(env.Now(), msg.From, msg.Payload); err != nil && n.OnReceiveError != nil {
		n.OnReceiveError(err)
	}
	n.flush(env)
}

// Timer implements sim.Node.
func (n *Node) Timer(env sim.Env, _ sim.TimerID, _ string) {
	if n.core == nil {
		return
	}
	n.core.Tick(env.Now())
	n.flush(env)
	n.arm(env)
}

func (n *Node) arm(env sim.Env) {
	env.SetTimer(max(n.core.NextTick().Sub(env.Now()), 0), "tick")
}

func (n *Node) flush(env sim.Env) {
	rd := n.core.Ready()
	for _, m := range rd.Messages {
		env.Send(m.To, detector.Service, m.Payload)
	}
	if n.OnEvent != nil {
		for _, e := range rd.Events {
			n.OnEvent(env.ID(), e)
		}
	}
}

func (n *Node) fail(env sim.Env, err error) {
	n.err = fmt.Errorf("detectorsim: %s: %w", env.ID(), err)
	env.Logf("%v", n.err)
}
