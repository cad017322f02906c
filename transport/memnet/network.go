package memnet

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distkit/distkit/internal/netfault"
	"github.com/distkit/distkit/transport"
)

// Network is an in-process network of nodes, each with its own Transport,
// whose faults a test can change while messages flow. It is safe for
// concurrent use.
type Network struct {
	cfg   Config
	log   *slog.Logger
	start time.Time // origin of the due times of delayed messages

	// mu guards rules, nodes, links (the map and each link's rng) and
	// closed. Senders hold it briefly to decide a message's fate; delivery
	// never takes it on a quiet network.
	mu     sync.Mutex
	rules  netfault.Rules
	nodes  map[transport.NodeID]*Transport
	links  map[netfault.Link]*link
	closed bool

	// quiet mirrors rules.Quiet() so the delivery goroutines can skip the
	// partition check (and mu) when nothing is blocked.
	quiet atomic.Bool
	// panics counts handler panics across all nodes.
	panics atomic.Uint64
	// idle tracks the messages in flight, for Flush.
	idle idleTracker
}

// link is one directed link: its counters and its random stream.
type link struct {
	rng                                  *rand.Rand // guarded by Network.mu
	sent, delivered, dropped, duplicated atomic.Uint64
}

// New returns an empty network.
func New(cfg Config) (*Network, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Network{
		cfg:   cfg,
		log:   cfg.Logger,
		start: time.Now(),
		nodes: make(map[transport.NodeID]*Transport),
		links: make(map[netfault.Link]*link),
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	n.rules.Default = netfault.Faults(cfg.Faults)
	n.quiet.Store(n.rules.Quiet())
	return n, nil
}

// Join adds node id to the network and returns its Transport, whose
// delivery goroutine runs until the Transport (or the Network) is closed. If
// an earlier Transport for id was closed, Join issues a fresh one; if it is
// still open, Join fails with ErrDuplicateNode.
func (n *Network) Join(id transport.NodeID) (*Transport, error) {
	if n == nil {
		return nil, errNetworkNotNew
	}
	if n.nodes == nil {
		return nil, errNetworkNotNew
	}
	if id == "" {
		return nil, fmt.Errorf("%w: empty node ID", ErrInvalidConfig)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, fmt.Errorf("memnet: join %q: %w", id, transport.ErrClosed)
	}
	if old := n.nodes[id]; old != nil && !old.closed {
		return nil, fmt.Errorf("%w: %q", ErrDuplicateNode, id)
	}
	t := newTransport(n, id)
	n.nodes[id] = t
	go t.deliverLoop()
	return t, nil
}

// Close closes every node's Transport and waits for their goroutines. Join
// fails afterwards. Close is idempotent.
func (n *Network) Close() error {
	if n == nil {
		return errNetworkNotNew
	}
	n.mu.Lock()
	n.closed = true
	ts := make([]*Transport, 0, len(n.nodes))
	for _, t := range n.nodes {
		ts = append(ts, t)
	}
	n.mu.Unlock()
	for _, t := range ts {
		_ = t.Close()
	}
	return nil
}

// Nodes returns the IDs of the nodes with an open Transport, sorted.
func (n *Network) Nodes() []transport.NodeID {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	ids := make([]transport.NodeID, 0, len(n.nodes))
	for id, t := range n.nodes {
		if !t.closed {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// changeRules applies a change to the rules under mu.
func (n *Network) changeRules(what string, change func(r *netfault.Rules)) {
	if n == nil {
		return
	}
	if n.nodes == nil {
		return // a zero Network has no nodes for rules to apply to
	}
	n.mu.Lock()
	change(&n.rules)
	n.quiet.Store(n.rules.Quiet())
	n.mu.Unlock()
	n.log.Debug("memnet: " + what)
}

// SetFaults replaces the default faults of every link. It applies to
// messages sent from now on.
func (n *Network) SetFaults(f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	n.changeRules("set faults", func(r *netfault.Rules) { r.Default = netfault.Faults(f) })
	return nil
}

// SetLinkFaults makes messages from -> to suffer f instead of the default
// faults (one direction only).
func (n *Network) SetLinkFaults(from, to transport.NodeID, f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	n.changeRules("set link faults", func(r *netfault.Rules) {
		r.SetLinkFaults(netfault.Link{From: from, To: to}, netfault.Faults(f))
	})
	return nil
}

// ResetLinkFaults returns the link from -> to to the default faults.
func (n *Network) ResetLinkFaults(from, to transport.NodeID) {
	n.changeRules("reset link faults", func(r *netfault.Rules) {
		r.ResetLinkFaults(netfault.Link{From: from, To: to})
	})
}

// Partition splits the nodes into groups; nodes in different groups cannot
// talk, and messages already queued between them are lost. Nodes named in
// no group form one more group together. It replaces any earlier partition.
func (n *Network) Partition(groups ...[]transport.NodeID) {
	n.changeRules("partition", func(r *netfault.Rules) { r.Partition(groups) })
}

// Cut stops messages from -> to (one way only) until Heal.
func (n *Network) Cut(from, to transport.NodeID) {
	n.changeRules("cut", func(r *netfault.Rules) { r.Cut(netfault.Link{From: from, To: to}) })
}

// Isolate cuts node id off from every other node, both ways, until Heal.
func (n *Network) Isolate(id transport.NodeID) {
	n.changeRules("isolate", func(r *netfault.Rules) { r.Isolate(id) })
}

// Heal removes the partition, every cut and every isolation. Faults stay.
func (n *Network) Heal() {
	n.changeRules("heal", func(r *netfault.Rules) { r.Heal() })
}

// Crash takes node id off the network as a process crash would: every
// message queued or in flight to or from it is lost, and until Restart
// nothing it sends goes out and nothing sent to it arrives (Send still
// returns nil, as a dead peer gives no error). Its Transport and handlers
// survive, so after Restart the same Transport works again; the test
// decides what process state the crash destroyed. Crashing a crashed node
// does nothing.
func (n *Network) Crash(id transport.NodeID) error {
	if n == nil {
		return errNetworkNotNew
	}
	n.mu.Lock()
	t := n.nodes[id]
	if t == nil || t.closed {
		n.mu.Unlock()
		return fmt.Errorf("memnet: crash %q: %w", id, transport.ErrUnknownPeer)
	}
	if t.crashed.Load() {
		n.mu.Unlock()
		return nil
	}
	t.crashed.Store(true)
	t.epoch.Add(1) // what is in flight from it carries the old epoch and is dropped
	n.mu.Unlock()
	t.inbox.discard(false, &n.idle)
	n.log.Debug("memnet: crash", "node", id)
	return nil
}

// Restart brings a crashed node back on the network with its Transport and
// handlers. Messages lost in the crash stay lost. Restarting a running node
// does nothing.
func (n *Network) Restart(id transport.NodeID) error {
	if n == nil {
		return errNetworkNotNew
	}
	n.mu.Lock()
	t := n.nodes[id]
	if t == nil || t.closed {
		n.mu.Unlock()
		return fmt.Errorf("memnet: restart %q: %w", id, transport.ErrUnknownPeer)
	}
	t.crashed.Store(false)
	n.mu.Unlock()
	n.log.Debug("memnet: restart", "node", id)
	return nil
}

// Crashed reports whether node id is crashed.
func (n *Network) Crashed(id transport.NodeID) bool {
	if n == nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	t := n.nodes[id]
	return t != nil && t.crashed.Load()
}

// linkLocked returns the link from -> to, creating it. n.mu must be held.
func (n *Network) linkLocked(from, to transport.NodeID) *link {
	key := netfault.Link{From: from, To: to}
	l := n.links[key]
	if l == nil {
		l = &link{rng: rand.New(rand.NewPCG(netfault.LinkSeed(n.cfg.Seed, from, to)))}
		n.links[key] = l
	}
	return l
}

// blocked reports whether a partition, cut or isolation now stops from -> to.
func (n *Network) blocked(from, to transport.NodeID) bool {
	if n.quiet.Load() {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.rules.Blocked(from, to)
}

// since returns the time since the network was created, on the monotonic
// clock; delayed messages are due at such offsets.
func (n *Network) since() time.Duration { return time.Since(n.start) }
