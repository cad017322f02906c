package consensustest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
	"github.com/distkit/distkit/transport/tcp"
)

// TB is the part of testing.TB a Cluster uses: *testing.T and *testing.B
// satisfy it, and so can a small type of a program or Example that runs a
// cluster outside a test (Fatal and Fatalf must not return).
type TB interface {
	Helper()
	Cleanup(func())
	TempDir() string
	Errorf(format string, args ...any)
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

var _ TB = testing.TB(nil)

// Network says what the nodes of a Cluster talk over.
type Network int

const (
	// Memnet is an in-memory network (transport/memnet) the test can
	// partition and fault; the default.
	Memnet Network = iota
	// TCP is loopback TCP (transport/tcp), one listener per node.
	TCP
)

// String returns the network's name.
func (n Network) String() string {
	switch n {
	case Memnet:
		return "memnet"
	case TCP:
		return "tcp"
	}
	return fmt.Sprintf("Network(%d)", int(n))
}

// Option configures Start.
type Option func(*options)

type options struct {
	network Network
	durable bool
	faults  memnet.Faults
	seed    int64
	sm      func(id transport.NodeID) consensus.StateMachine
	tweak   []func(*consensus.Config)
	client  consensus.ClientConfig
	logger  *slog.Logger
}

// WithNetwork picks the network (Memnet by default).
func WithNetwork(n Network) Option { return func(o *options) { o.network = n } }

// WithDataDir gives every node a data directory (t.TempDir) instead of
// memory-only storage, so a stopped or crashed node restarts with its
// log, hard state and snapshot.
func WithDataDir() Option { return func(o *options) { o.durable = true } }

// WithFaults sets the faults of every memnet link (see memnet.Faults); the
// network is seeded with seed, so the faults replay. It needs Memnet.
func WithFaults(f memnet.Faults, seed int64) Option {
	return func(o *options) { o.faults, o.seed = f, seed }
}

// WithStateMachine sets the factory of each node's state machine; it is
// called at every (re)start, and must return a fresh, empty machine (a
// durable node restores it from its snapshot). The default is NewKV.
func WithStateMachine(f func(id transport.NodeID) consensus.StateMachine) Option {
	return func(o *options) { o.sm = f }
}

// WithConfig adjusts each node's Config after the Cluster filled in ID,
// Peers, Join, DataDir and the fast test timings; it may be given more
// than once (applied in order).
func WithConfig(f func(*consensus.Config)) Option {
	return func(o *options) { o.tweak = append(o.tweak, f) }
}

// WithClientConfig sets the configuration of the Clients that Client
// returns (consensus.DefaultClientConfig by default).
func WithClientConfig(cfg consensus.ClientConfig) Option {
	return func(o *options) { o.client = cfg }
}

// WithLogger gives the nodes (and the network's transports) a logger; the
// default is silent.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// Cluster is a set of consensus nodes on one network, started by Start and
// stopped by the test's cleanup. Its methods are safe for concurrent use
// (clients may propose from other goroutines while the test goroutine
// stops, restarts and adds nodes); the methods that call t.Fatal must be
// called from the test's goroutine, as testing requires.
type Cluster struct {
	t    TB
	opts options
	net  *memnet.Network // nil over TCP

	mu       sync.Mutex // guards every field below
	founders []transport.NodeID
	ids      []transport.NodeID // every node ever started, founders first
	joined   map[transport.NodeID]bool
	nodes    map[transport.NodeID]*consensus.Node // running nodes
	sms      map[transport.NodeID]consensus.StateMachine
	trs      map[transport.NodeID]transport.Transport // open transports
	crashed  map[transport.NodeID]bool                // memnet: taken off the network
	addrs    map[transport.NodeID]string              // TCP listen addresses
	dirs     map[transport.NodeID]string
	closed   bool
}

// Start starts an n-node cluster (nodes "n1" … "nN", founded together) and
// registers its shutdown with t.Cleanup: nodes, transports and network are
// closed when the test ends, leaving no goroutine behind. It does not wait
// for a leader: call WaitLeader or propose through Client, which retries.
//
// The nodes use fast timings for tests: 5 ms ticks, elections after 10 to
// 20 ticks of silence (WithConfig changes them). Start fails the test if
// a node cannot start.
func Start(t TB, n int, opts ...Option) *Cluster {
	t.Helper()
	o := options{client: consensus.DefaultClientConfig(), sm: func(transport.NodeID) consensus.StateMachine { return NewKV() }}
	for _, opt := range opts {
		opt(&o)
	}
	if n < 1 {
		t.Fatalf("consensustest: Start(%d nodes); want at least 1", n)
	}
	c := &Cluster{
		t: t, opts: o,
		joined: map[transport.NodeID]bool{}, nodes: map[transport.NodeID]*consensus.Node{},
		sms: map[transport.NodeID]consensus.StateMachine{}, trs: map[transport.NodeID]transport.Transport{},
		crashed: map[transport.NodeID]bool{}, addrs: map[transport.NodeID]string{}, dirs: map[transport.NodeID]string{},
	}
	for i := range n {
		c.founders = append(c.founders, transport.NodeID(fmt.Sprintf("n%d", i+1)))
	}
	c.ids = slices.Clone(c.founders)
	switch o.network {
	case Memnet:
		mcfg := memnet.DefaultConfig()
		mcfg.Seed, mcfg.Faults, mcfg.Logger = o.seed, o.faults, o.logger
		net, err := memnet.New(mcfg)
		if err != nil {
			t.Fatalf("consensustest: memnet.New: %v", err)
		}
		c.net = net
	case TCP:
		if o.faults != (memnet.Faults{}) {
			t.Fatalf("consensustest: WithFaults needs the Memnet network")
		}
	default:
		t.Fatalf("consensustest: unknown %v", o.network)
	}
	t.Cleanup(c.Close)
	for _, id := range c.founders {
		if o.durable {
			c.dirs[id] = t.TempDir()
		}
		c.openTransport(id)
	}
	for _, id := range c.founders {
		c.startNode(id)
	}
	return c
}

// Network returns the memnet network (nil over TCP), for faults beyond
// Partition, Isolate and Heal.
func (c *Cluster) Network() *memnet.Network { return c.net }

// IDs returns every node the cluster has started (founders first, then
// the added ones, running or not), in start order.
func (c *Cluster) IDs() []transport.NodeID {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.ids)
}

// Node returns the running node id, or nil if it is stopped or unknown.
func (c *Cluster) Node(id transport.NodeID) *consensus.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

// Nodes returns the running nodes, in start order.
func (c *Cluster) Nodes() []*consensus.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*consensus.Node
	for _, id := range c.ids {
		if n := c.nodes[id]; n != nil {
			out = append(out, n)
		}
	}
	return out
}

// Others returns the IDs other than id among those the cluster started,
// in start order.
func (c *Cluster) Others(id transport.NodeID) []transport.NodeID {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []transport.NodeID
	for _, o := range c.ids {
		if o != id {
			out = append(out, o)
		}
	}
	return out
}

// StateMachine returns the state machine of node id's current (or last)
// run, nil if it never started.
func (c *Cluster) StateMachine(id transport.NodeID) consensus.StateMachine {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sms[id]
}

// KV returns node id's state machine as a *KV; it fails the test if the
// state machine is something else (see WithStateMachine).
func (c *Cluster) KV(id transport.NodeID) *KV {
	c.t.Helper()
	kv, ok := c.StateMachine(id).(*KV)
	if !ok {
		c.t.Fatalf("consensustest: state machine of %s is %T, not *KV", id, c.StateMachine(id))
	}
	return kv
}

// DataDir returns node id's data directory ("" without WithDataDir).
func (c *Cluster) DataDir(id transport.NodeID) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dirs[id]
}

// Config returns the Config node id is (re)started with.
func (c *Cluster) Config(id transport.NodeID) consensus.Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.configLocked(id)
}

func (c *Cluster) configLocked(id transport.NodeID) consensus.Config {
	cfg := consensus.DefaultConfig()
	cfg.ID = id
	// The join rule (consensus.Config.Join): Peers are the founders, as
	// they were given them, on every node.
	cfg.Peers = slices.Clone(c.founders)
	cfg.Join = c.joined[id]
	cfg.DataDir = c.dirs[id]
	cfg.TickInterval = 5 * time.Millisecond
	cfg.ElectionTicks = 10
	cfg.Logger = c.opts.logger
	for _, f := range c.opts.tweak {
		f(&cfg)
	}
	return cfg
}

// openTransport joins id to the network. c.mu must not be held.
func (c *Cluster) openTransport(id transport.NodeID) {
	c.t.Helper()
	if c.net != nil {
		tr, err := c.net.Join(id)
		if err != nil {
			c.t.Fatalf("consensustest: join %s to memnet: %v", id, err)
		}
		c.mu.Lock()
		c.trs[id] = tr
		c.mu.Unlock()
		return
	}
	c.mu.Lock()
	addr := c.addrs[id]
	c.mu.Unlock()
	cfg := tcp.DefaultConfig()
	cfg.ID = id
	cfg.MinBackoff = 5 * time.Millisecond
	cfg.MaxBackoff = 50 * time.Millisecond
	cfg.Logger = c.opts.logger
	if addr != "" {
		cfg.ListenAddr = addr // a restart listens where the others dial
	}
	tr, err := tcp.Listen(cfg)
	if err != nil {
		c.t.Fatalf("consensustest: tcp.Listen(%s): %v", id, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addrs[id] = tr.Addr().String()
	c.trs[id] = tr
	// Everyone learns everyone: the new transport its peers, the open
	// ones the new address.
	for p, paddr := range c.addrs {
		if p == id {
			continue
		}
		if err := tr.AddPeer(p, paddr); err != nil {
			c.t.Fatalf("consensustest: %s.AddPeer(%s): %v", id, p, err)
		}
		if other, ok := c.trs[p].(*tcp.Transport); ok {
			if err := other.AddPeer(id, c.addrs[id]); err != nil && !errors.Is(err, transport.ErrClosed) {
				c.t.Fatalf("consensustest: %s.AddPeer(%s): %v", p, id, err)
			}
		}
	}
}

// startNode starts node id on its open transport with a fresh state
// machine.
func (c *Cluster) startNode(id transport.NodeID) {
	c.t.Helper()
	c.mu.Lock()
	cfg := c.configLocked(id)
	tr := c.trs[id]
	running := c.nodes[id] != nil
	c.mu.Unlock()
	if running {
		c.t.Fatalf("consensustest: start %s: already running", id)
	}
	sm := c.opts.sm(id)
	n, err := consensus.New(cfg, tr, sm)
	if err != nil {
		c.t.Fatalf("consensustest: consensus.New(%s): %v", id, err)
	}
	c.mu.Lock()
	c.nodes[id], c.sms[id] = n, sm
	c.mu.Unlock()
}

// take removes the running node id from the cluster's table and returns
// it (nil if not running).
func (c *Cluster) take(id transport.NodeID) *consensus.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[id]
	delete(c.nodes, id)
	return n
}

// Stop closes node id (consensus.Node.Close, no leadership transfer); its
// transport stays open and its data directory (if any) stays, so Restart
// brings it back. Stopping a stopped node does nothing.
func (c *Cluster) Stop(id transport.NodeID) {
	c.t.Helper()
	if n := c.take(id); n != nil {
		if err := n.Close(); err != nil {
			c.t.Errorf("consensustest: Close(%s) = %v", id, err)
		}
	}
}

// Crash stops node id as a process crash would: on memnet every message in
// flight to or from it is lost (memnet.Network.Crash), over TCP its
// transport is closed; then the node is closed. Only what the node had
// made durable survives, in its data directory: without WithDataDir it
// restarts empty. Restart brings it back.
func (c *Cluster) Crash(id transport.NodeID) {
	c.t.Helper()
	if c.net != nil {
		if err := c.net.Crash(id); err != nil {
			c.t.Fatalf("consensustest: crash %s: %v", id, err)
		}
		c.mu.Lock()
		c.crashed[id] = true
		c.mu.Unlock()
	} else {
		c.mu.Lock()
		tr := c.trs[id]
		delete(c.trs, id)
		c.mu.Unlock()
		if tr != nil {
			tr.Close()
		}
	}
	if n := c.take(id); n != nil {
		n.Close()
	}
}

// Restart starts the stopped or crashed node id again under the same ID,
// with a fresh state machine: from its data directory with WithDataDir,
// empty otherwise. (An in-memory node restarted empty has forgotten its
// vote and the entries it acknowledged; see consensus.Config.DataDir.)
func (c *Cluster) Restart(id transport.NodeID) {
	c.t.Helper()
	c.mu.Lock()
	known := slices.Contains(c.ids, id)
	crashed := c.crashed[id]
	delete(c.crashed, id)
	open := c.trs[id] != nil
	c.mu.Unlock()
	if !known {
		c.t.Fatalf("consensustest: restart %s: no such node (AddNode or StartJoiner starts new ones)", id)
	}
	if crashed {
		if err := c.net.Restart(id); err != nil {
			c.t.Fatalf("consensustest: restart %s on memnet: %v", id, err)
		}
	}
	if !open {
		c.openTransport(id)
	}
	c.startNode(id)
}

// Partition splits the memnet network into groups that cannot reach each
// other (see memnet.Network.Partition); it fails the test over TCP.
func (c *Cluster) Partition(groups ...[]transport.NodeID) {
	c.t.Helper()
	c.memnet("Partition").Partition(groups...)
}

// Isolate cuts node id off from every other node (memnet only).
func (c *Cluster) Isolate(id transport.NodeID) {
	c.t.Helper()
	c.memnet("Isolate").Isolate(id)
}

// Heal undoes Partition and Isolate (memnet only).
func (c *Cluster) Heal() {
	c.t.Helper()
	c.memnet("Heal").Heal()
}

func (c *Cluster) memnet(what string) *memnet.Network {
	c.t.Helper()
	if c.net == nil {
		c.t.Fatalf("consensustest: %s needs the Memnet network", what)
	}
	return c.net
}

// StartJoiner starts a new node id that joins the running cluster
// (Config.Join, with a data directory under WithDataDir) without adding
// it to the membership: it waits, silent, until a member adds it. AddNode
// does both.
func (c *Cluster) StartJoiner(id transport.NodeID) {
	c.t.Helper()
	c.mu.Lock()
	known := slices.Contains(c.ids, id)
	if !known {
		c.ids = append(c.ids, id)
		c.joined[id] = true
	}
	c.mu.Unlock()
	if known {
		c.t.Fatalf("consensustest: StartJoiner(%s): the cluster already has a node %s (Restart restarts it)", id, id)
	}
	if c.opts.durable {
		dir := c.t.TempDir()
		c.mu.Lock()
		c.dirs[id] = dir
		c.mu.Unlock()
	}
	c.openTransport(id)
	c.startNode(id)
}

// PromoteLag is how far behind the leader's last index (in entries) a
// learner that AddNode added may be when it is promoted. Not 0: under a
// steady stream of writes a learner is always a few entries behind, and
// would never be promoted.
const PromoteLag = 64

// AddNode starts a new node id (StartJoiner) and makes it a voter the safe
// way: added as a learner, promoted once it is within PromoteLag entries
// of the leader (consensus.Node.AddAndPromote), on whichever node leads,
// retried across leader changes until ctx ends. It fails the test if the
// node cannot start; a membership change that cannot be made is returned.
func (c *Cluster) AddNode(ctx context.Context, id transport.NodeID) error {
	c.t.Helper()
	c.StartJoiner(id)
	return c.changeMembership(ctx, "add "+string(id), func(m raft.Membership) bool { return m.IsVoter(id) },
		func(l *consensus.Node) error { return l.AddAndPromote(ctx, id, PromoteLag) })
}

// RemoveNode removes node id from the membership, on whichever node leads
// (retried across leader changes until ctx ends; removing the leader
// works, it steps down), then stops it. The node's ID is not reused.
func (c *Cluster) RemoveNode(ctx context.Context, id transport.NodeID) error {
	c.t.Helper()
	err := c.changeMembership(ctx, "remove "+string(id), func(m raft.Membership) bool { return !m.Contains(id) },
		func(l *consensus.Node) error { return l.Remove(ctx, id) })
	if err != nil {
		return err
	}
	c.Stop(id)
	return nil
}

// changeMembership runs change on the leader until done reports the
// leader's committed membership has the wanted shape.
func (c *Cluster) changeMembership(ctx context.Context, what string, done func(raft.Membership) bool, change func(*consensus.Node) error) error {
	for {
		l, err := c.Leader(ctx)
		if err != nil {
			return fmt.Errorf("consensustest: %s: %w", what, err)
		}
		if m, committed := l.Members(); committed && !m.Joint() && done(m) {
			return nil
		}
		err = change(l)
		switch {
		case err == nil:
			continue // check the result on the (possibly new) leader
		case errors.Is(err, consensus.ErrNotLeader), errors.Is(err, consensus.ErrProposalLost),
			errors.Is(err, consensus.ErrOutcomeUnknown), errors.Is(err, consensus.ErrStopped),
			errors.Is(err, consensus.ErrClosed), errors.Is(err, raft.ErrProposalDropped),
			errors.Is(err, raft.ErrConfChangeInProgress), errors.Is(err, raft.ErrInvalidConfChange):
			// A leader change, or a change still leaving a joint
			// configuration (or a retried one already made): look again
			// after a tick.
			if ctx.Err() != nil {
				return fmt.Errorf("consensustest: %s: %w", what, err)
			}
			wait(ctx, c.Config(l.ID()).TickInterval)
		default:
			return fmt.Errorf("consensustest: %s: %w", what, err)
		}
	}
}

// wait sleeps for d or until ctx ends.
func wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Leader waits until the running nodes agree on a leader and returns it:
// a node that leads in its term, recognised in that term by a majority of
// the voters of its configuration that are running. (A leader cut off in a
// minority is not returned; the majority's is.) Errors: ctx's, wrapped,
// with what the nodes believed.
func (c *Cluster) Leader(ctx context.Context) (*consensus.Node, error) {
	for {
		nodes := c.Nodes()
		if l := agreedLeader(nodes); l != nil {
			return l, nil
		}
		// Wake at the next change of any node's view, or after a tick
		// (a node restarted meanwhile is not observed).
		if err := awaitChange(ctx, nodes, c.Config(c.founders[0]).TickInterval); err != nil {
			var views []string
			for _, n := range nodes {
				li := n.Leader()
				views = append(views, fmt.Sprintf("%s: %s leads term %d (%v)", n.ID(), li.Leader, li.Term, li.Role))
			}
			return nil, fmt.Errorf("consensustest: no agreed leader (%v): %w", views, err)
		}
	}
}

// agreedLeader returns the leader a majority of its voters recognise, or
// nil.
func agreedLeader(nodes []*consensus.Node) *consensus.Node {
	byID := map[transport.NodeID]consensus.LeaderInfo{}
	for _, n := range nodes {
		byID[n.ID()] = n.Leader()
	}
	var best *consensus.Node
	for _, n := range nodes {
		li := byID[n.ID()]
		if li.Role != raft.Leader || (best != nil && byID[best.ID()].Term >= li.Term) {
			continue
		}
		m, _ := n.Members()
		agree := 0
		for _, v := range m.Voters {
			if o, ok := byID[v]; ok && o.Leader == n.ID() && o.Term == li.Term {
				agree++
			}
		}
		if agree > len(m.Voters)/2 {
			best = n
		}
	}
	return best
}

// awaitChange blocks until some node's LeaderInfo changes, d passes or
// ctx ends (only the last is an error).
func awaitChange(ctx context.Context, nodes []*consensus.Node, d time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	changed := make(chan struct{}, 1) // size 1: one wake-up is enough
	var wg sync.WaitGroup
	for _, n := range nodes {
		ch := n.Observe(wctx)
		<-ch // the current value
		wg.Go(func() {
			if _, ok := <-ch; ok {
				select {
				case changed <- struct{}{}:
				default:
				}
			}
		})
	}
	select {
	case <-changed:
	case <-wctx.Done():
	}
	cancel()
	wg.Wait()
	return ctx.Err()
}

// WaitLeader is Leader that fails the test when ctx ends first.
func (c *Cluster) WaitLeader(ctx context.Context) *consensus.Node {
	c.t.Helper()
	l, err := c.Leader(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	return l
}

// Client returns a consensus.Client over every node the cluster has
// started, plus the IDs given (nodes the test will add later). It
// proposes to whatever node runs under an ID at the time: a stopped node
// answers consensus.ErrClosed and the client moves on, a restarted one is
// found again. It keeps sessions if the state machines do (see
// WithStateMachine and consensus.WithSessions).
func (c *Cluster) Client(more ...transport.NodeID) *consensus.Client {
	c.t.Helper()
	members := map[transport.NodeID]consensus.Proposer{}
	for _, id := range append(c.IDs(), more...) {
		members[id] = &member{c: c, id: id}
	}
	cl, err := consensus.NewClient(members, c.opts.client)
	if err != nil {
		c.t.Fatalf("consensustest: NewClient: %v", err)
	}
	return cl
}

// member is a consensus.Proposer for whatever node runs under id.
type member struct {
	c  *Cluster
	id transport.NodeID
}

var _ consensus.SessionKeeper = (*member)(nil)

// Propose proposes on the node running under id, or fails with
// consensus.ErrClosed if none does.
func (m *member) Propose(ctx context.Context, cmd []byte) (any, error) {
	n := m.c.Node(m.id)
	if n == nil {
		return nil, fmt.Errorf("consensustest: %s is not running: %w", m.id, consensus.ErrClosed)
	}
	return n.Propose(ctx, cmd)
}

// KeepsSessions reports whether the cluster's state machines keep
// sessions (the first founder's says for all: every node must agree).
func (m *member) KeepsSessions() bool {
	_, ok := m.c.StateMachine(m.c.founders[0]).(*consensus.SessionMachine)
	return ok
}

// Close stops every node, then closes the transports and the network.
// Start registers it with t.Cleanup; calling it earlier is allowed, and a
// second call does nothing.
func (c *Cluster) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	nodes := c.nodes
	trs := c.trs
	c.nodes, c.trs = map[transport.NodeID]*consensus.Node{}, map[transport.NodeID]transport.Transport{}
	c.mu.Unlock()
	for id, n := range nodes {
		if err := n.Close(); err != nil {
			c.t.Errorf("consensustest: Close(%s) = %v", id, err)
		}
	}
	for _, tr := range trs {
		tr.Close()
	}
	if c.net != nil {
		c.net.Close()
	}
}
