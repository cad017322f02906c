package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/distkit/distkit/internal/netfault"
	"github.com/distkit/distkit/transport"
)

// TimerID names a timer set with Env.SetTimer. IDs are never reused within a
// Sim, and the zero TimerID is never issued.
type TimerID uint64

// Env is what a node sees of the world while it handles an event. An Env is
// valid for one incarnation of one node: after the node crashes, calls
// through the old Env do nothing (Send drops, SetTimer returns 0).
type Env interface {
	// ID returns the node's ID.
	ID() transport.NodeID
	// Now returns the node's clock: the virtual time, unless the node was
	// given a Clock with an offset or a drift.
	Now() time.Time
	// Rand returns the node's random source, seeded from the sim seed and
	// the node's ID and incarnation.
	Rand() *rand.Rand
	// Send sends a message through the faulty virtual network. It takes
	// ownership of payload, which the receiver must treat as read-only.
	Send(to transport.NodeID, service string, payload []byte)
	// SetTimer arranges for Node.Timer(env, id, name) once the node's clock
	// has advanced by d (d of virtual time unless its Clock drifts).
	SetTimer(d time.Duration, name string) TimerID
	// CancelTimer stops a timer; cancelling a fired or unknown timer is a no-op.
	CancelTimer(id TimerID)
	// Disk returns the node's disk, which survives crash and restart.
	Disk() *Disk
	// Logf logs a line tagged with the virtual time and the node's ID.
	Logf(format string, args ...any)
}

// Node is a protocol core driven by the simulator. Its methods are called
// one at a time, never concurrently, and must not start goroutines, sleep,
// read the wall clock or let map iteration order change what they do.
type Node interface {
	// Start is called when the node boots and after every restart.
	Start(env Env)
	// Receive handles a message delivered by the virtual network.
	Receive(env Env, msg transport.Message)
	// Timer handles a timer set with env.SetTimer.
	Timer(env Env, id TimerID, name string)
}

// Config configures a Sim.
type Config struct {
	// Seed decides every random choice; the same seed and the same actions
	// give the same run, event for event.
	Seed int64
	// Faults is the network's default behaviour on every link.
	Faults Faults
	// Trace records a human-readable line per event (see Sim.Trace) and
	// passes it to Logf. It costs time and memory; the trace hash is kept
	// whether or not Trace is set.
	Trace bool
	// TornWrites makes a crash keep a seeded prefix of a file's unsynced
	// appended bytes instead of none, tearing the last write as a real disk
	// can. Without it a crash keeps exactly the synced data.
	TornWrites bool
	// Start is the virtual time at which the simulation begins. The zero
	// value means 2000-01-01 00:00:00 UTC.
	Start time.Time
	// Logf receives the lines nodes log with Env.Logf and, with Trace, the
	// trace. Nil discards them. A test passes t.Logf.
	Logf func(format string, args ...any)
	// MaxEvents is the simulation's budget of events (Stats.Events). When
	// it is spent the simulation stops: Step, Run and RunUntil process
	// nothing more and Err reports ErrBudget with the seed, the step and
	// the virtual time. Zero means DefaultMaxEvents; negative means no
	// limit. A broken rule that makes a protocol busy-loop (two nodes
	// answering each other at one instant, a timer re-armed every
	// nanosecond) then fails the test with a message instead of hanging it.
	MaxEvents int64
	// MaxEventsPerInstant bounds the events run at one virtual instant:
	// nodes that answer each other with zero latency keep virtual time
	// still, which no real network does. Past it the simulation stops as
	// with MaxEvents. Zero means DefaultMaxEventsPerInstant; negative means
	// no limit.
	MaxEventsPerInstant int64
	// MaxTime is the simulation's budget of virtual time: past it the
	// simulation stops as with MaxEvents. Zero means no limit.
	MaxTime time.Duration
	// DeliverAfterSenderCrash keeps delivering the messages a node sent
	// before it crashed, as packets already on the wire are. By default a
	// crash loses every message in flight from the node too, which hides
	// the case "answered, then crashed before the answer's state was
	// durable": set it to test that a node persists before it answers.
	DeliverAfterSenderCrash bool
	// Clocks gives nodes their own clocks (see Clock); a node not named
	// reads the virtual time. SetClock changes a clock during a run.
	Clocks map[transport.NodeID]Clock
}

// DefaultMaxEvents is the event budget of a Sim whose Config.MaxEvents is
// zero: far more than any test's simulation needs (a busy five-node Raft
// cluster runs about a million events per simulated minute), and a few
// seconds of work, so a runaway simulation fails fast.
const DefaultMaxEvents = 10_000_000

// DefaultMaxEventsPerInstant is the per-instant budget of a Sim whose
// Config.MaxEventsPerInstant is zero.
const DefaultMaxEventsPerInstant = 1_000_000

// Clock is a node's local clock: it reads
//
//	local = virtual + Offset + Drift·(virtual − start)
//
// so it is Offset ahead of the virtual time at the start and gains Drift
// seconds per second after that (Drift = 0.01 runs 1% fast, −0.01 1% slow).
// Env.Now returns it and Env.SetTimer measures its duration on it, as a
// process's monotonic clock and timers do. The zero Clock is the virtual
// time itself.
type Clock struct {
	Offset time.Duration
	Drift  float64
}

// MaxDrift bounds |Clock.Drift|: real oscillators are off by parts per
// million; a simulation exaggerates, but a clock must still move forward.
const MaxDrift = 0.5

// Validate reports whether the clock is usable: |Drift| <= MaxDrift.
func (c Clock) Validate() error {
	if c.Drift != c.Drift || c.Drift < -MaxDrift || c.Drift > MaxDrift {
		return fmt.Errorf("%w: clock drift %v outside [-%v, %v]", ErrInvalidConfig, c.Drift, MaxDrift, MaxDrift)
	}
	return nil
}

// local converts an elapsed virtual time into the clock's elapsed time.
func (c Clock) local(elapsed time.Duration) time.Duration {
	return c.Offset + elapsed + time.Duration(c.Drift*float64(elapsed))
}

// virtualFor returns the virtual duration in which the clock advances by
// d, rounded up so that a timer never fires before its local deadline.
func (c Clock) virtualFor(d time.Duration) time.Duration {
	if c.Drift == 0 || d <= 0 {
		return d
	}
	v := time.Duration(float64(d) / (1 + c.Drift))
	for v < d && time.Duration(float64(v)*(1+c.Drift)) < d {
		v++
	}
	return v
}

// DefaultConfig returns a Config with seed 1 and a network whose latency is
// uniform between 1ms and 10ms, with no loss.
func DefaultConfig() Config {
	return Config{Seed: 1, Faults: Faults{MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond}}
}

// Validate reports whether the configuration can be used.
func (c Config) Validate() error {
	if err := c.Faults.Validate(); err != nil {
		return fmt.Errorf("%w: Faults: %w", ErrInvalidConfig, err)
	}
	if c.MaxTime < 0 {
		return fmt.Errorf("%w: MaxTime %v is negative", ErrInvalidConfig, c.MaxTime)
	}
	for id, clk := range c.Clocks {
		if err := clk.Validate(); err != nil {
			return fmt.Errorf("%w (node %q)", err, id)
		}
	}
	return nil
}

// Errors reported by the simulator. Compare with errors.Is.
var (
	// ErrInvalidConfig is returned by New for a Config that fails Validate.
	ErrInvalidConfig = errors.New("sim: invalid config")
	// ErrInvalidFaults is wrapped by the errors of Faults.Validate.
	ErrInvalidFaults = errors.New("sim: invalid faults")
	// ErrUnknownNode is recorded (see Sim.Err) when an action names a node
	// that was never added.
	ErrUnknownNode = errors.New("sim: unknown node")
	// ErrReentrant is recorded when Step, Run or RunUntil is called from
	// inside an event; the call does nothing.
	ErrReentrant = errors.New("sim: reentrant call")
	// ErrDuplicateNode is returned by AddNode for an ID that is taken.
	ErrDuplicateNode = errors.New("sim: duplicate node")
	// ErrInvalidArgument is recorded when At, Inject or RunUntil is given
	// a nil function; the call does nothing.
	ErrInvalidArgument = errors.New("sim: invalid argument")
	// ErrBudget is recorded when the simulation spends Config.MaxEvents or
	// Config.MaxTime; the message names the seed, the step and the time.
	ErrBudget = errors.New("sim: budget exceeded")
)

// defaultStart is the virtual time a Sim starts at unless told otherwise. A
// fixed, round date keeps traces readable and runs comparable.
var defaultStart = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Stats counts what happened in a simulation so far.
type Stats struct {
	Sent       uint64 // messages handed to Env.Send
	Delivered  uint64 // deliveries to a live node (a duplicate counts twice)
	Dropped    uint64 // messages lost to Drop, partitions, cuts, crashes or unknown peers
	Duplicated uint64 // extra copies created by Duplicate
	Timers     uint64 // timers fired
	Events     uint64 // events processed, including test actions
}

// LinkStats counts the messages on one directed link.
type LinkStats struct {
	Sent, Delivered, Dropped, Duplicated uint64
}

// simNode is the simulator's record of one node.
type simNode struct {
	id          transport.NodeID
	factory     func() Node
	inst        Node // nil while crashed
	env         *env // the current incarnation's Env
	epoch       uint64
	incarnation uint64
	rng         *rand.Rand
	disk        *Disk
	out         map[transport.NodeID]*LinkStats // cache of s.links for messages from this node
}

func (n *simNode) up() bool { return n.inst != nil }

// Sim is a deterministic discrete-event simulator: nodes, virtual time and a
// faulty virtual network, all driven from the caller's goroutine. It is not
// safe for concurrent use.
type Sim struct {
	cfg    Config
	start  time.Time
	now    time.Duration // offset from start
	events netfault.Queue[event]
	rng    *rand.Rand // the network's random choices
	rules  netfault.Rules

	nodes  map[transport.NodeID]*simNode
	order  []*simNode           // in AddNode order, for deterministic iteration
	timers map[TimerID]*simNode // pending timers and their owners
	nextID TimerID

	running     bool          // inside Step, Run or RunUntil
	maxEvents   int64         // the event budget; 0 for none
	maxEventsAt int64         // the per-instant budget; 0 for none
	instant     time.Duration // the virtual time of the last event
	atInstant   int64         // events run at instant
	stopped     bool          // a budget was spent: process nothing more
	clocks      map[transport.NodeID]Clock

	stats Stats
	links map[netfault.Link]*LinkStats
	hash  traceHash
	trace []string
	errs  []error
}

// New returns a simulator with no nodes at virtual time cfg.Start.
func New(cfg Config) (*Sim, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Sim{
		cfg:    cfg,
		start:  cfg.Start,
		rng:    rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5eed)),
		nodes:  make(map[transport.NodeID]*simNode),
		timers: make(map[TimerID]*simNode),
		links:  make(map[netfault.Link]*LinkStats),
		hash:   newTraceHash(),
	}
	if s.start.IsZero() {
		s.start = defaultStart
	}
	switch {
	case cfg.MaxEvents == 0:
		s.maxEvents = DefaultMaxEvents
	case cfg.MaxEvents > 0:
		s.maxEvents = cfg.MaxEvents
	}
	switch {
	case cfg.MaxEventsPerInstant == 0:
		s.maxEventsAt = DefaultMaxEventsPerInstant
	case cfg.MaxEventsPerInstant > 0:
		s.maxEventsAt = cfg.MaxEventsPerInstant
	}
	if len(cfg.Clocks) > 0 {
		s.clocks = make(map[transport.NodeID]Clock, len(cfg.Clocks))
		for id, c := range cfg.Clocks {
			s.clocks[id] = c
		}
	}
	s.rules.Default = netfault.Faults(cfg.Faults)
	return s, nil
}

// Seed returns the seed the simulation was created with.
func (s *Sim) Seed() int64 {
	if s == nil || s.nodes == nil {
		return 0
	}
	return s.cfg.Seed
}

// Now returns the virtual time.
func (s *Sim) Now() time.Time {
	if s == nil || s.nodes == nil {
		return time.Time{}
	}
	return s.start.Add(s.now)
}

// Elapsed returns the virtual time since the simulation started.
func (s *Sim) Elapsed() time.Duration {
	if s == nil || s.nodes == nil {
		return 0
	}
	return s.now
}

// Stats returns the counters so far.
func (s *Sim) Stats() Stats {
	if s == nil || s.nodes == nil {
		return Stats{}
	}
	return s.stats
}

// LinkStats returns the counters of the directed link from -> to.
func (s *Sim) LinkStats(from, to transport.NodeID) LinkStats {
	if s == nil || s.nodes == nil {
		return LinkStats{}
	}
	if ls := s.links[netfault.Link{From: from, To: to}]; ls != nil {
		return *ls
	}
	return LinkStats{}
}

// Err returns the misuses recorded so far (an action naming an unknown node,
// invalid faults passed to SetFaults, a reentrant Run, a nil function),
// joined, or nil. Methods whose shape has no error result record them here
// instead of panicking.
func (s *Sim) Err() error {
	if s == nil || s.nodes == nil {
		return errZeroSim
	}
	return errors.Join(s.errs...)
}

func (s *Sim) fail(err error) {
	s.errs = append(s.errs, err)
	s.logf("sim: %v", err)
}

// AddNode adds a node and boots it at the current virtual time: factory is
// called for the first instance, and again at every Restart, and the
// instance's Start runs before AddNode returns.
func (s *Sim) AddNode(id transport.NodeID, factory func() Node) error {
	if s == nil || s.nodes == nil {
		return errZeroSim
	}
	switch {
	case s.nodes == nil:
		return fmt.Errorf("%w: Sim used without New", ErrInvalidConfig)
	case id == "":
		return fmt.Errorf("%w: empty node ID", ErrInvalidConfig)
	case factory == nil:
		return fmt.Errorf("%w: nil factory for node %q", ErrInvalidConfig, id)
	case s.nodes[id] != nil:
		return fmt.Errorf("%w: %q", ErrDuplicateNode, id)
	}
	n := &simNode{id: id, factory: factory}
	n.disk = newDisk(rand.New(rand.NewPCG(netfault.NodeSeed(s.cfg.Seed, id, 1<<63))))
	s.nodes[id] = n
	s.order = append(s.order, n)
	s.boot(n)
	return nil
}

// Nodes returns the IDs of every node added, in the order they were added.
func (s *Sim) Nodes() []transport.NodeID {
	if s == nil || s.nodes == nil {
		return nil
	}
	ids := make([]transport.NodeID, len(s.order))
	for i, n := range s.order {
		ids[i] = n.id
	}
	return ids
}

// Node returns the node's current instance, or nil while it is crashed (or
// if there is no such node).
func (s *Sim) Node(id transport.NodeID) Node {
	if s == nil || s.nodes == nil {
		return nil
	}
	if n := s.nodes[id]; n != nil {
		return n.inst
	}
	return nil
}

// Disk returns the disk of node id (nil if there is no such node), so a test
// can inspect or damage it, crashed or not.
func (s *Sim) Disk(id transport.NodeID) *Disk {
	if s == nil || s.nodes == nil {
		return nil
	}
	if n := s.nodes[id]; n != nil {
		return n.disk
	}
	return nil
}

func (s *Sim) lookup(id transport.NodeID, action string) *simNode {
	n := s.nodes[id]
	if n == nil {
		s.fail(fmt.Errorf("%w: %s(%q)", ErrUnknownNode, action, id))
	}
	return n
}

// boot starts a new incarnation of n.
func (s *Sim) boot(n *simNode) {
	n.epoch++
	n.incarnation++
	n.rng = rand.New(rand.NewPCG(netfault.NodeSeed(s.cfg.Seed, n.id, n.incarnation)))
	n.env = &env{s: s, n: n, epoch: n.epoch}
	n.inst = n.factory()
	s.record(evStart, n.id, "", "", nil, 0)
	if n.inst == nil {
		s.fail(fmt.Errorf("sim: factory of node %q returned nil", n.id))
		return
	}
	n.inst.Start(n.env)
}

// Crash stops node id: its instance is discarded, its timers and every
// message in flight to or from it are lost, and its disk loses what was not
// synced. Crashing a crashed node does nothing.
func (s *Sim) Crash(id transport.NodeID) {
	if s == nil || s.nodes == nil {
		return
	}
	n := s.lookup(id, "Crash")
	if n == nil || !n.up() {
		return
	}
	n.inst = nil
	n.epoch++ // invalidates its timers, in-flight messages and Env
	s.record(evCrash, id, "", "", nil, 0)
	n.disk.crash(s.cfg.TornWrites)
}

// Restart boots a new instance of node id from its factory and calls Start.
// Restarting a running node crashes it first.
func (s *Sim) Restart(id transport.NodeID) {
	if s == nil || s.nodes == nil {
		return
	}
	n := s.lookup(id, "Restart")
	if n == nil {
		return
	}
	if n.up() {
		s.Crash(id)
	}
	s.boot(n)
}

// Inject runs fn as node id at the current virtual time, as if the node had
// received a request from a local client. It does nothing if the node is
// crashed (check with Node(id) != nil).
func (s *Sim) Inject(id transport.NodeID, fn func(env Env)) {
	if s == nil || s.nodes == nil {
		return
	}
	if fn == nil {
		s.fail(fmt.Errorf("%w: Inject(%q, nil)", ErrInvalidArgument, id))
		return
	}
	n := s.lookup(id, "Inject")
	if n == nil {
		return
	}
	s.record(evInject, id, "", "", nil, 0)
	if !n.up() {
		return
	}
	fn(n.env)
}

// At schedules fn, a test action such as a crash or a partition, to run d of
// virtual time from now. A negative d means now.
func (s *Sim) At(d time.Duration, fn func()) {
	if s == nil || s.nodes == nil {
		return
	}
	if fn == nil {
		s.fail(fmt.Errorf("%w: At(%v, nil)", ErrInvalidArgument, d))
		return
	}
	s.schedule(s.now+max(d, 0), event{kind: evAction, fn: fn})
}

// SetFaults replaces the default faults of every link. Invalid faults are
// recorded (see Err) and ignored.
func (s *Sim) SetFaults(f Faults) {
	if s == nil || s.nodes == nil {
		return
	}
	if err := f.Validate(); err != nil {
		s.fail(err)
		return
	}
	s.rules.Default = netfault.Faults(f)
}

// SetLinkFaults makes messages from -> to suffer f instead of the default
// faults (one direction only). Invalid faults are recorded and ignored.
func (s *Sim) SetLinkFaults(from, to transport.NodeID, f Faults) {
	if s == nil || s.nodes == nil {
		return
	}
	if err := f.Validate(); err != nil {
		s.fail(err)
		return
	}
	s.rules.SetLinkFaults(netfault.Link{From: from, To: to}, netfault.Faults(f))
}

// ResetLinkFaults returns the link from -> to to the default faults.
func (s *Sim) ResetLinkFaults(from, to transport.NodeID) {
	if s == nil || s.nodes == nil {
		return
	}
	s.rules.ResetLinkFaults(netfault.Link{From: from, To: to})
}

// Partition splits the nodes into groups; nodes in different groups cannot
// talk, and messages already in flight between them are lost. Nodes named in
// no group form one more group together. It replaces any earlier partition.
func (s *Sim) Partition(groups ...[]transport.NodeID) {
	if s == nil || s.nodes == nil {
		return
	}
	s.rules.Partition(groups)
	s.record(evPartition, "", "", fmt.Sprint(groups), nil, 0)
}

// Cut stops messages from -> to (one way only) until Heal.
func (s *Sim) Cut(from, to transport.NodeID) {
	if s == nil || s.nodes == nil {
		return
	}
	s.rules.Cut(netfault.Link{From: from, To: to})
	s.record(evCut, from, to, "", nil, 0)
}

// Isolate cuts node id off from every other node, both ways, until Heal.
func (s *Sim) Isolate(id transport.NodeID) {
	if s == nil || s.nodes == nil {
		return
	}
	s.rules.Isolate(id)
	s.record(evIsolate, id, "", "", nil, 0)
}

// Heal removes the partition, every cut and every isolation. Faults stay.
func (s *Sim) Heal() {
	if s == nil || s.nodes == nil {
		return
	}
	s.rules.Heal()
	s.record(evHeal, "", "", "", nil, 0)
}

// schedule adds ev to the agenda, due at virtual time at.
func (s *Sim) schedule(at time.Duration, ev event) { s.events.Push(at, ev) }

// linkStats returns the counters of from -> to, creating them. Each node
// caches its outgoing links, so the hot path hashes one string, not two.
func (s *Sim) linkStats(from *simNode, to transport.NodeID) *LinkStats {
	if ls := from.out[to]; ls != nil {
		return ls
	}
	l := netfault.Link{From: from.id, To: to}
	ls := s.links[l]
	if ls == nil {
		ls = &LinkStats{}
		s.links[l] = ls
	}
	if from.out == nil {
		from.out = make(map[transport.NodeID]*LinkStats)
	}
	from.out[to] = ls
	return ls
}

// send is Env.Send for a live node.
func (s *Sim) send(from *simNode, to transport.NodeID, service string, payload []byte) {
	s.stats.Sent++
	ls := s.linkStats(from, to)
	ls.Sent++
	s.record(evSend, from.id, to, service, payload, 0)
	target := s.nodes[to]
	if target == nil || s.rules.Blocked(from.id, to) {
		s.stats.Dropped++
		ls.Dropped++
		s.record(evDrop, from.id, to, service, payload, 0)
		return
	}
	fate := netfault.Decide(s.rules.FaultsFor(from.id, to), s.rng)
	if fate.Copies == 0 {
		s.stats.Dropped++
		ls.Dropped++
		s.record(evDrop, from.id, to, service, payload, 0)
		return
	}
	if fate.Copies > 1 {
		s.stats.Duplicated++
		ls.Duplicated++
	}
	msg := transport.Message{From: from.id, To: to, Service: service, Payload: payload}
	for i := range fate.Copies {
		s.schedule(s.now+fate.Delays[i], event{
			kind: evDeliver, copy: i,
			node: target, epoch: target.epoch, from: from, fromEpoch: from.epoch, msg: msg, link: ls,
		})
	}
}

// Step processes the next event, advancing virtual time to it, and reports
// whether there was one. Events made stale by a crash or a cancelled timer
// are skipped without counting as a step.
func (s *Sim) Step() bool {
	if s == nil || s.nodes == nil {
		return false
	}
	if !s.enter("Step") {
		return false
	}
	defer s.leave()
	for s.events.Len() > 0 && !s.overBudget() {
		var ev event
		s.now, ev = s.events.Pop()
		if s.process(&ev) {
			return true
		}
	}
	return false
}

// Run advances virtual time by d, processing every event due until then.
func (s *Sim) Run(d time.Duration) {
	if s == nil || s.nodes == nil {
		return
	}
	if !s.enter("Run") {
		return
	}
	defer s.leave()
	end := s.now + max(d, 0)
	for at, ok := s.events.Next(); ok && at <= end; at, ok = s.events.Next() {
		if s.overBudget() {
			return
		}
		var ev event
		s.now, ev = s.events.Pop()
		s.process(&ev)
	}
	if !s.overTime(end) {
		s.now = end
	}
}

// RunUntil processes events until cond returns true, checking it before
// each event, or until limit of virtual time has passed. It reports whether
// cond became true; on false, virtual time has advanced by limit. A nil
// cond is recorded (see Err) and RunUntil returns false at once.
func (s *Sim) RunUntil(cond func() bool, limit time.Duration) bool {
	if s == nil || s.nodes == nil {
		return false
	}
	if cond == nil {
		s.fail(fmt.Errorf("%w: RunUntil(nil, %v)", ErrInvalidArgument, limit))
		return false
	}
	if !s.enter("RunUntil") {
		return false
	}
	defer s.leave()
	end := s.now + max(limit, 0)
	for !cond() {
		if s.overBudget() {
			return false
		}
		if at, ok := s.events.Next(); !ok || at > end {
			if s.overTime(end) {
				return false
			}
			s.now = end
			return cond()
		}
		var ev event
		s.now, ev = s.events.Pop()
		s.process(&ev)
	}
	return true
}

// enter guards against driving the simulation from inside an event (a node
// or an At action calling Run), which would run events out of order. It
// records the misuse and reports false.
func (s *Sim) enter(what string) bool {
	if s.running {
		s.fail(fmt.Errorf("%w: %s called from inside an event", ErrReentrant, what))
		return false
	}
	s.running = true
	return true
}

func (s *Sim) leave() { s.running = false }

// overBudget reports whether the simulation must stop before its next
// event: it already stopped, it spent its event budget, or the next event
// lies past its time budget. The first time, it records ErrBudget.
func (s *Sim) overBudget() bool {
	if s.stopped {
		return true
	}
	if s.maxEvents > 0 && int64(s.stats.Events) >= s.maxEvents {
		s.stop(fmt.Sprintf("%d events (Config.MaxEvents)", s.maxEvents))
		return true
	}
	at, ok := s.events.Next()
	if !ok {
		return false
	}
	if at != s.instant {
		s.instant, s.atInstant = at, 0
	}
	s.atInstant++
	if s.maxEventsAt > 0 && s.atInstant > s.maxEventsAt {
		s.stop(fmt.Sprintf("%d events at one instant (Config.MaxEventsPerInstant: virtual time stands still)", s.maxEventsAt))
		return true
	}
	return s.overTime(at)
}

// overTime reports whether virtual time at lies past the time budget,
// stopping the simulation if so.
func (s *Sim) overTime(at time.Duration) bool {
	if s.stopped {
		return true
	}
	if s.cfg.MaxTime > 0 && at > s.cfg.MaxTime {
		s.now = s.cfg.MaxTime
		s.stop(fmt.Sprintf("%v of virtual time (Config.MaxTime)", s.cfg.MaxTime))
		return true
	}
	return false
}

func (s *Sim) stop(what string) {
	s.stopped = true
	s.fail(fmt.Errorf("%w: seed %d spent %s at step %d, virtual time %v (a busy loop or a run that never settles; replay with DISTKIT_SEED=%d)",
		ErrBudget, s.cfg.Seed, what, s.stats.Events, s.now, s.cfg.Seed))
}

// Stopped reports whether the simulation spent a budget and stopped.
func (s *Sim) Stopped() bool {
	if s == nil || s.nodes == nil {
		return false
	}
	return s.stopped
}

// SetClock replaces node id's clock with c (see Clock): its reading jumps
// to what c gives for the current virtual time, as a clock stepped by an
// operator or NTP would, and the node's pending timers keep their virtual
// deadlines. An invalid clock is recorded (see Err) and ignored.
func (s *Sim) SetClock(id transport.NodeID, c Clock) {
	if s == nil || s.nodes == nil {
		return
	}
	if err := c.Validate(); err != nil {
		s.fail(fmt.Errorf("%w (node %q)", err, id))
		return
	}
	if s.clocks == nil {
		s.clocks = make(map[transport.NodeID]Clock)
	}
	s.clocks[id] = c
}

// Clock returns node id's clock (the zero Clock unless one was given).
func (s *Sim) Clock(id transport.NodeID) Clock {
	if s == nil || s.nodes == nil {
		return Clock{}
	}
	return s.clocks[id]
}

// LocalTime returns what node id's clock reads now.
func (s *Sim) LocalTime(id transport.NodeID) time.Time {
	if s == nil || s.nodes == nil {
		return time.Time{}
	}
	return s.start.Add(s.clocks[id].local(s.now))
}

// VirtualTime returns the virtual time at which node id's clock reads
// local (the clock as it is now, extrapolated), so a test can compare
// instants that nodes measured on their own clocks.
func (s *Sim) VirtualTime(id transport.NodeID, local time.Time) time.Time {
	if s == nil || s.nodes == nil {
		return time.Time{}
	}
	c := s.clocks[id]
	d := local.Sub(s.start) - c.Offset
	return s.start.Add(time.Duration(float64(d) / (1 + c.Drift)))
}

// process runs one event and reports whether it was live.
func (s *Sim) process(ev *event) bool {
	switch ev.kind {
	case evAction:
		s.stats.Events++
		s.record(evRunAction, "", "", "", nil, 0)
		ev.fn()
		return true
	case evTimer:
		if _, ok := s.timers[ev.timer]; !ok {
			return false // cancelled
		}
		delete(s.timers, ev.timer)
		n := ev.node
		if n.epoch != ev.epoch || !n.up() {
			return false // the node crashed after setting it
		}
		s.stats.Events++
		s.stats.Timers++
		s.record(evFire, n.id, "", ev.name, nil, uint64(ev.timer))
		n.inst.Timer(n.env, ev.timer, ev.name)
		return true
	case evDeliver:
		s.stats.Events++
		m, ls, n := ev.msg, ev.link, ev.node
		senderGone := ev.from.epoch != ev.fromEpoch && !s.cfg.DeliverAfterSenderCrash
		if n.epoch != ev.epoch || !n.up() || senderGone || s.rules.Blocked(m.From, m.To) {
			// §fault model: a crash loses what is in flight to and from the
			// node, and a partition loses what is in flight across it.
			s.stats.Dropped++
			ls.Dropped++
			s.record(evDrop, m.From, m.To, m.Service, m.Payload, uint64(ev.copy))
			return true
		}
		s.stats.Delivered++
		ls.Delivered++
		s.record(evDeliverMsg, m.From, m.To, m.Service, m.Payload, uint64(ev.copy))
		n.inst.Receive(n.env, m)
		return true
	}
	return false
}

// env is the Env of one incarnation of one node.
type env struct {
	s     *Sim
	n     *simNode
	epoch uint64
}

func (e *env) live() bool { return e.n.epoch == e.epoch && e.n.up() }

func (e *env) ID() transport.NodeID { return e.n.id }
func (e *env) Now() time.Time       { return e.s.LocalTime(e.n.id) }
func (e *env) Rand() *rand.Rand     { return e.n.rng }
func (e *env) Disk() *Disk          { return e.n.disk }

func (e *env) Send(to transport.NodeID, service string, payload []byte) {
	if !e.live() {
		return
	}
	e.s.send(e.n, to, service, payload)
}

func (e *env) SetTimer(d time.Duration, name string) TimerID {
	if !e.live() {
		return 0
	}
	s := e.s
	s.nextID++
	id := s.nextID
	s.timers[id] = e.n
	d = s.clocks[e.n.id].virtualFor(max(d, 0))
	s.schedule(s.now+d, event{kind: evTimer, node: e.n, epoch: e.epoch, timer: id, name: name})
	s.record(evSetTimer, e.n.id, "", name, nil, uint64(id))
	return id
}

func (e *env) CancelTimer(id TimerID) {
	// Only the owner may cancel: a timer ID from another node is ignored.
	if owner, ok := e.s.timers[id]; ok && owner == e.n {
		delete(e.s.timers, id)
		e.s.record(evCancelTimer, e.n.id, "", "", nil, uint64(id))
	}
}

func (e *env) Logf(format string, args ...any) {
	if e.s.cfg.Logf == nil && !e.s.cfg.Trace {
		return
	}
	line := fmt.Sprintf("%v %s: %s", e.s.now, e.n.id, fmt.Sprintf(format, args...))
	if e.s.cfg.Trace {
		e.s.trace = append(e.s.trace, line)
	}
	if e.s.cfg.Logf != nil {
		e.s.cfg.Logf("%s", line)
	}
}

func (s *Sim) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

// errZeroSim is what the methods of a nil or zero Sim report: make one with
// New. Its other methods do nothing and report zero values.
var errZeroSim = fmt.Errorf("%w: Sim used without New", ErrInvalidConfig)
