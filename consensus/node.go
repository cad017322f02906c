package consensus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/internal/vfs"
	"github.com/distkit/distkit/transport"
)

// maxQueuedMessages bounds the received messages waiting for the loop.
// Beyond it messages are dropped (Raft retransmits), so a flood from peers
// cannot grow the node's memory without bound.
const maxQueuedMessages = 8192

// Status is a snapshot of a Node's state.
type Status struct {
	// Status is the core's view: role, term, leader, commit and applied
	// index, log bounds, membership and, on a leader, each follower's
	// replication progress.
	raft.Status
	// PendingProposals counts the proposals this node accepted that are not
	// applied yet.
	PendingProposals int
	// ClusterID is the cluster this node belongs to (see ClusterID).
	ClusterID ClusterID
	// DroppedForeign counts the messages dropped because they carried
	// another cluster's ID: a node configured with other peers or another
	// ClusterName is talking to this one.
	DroppedForeign uint64
	// DroppedNonMember counts the messages of this cluster dropped because
	// their sender is not a member.
	DroppedNonMember uint64
	// DroppedMalformed counts the messages dropped because they could not
	// be decoded or were misaddressed.
	DroppedMalformed uint64
	// DroppedQueueFull counts the received messages dropped because the
	// node's queue was full (its loop is behind); DroppedSendFailed the
	// messages the transport refused to send.
	DroppedQueueFull  uint64
	DroppedSendFailed uint64
	// LastSaveDuration is how long the last Save that wrote to disk took:
	// a Ready's new entries, or a new term or vote (one fsync, for a
	// durable node; a commit index alone is saved lazily and not counted).
	// SaveLatency counts every such Save, ApplyLatency every batch of
	// committed entries applied to the StateMachine (a Ready's, or the
	// part of it applied before its fsync): latency per batch, not per
	// entry.
	LastSaveDuration time.Duration
	SaveLatency      Histogram
	ApplyLatency     Histogram
	// SnapshotsTaken counts the snapshots of this node's state machine
	// recorded in storage; SnapshotsSent the snapshot transfers this node
	// started as leader (a restarted transfer counts again) and
	// SnapshotChunksSent their chunks; SnapshotsInstalled the snapshots
	// received from a leader and installed. See also Metrics.
	SnapshotsTaken     uint64
	SnapshotsSent      uint64
	SnapshotChunksSent uint64
	SnapshotsInstalled uint64
	// Err is the failure that stopped the node (a storage error), if any.
	Err error
}

// Node runs one member of a Raft cluster: the deterministic core
// (consensus/raft) driven by one goroutine over a transport, durable
// storage and real timers, applying committed commands to a StateMachine.
// See the package documentation.
type Node struct {
	cfg    Config
	tr     transport.Transport
	sm     StateMachine
	store  nodeStorage
	logger *slog.Logger

	// clusterID is stamped on every message sent and required of every
	// message received (the nodes messages are accepted from are the
	// runtime's knownMember set).
	clusterID ClusterID

	// Counters of dropped messages, written by the transport's handler.
	droppedForeign, droppedNonMember, droppedMalformed atomic.Uint64

	// obs keeps the figures Status reports and calls Config.Metrics
	// (metrics.go).
	obs observer

	// proposals recycles proposals and their result channels: two
	// allocations per Propose on the hot path. It is per Node, not global,
	// so that a channel made inside one testing/synctest bubble is never
	// used outside it.
	proposals sync.Pool

	// bounds answers the proposals whose attempt bound passes (attempt.go).
	bounds attemptBounds

	// propMu guards props, closed, closedErr and part of bounds.
	propMu    sync.Mutex
	props     []*proposal
	closed    bool
	closedErr error         // what Propose returns once closed
	propSig   chan struct{} // size 1: coalesced wake-up for queued proposals

	// msgMu guards msgs.
	msgMu  sync.Mutex
	msgs   []raft.Message
	msgSig chan struct{} // size 1: coalesced wake-up for received messages

	statusc chan chan Status
	stopc   chan struct{}
	donec   chan struct{}
	stop    sync.Once

	// quitc is closed when the loop exits (Close, or a failure): the
	// snapshot goroutine's writes then fail.
	quitc chan struct{}
	// snapc carries the outcome of the background snapshot (size 1: one
	// snapshot is in flight at most, and its goroutine must never wait for
	// a loop that may be exiting). snapWG counts that goroutine.
	snapc  chan snapResult
	snapWG sync.WaitGroup

	// Owned by the run goroutine.
	core    *raft.RawNode
	waiters map[uint64]*proposal // by log index
	applied uint64
	leader  transport.NodeID
	role    raft.Role
	term    uint64 // the term of the last HardState seen
	// lastIndex is the last index of the log as of the last Ready, to
	// notice when a Ready overwrites entries.
	lastIndex uint64
	answered  int    // proposals answered since the loop last yielded
	ticks     uint64 // ticks since start
	orphans   int    // waiters whose entry left the log (orphanedAt != 0)
	snapping  bool   // a background snapshot is in flight
	snapPol   snapPolicy
	final     Status // the status at exit, served after Close
	failure   error  // the error that stopped the loop
	spare     []raft.Message
	spareP    []*proposal

	// rt serves leadership notifications, reads, transfers and membership
	// changes (hooks.go).
	rt runtimeState
	// reads serves Read outside the loop (read.go).
	reads readState
}

// proposal is one Propose call waiting for its command to be applied.
type proposal struct {
	// ctx is the caller's: a proposal whose caller gave up before the loop
	// took it from the queue is not proposed (see proposeQueued).
	ctx   context.Context
	cmd   []byte
	term  uint64
	index uint64
	done  chan result // size 1: the loop never blocks on a departed caller
	// orphanedAt is 1 + the tick at which a new leader removed the entry
	// from this node's log (0 while it is in the log). See dropOverwritten.
	orphanedAt uint64
	// word is the proposal's state and use count, bound its attempt bound
	// (0: none); both are shared with the bound sweeper (attempt.go).
	word  atomic.Uint64
	bound atomic.Int64
	// listed reports whether the bound sweeper's record holds the
	// proposal (guarded by Node.propMu): a pooled proposal is recorded
	// once, whatever the number of its uses (attempt.go).
	listed bool
}

type result struct {
	val any
	err error
}

// New starts a node. With cfg.DataDir set, it restarts from the state found
// there (restoring the state machine from the latest snapshot) or
// bootstraps a new member of the cluster cfg.Peers; without, it starts
// empty in memory. The node registers cfg.Service on tr; the caller keeps
// ownership of tr and closes it after the node.
func New(cfg Config, tr transport.Transport, sm StateMachine) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if isNil(tr) || isNil(sm) {
		return nil, fmt.Errorf("%w: nil transport or state machine", ErrInvalidConfig)
	}
	if tr.ID() != cfg.ID {
		return nil, fmt.Errorf("%w: transport is %q but ID is %q", ErrInvalidConfig, tr.ID(), cfg.ID)
	}
	var store nodeStorage
	if cfg.DataDir != "" {
		fsys := vfs.Or(cfg.FS)
		// The lock first: a second process pointed at this directory
		// must not write its identity into it before it finds the
		// directory in use.
		lock, err := lockDir(fsys, cfg.DataDir)
		if err != nil {
			return nil, err
		}
		if _, err := loadIdentity(fsys, cfg.DataDir, &cfg); err != nil {
			lock.Close()
			return nil, err
		}
		ds, err := openLocked(fsys, cfg.DataDir, DiskOptions{RetainEntries: cfg.SnapshotRetainEntries, Logger: cfg.Logger, FS: fsys})
		if err != nil {
			lock.Close()
			return nil, err
		}
		ds.lock = lock
		store = ds
	} else {
		store = &memStorage{MemoryStorage: raft.NewMemoryStorage(), retain: cfg.SnapshotRetainEntries}
	}
	n, err := newNode(cfg, tr, sm, store)
	if err != nil {
		store.Close()
		return nil, err
	}
	return n, nil
}

// isNil reports whether v is nil or an interface holding a nil pointer,
// map, func or channel: a typed nil would panic on first use, on the
// node's goroutine where the caller cannot recover from it.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Func, reflect.Chan, reflect.Slice, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

func newNode(cfg Config, tr transport.Transport, sm StateMachine, store nodeStorage) (*Node, error) {
	snap, err := store.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("consensus: read snapshot: %w", err)
	}
	var snapSize uint64 // the restored snapshot's size, for the snapshot policy
	if !snap.IsZero() {
		if snapSize, err = restoreSnapshot(sm, store, snap); err != nil {
			return nil, fmt.Errorf("consensus: restore state machine from snapshot %d: %w", snap.Meta.Index, err)
		}
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	rc := raft.DefaultConfig()
	rc.ID = cfg.ID
	rc.Peers = cfg.Peers
	if cfg.Join {
		rc.Peers, rc.Join = nil, true // Peers name the cluster; the leader tells the membership
	}
	rc.LeaseReads = cfg.LeaseReads
	rc.LeaseDriftTicks = cfg.LeaseDriftTicks
	if cfg.CheckQuorumTicks > 0 {
		rc.CheckQuorumTicks = cfg.CheckQuorumTicks
	}
	rc.Storage = store
	rc.Applied = snap.Meta.Index
	rc.ElectionTicks = cfg.ElectionTicks
	rc.HeartbeatTicks = cfg.HeartbeatTicks
	rc.MaxInflightMsgs = cfg.MaxInflightMsgs
	rc.MaxMsgBytes = cfg.MaxMsgBytes
	rc.MaxInflightBytes = cfg.MaxInflightBytes
	rc.MaxUncommittedBytes = cfg.MaxUncommittedBytes
	rc.PreVote = cfg.PreVote
	rc.CheckQuorum = cfg.CheckQuorum
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.Seed = seed
	rc.Logger = cfg.Logger
	core, err := raft.NewRawNode(rc)
	if err != nil {
		return nil, fmt.Errorf("consensus: %w", err)
	}
	n := &Node{
		cfg:       cfg,
		tr:        tr,
		sm:        sm,
		store:     store,
		logger:    cfg.Logger,
		clusterID: deriveClusterID(cfg.ClusterName, cfg.Peers),
		propSig:   make(chan struct{}, 1),
		msgSig:    make(chan struct{}, 1),
		statusc:   make(chan chan Status),
		stopc:     make(chan struct{}),
		donec:     make(chan struct{}),
		quitc:     make(chan struct{}),
		snapc:     make(chan snapResult, 1),
		core:      core,
		waiters:   make(map[uint64]*proposal),
		applied:   snap.Meta.Index,
	}
	n.obs.metrics = cfg.Metrics
	// A restarted node knows its last snapshot's size, so a large state is
	// not rewritten SnapshotThreshold entries after every start.
	n.snapPol.lastSize = snapSize
	n.proposals.New = func() any { return &proposal{done: make(chan result, 1)} }
	n.bounds.epoch = time.Now()
	n.bounds.timer = time.AfterFunc(time.Hour, n.sweepBounds)
	n.bounds.timer.Stop()
	n.rt.init(nil)
	n.reads.init(cfg, n.applied)
	n.refreshMembers()
	if n.lastIndex, err = store.LastIndex(); err != nil {
		return nil, fmt.Errorf("consensus: read last index: %w", err)
	}
	n.startSnapStream() // snapstream.go
	tr.Handle(cfg.Service, n.receive)
	go n.run()
	return n, nil
}

// errNotStarted is what every method of a Node not built by New (the zero
// value or a nil pointer) reports, instead of panicking or hanging.
var errNotStarted = fmt.Errorf("%w: Node not created by New", ErrClosed)

// started reports whether n was built by New.
func (n *Node) started() bool { return n != nil && n.donec != nil }

// ID returns the node's ID ("" for a Node not created by New).
func (n *Node) ID() transport.NodeID {
	if n == nil {
		return ""
	}
	return n.cfg.ID
}

// Propose replicates cmd and returns the state machine's result of applying
// it, once it is committed and applied on this node. Propose copies cmd.
//
// On a node that is not the leader it fails at once with an error matching
// ErrNotLeader, a *raft.NotLeaderError naming the leader if known. Other
// failures: ErrTooLarge, ErrClosed (nothing was proposed), ErrProposalLost
// (another entry committed in its place: not applied, safe to retry),
// ErrOutcomeUnknown (a new leader overwrote it here and its index was not
// applied within two election timeouts), ErrStopped (the node stopped first: outcome unknown),
// raft.ErrProposalDropped
// (flow control: retry later), or ctx's error (outcome unknown; but a
// command whose ctx ended before the node's loop took it from its queue is
// never proposed).
func (n *Node) Propose(ctx context.Context, cmd []byte) (any, error) {
	if !n.started() {
		return nil, errNotStarted
	}
	if ctx == nil {
		return nil, ErrNilContext
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("consensus: propose: %w", err)
	}
	return n.propose(ctx, cmd, false, time.Time{}) // attempt.go: checks the command's size
}

// Status returns the node's current state. After Close it returns the
// state at the moment the node stopped. Like Propose, it must not be called
// from the StateMachine's methods, which run on the node's own goroutine.
func (n *Node) Status() Status {
	if !n.started() {
		return Status{Err: errNotStarted}
	}
	reply := make(chan Status, 1)
	select {
	case n.statusc <- reply:
		return <-reply
	case <-n.donec:
		return n.final
	}
}

// Close stops the node: pending proposals fail with ErrStopped, the loop
// exits, the storage is closed and the service is unregistered from the
// transport. Close waits for all of it and is idempotent. It returns the
// error that had stopped the node earlier, if any.
func (n *Node) Close() error {
	if !n.started() {
		return errNotStarted
	}
	n.stop.Do(func() {
		n.propMu.Lock()
		if !n.closed {
			n.closed, n.closedErr = true, ErrClosed
		}
		n.propMu.Unlock()
		close(n.stopc)
	})
	<-n.donec
	return n.final.Err
}

// receive is the transport handler: check the envelope, decode, queue,
// wake the loop.
func (n *Node) receive(msg transport.Message) {
	cid, body, err := openEnvelope(msg.Payload)
	if err != nil {
		n.droppedMalformed.Add(1)
		n.obs.dropped(DropMalformed)
		n.debug("dropping malformed message", "from", msg.From, "err", err)
		return
	}
	if cid != n.clusterID {
		// Another cluster's member, or a member of this one started with
		// another peer list: acting on it could elect two leaders.
		n.obs.dropped(DropForeignCluster)
		if n.droppedForeign.Add(1) == 1 && n.logger != nil {
			n.logger.Warn("consensus: dropping messages from another cluster (is every member given the same Peers and ClusterName?)",
				"node", n.cfg.ID, "from", msg.From, "theirCluster", cid, "ourCluster", n.clusterID)
		}
		return
	}
	if !n.knownMember(msg.From) {
		n.droppedNonMember.Add(1)
		n.obs.dropped(DropNonMember)
		n.debug("dropping message from a non-member", "from", msg.From)
		return
	}
	var m raft.Message
	if err := m.Unmarshal(body); err != nil {
		n.droppedMalformed.Add(1)
		n.obs.dropped(DropMalformed)
		n.debug("dropping malformed message", "from", msg.From, "err", err)
		return
	}
	if m.From != msg.From || m.To != n.cfg.ID {
		n.droppedMalformed.Add(1)
		n.obs.dropped(DropMalformed)
		n.debug("dropping misaddressed message", "from", msg.From, "claims", m.From, "to", m.To)
		return
	}
	n.msgMu.Lock()
	if len(n.msgs) >= maxQueuedMessages {
		n.msgMu.Unlock()
		n.obs.queueFull.Add(1)
		n.obs.dropped(DropQueueFull)
		return
	}
	n.msgs = append(n.msgs, m)
	n.msgMu.Unlock()
	select {
	case n.msgSig <- struct{}{}:
	default:
	}
}

func (n *Node) debug(msg string, args ...any) {
	if n.logger != nil {
		n.logger.Debug("consensus: "+msg, append([]any{"node", n.cfg.ID}, args...)...)
	}
}

// run is the node's one goroutine: it owns the core, the waiters and the
// state machine.
func (n *Node) run() {
	defer close(n.donec)
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
			n.ticks++
			n.reads.recordTick(n.ticks) // read.go: lease time
			n.core.Tick()
			if n.orphans > 0 {
				n.expireOrphans()
			}
			n.onTick()
		case f := <-n.rt.reqc:
			n.serveRequests(f) // reads, transfers, membership changes (hooks.go)
		case <-n.msgSig:
		case <-n.propSig:
		case reply := <-n.statusc:
			reply <- n.status()
			continue
		case res := <-n.snapc:
			if err := n.finishSnapshot(res); err != nil {
				n.fail(err)
				return
			}
			continue
		case <-n.stopc:
			n.shutdown(ErrStopped)
			return
		}
		// Drain both queues whatever woke us: everything that arrived
		// during the last fsync goes into one Ready (batching).
		n.checkLease() // read.go: before any read is answered off the lease
		n.stepMessages()
		n.proposeQueued()
		n.issueQueuedReads() // read.go
		if err := n.handleReadies(); err != nil {
			n.fail(err)
			return
		}
		n.publishReads() // read.go
		if n.answered > 0 {
			// Let the proposers just answered run before this loop does
			// again. Each woken proposer sits in the scheduler's runnext
			// slot; without a yield, the loop and the latest proposer
			// ping-pong through that slot and the others starve for up to
			// a whole time slice (10 ms), the p99 of a busy leader. After
			// the yield they all propose again and land in one batch.
			n.answered = 0
			runtime.Gosched()
		}
	}
}

// fail stops the node after a failure (storage): it is reported by
// Status, Close and every later Propose.
func (n *Node) fail(err error) {
	n.failure = err
	if n.logger != nil {
		n.logger.Error("consensus: node stopped", "node", n.cfg.ID, "err", err)
	}
	n.shutdown(err)
}

func (n *Node) stepMessages() {
	n.msgMu.Lock()
	msgs := n.msgs
	n.msgs = n.spare[:0]
	n.msgMu.Unlock()
	for i := range msgs {
		if err := n.core.Step(msgs[i]); err != nil && !errors.Is(err, raft.ErrStorage) {
			n.debug("step", "type", msgs[i].Type, "from", msgs[i].From, "err", err)
		}
		msgs[i] = raft.Message{}
	}
	n.spare = msgs[:0]
}

func (n *Node) proposeQueued() {
	n.propMu.Lock()
	props := n.props
	n.props = n.spareP[:0]
	n.propMu.Unlock()
	for i, p := range props {
		props[i] = nil
		stampSessionTime(n.sm, p.cmd, i == 0) // sessions.go: the leader's clock into session commands
		if p.abandoned() {
			continue // its attempt bound passed: the caller has gone
		}
		if err := p.ctx.Err(); err != nil {
			// The caller has gone with a context error (outcome unknown to
			// it); not proposing keeps a backlog of timed-out callers from
			// filling the log with work nobody waits for.
			p.answer(result{err: fmt.Errorf("consensus: propose: %w", err)})
			continue
		}
		index, term, err := n.core.Propose(p.cmd)
		if err != nil {
			// ErrNotLeader (a *raft.NotLeaderError) or ErrProposalDropped.
			p.answer(result{err: fmt.Errorf("consensus: propose: %w", err)})
			continue
		}
		// An older proposal waiting on this index was overwritten (the
		// truncation check in handleReadies normally catches it first).
		if old := n.waiters[index]; old != nil {
			n.resolve(index, old, result{err: ErrOutcomeUnknown})
		}
		p.index, p.term = index, term
		n.waiters[index] = p
	}
	n.spareP = props[:0]
}

// handleReadies performs the duties of every pending Ready, in the order
// the core's documentation requires: persist, then send, then apply.
func (n *Node) handleReadies() error {
	for n.core.HasReady() {
		rd, err := n.core.Ready()
		if err != nil {
			return err
		}
		leaderChanged := false
		if rd.SoftState != nil {
			n.role = rd.SoftState.Role
			if rd.SoftState.Leader != n.leader {
				n.leader, leaderChanged = rd.SoftState.Leader, true
				if n.logger != nil {
					n.logger.Info("consensus: leader changed", "node", n.cfg.ID, "leader", n.leader, "role", n.role)
				}
			}
		}
		termChanged := !rd.HardState.IsZero() && rd.HardState.Term != n.term
		if !rd.HardState.IsZero() {
			n.term = rd.HardState.Term
		}
		if leaderChanged {
			n.obs.leaderChanged(n.leader, n.term)
		}
		n.onReady(&rd, termChanged)
		n.publishReads() // read.go: before anything is sent or acknowledged
		msgs := rd.Messages
		if n.role == raft.Leader && rd.SoftState == nil && !termChanged {
			// Thesis §10.2.1: a leader may replicate to its followers in
			// parallel with writing to its own disk. Safe because an entry
			// commits only when the loop processes acknowledgements, which
			// happens after this Ready's fsync has returned: by then the
			// leader's copy is durable too. Anything else (votes, responses)
			// still waits for the fsync.
			msgs = n.sendReplication(msgs)
		}
		if rd.Snapshot != nil {
			if err := n.installSnapshot(*rd.Snapshot); err != nil {
				return err
			}
			n.obs.snapshot(SnapshotInstalled, rd.Snapshot.Meta.Index)
		}
		// Committed entries that an earlier Ready already persisted can be
		// applied (and their proposers answered) before this Ready's fsync:
		// they are durable on a majority. This takes one fsync off the
		// commit latency of a busy leader, whose every Ready carries new
		// entries.
		early := rd.CommittedEntries
		if len(rd.Entries) > 0 {
			early = committedBefore(early, rd.Entries[0].Index)
		}
		n.apply(early)
		if len(rd.Entries) > 0 {
			if rd.Entries[0].Index <= n.lastIndex {
				n.dropOverwritten(rd.Entries)
			}
			n.lastIndex = rd.Entries[len(rd.Entries)-1].Index
		}
		saveStart := n.obs.startSave(&rd)
		if err := n.store.Save(rd.HardState, rd.Entries); err != nil {
			return fmt.Errorf("consensus: persist: %w", err)
		}
		if !saveStart.IsZero() {
			n.obs.saved(time.Since(saveStart), len(rd.Entries))
		}
		n.send(msgs)
		n.apply(rd.CommittedEntries[len(early):])
		if rd.Snapshot != nil {
			n.snapPol.installed()
		}
		n.snapPol.applied(rd.CommittedEntries)
		if rd.SnapshotDue {
			if err := n.snapshot(); err != nil {
				return err
			}
		}
		n.core.Advance(rd)
		n.afterReady(&rd)
	}
	return nil
}

func (n *Node) installSnapshot(snap raft.Snapshot) error {
	// The core hands over only snapshots past its commit index, so the
	// storage's own snapshot (never past the applied index) is older. If it
	// were not (ErrSnapshotOutOfDate), restoring the state machine would
	// take it back in time: stop instead.
	if err := n.store.ApplySnapshot(snap); err != nil {
		return fmt.Errorf("consensus: install snapshot %d: %w", snap.Meta.Index, err)
	}
	size, err := restoreSnapshot(n.sm, n.store, snap) // streamed from the file (snapstream.go)
	if err != nil {
		return fmt.Errorf("consensus: restore snapshot %d: %w", snap.Meta.Index, err)
	}
	n.snapPol.lastSize = size
	n.applied = snap.Meta.Index
	n.lastIndex = snap.Meta.Index
	// The snapshot replaced the whole log: whether the proposals waiting
	// here were committed as proposed, the snapshot does not say.
	for index, p := range n.waiters {
		n.resolve(index, p, result{err: fmt.Errorf("%w: log replaced by a snapshot", ErrOutcomeUnknown)})
	}
	if n.logger != nil {
		n.logger.Info("consensus: installed snapshot", "node", n.cfg.ID, "index", snap.Meta.Index)
	}
	return nil
}

// sendReplication sends the leader's replication messages (appends,
// heartbeats, snapshot chunks) and returns the others, in order.
func (n *Node) sendReplication(msgs []raft.Message) []raft.Message {
	rest := msgs[:0:0]
	for i := range msgs {
		switch msgs[i].Type {
		case raft.MsgApp, raft.MsgHeartbeat, raft.MsgSnap:
			n.send(msgs[i : i+1])
		default:
			rest = append(rest, msgs[i])
		}
	}
	return rest
}

func (n *Node) send(msgs []raft.Message) {
	n.reportSnapshotStreams() // snapstream.go
	for i := range msgs {
		m := &msgs[i]
		payload := make([]byte, 0, envelopeHeaderSize+m.Size())
		payload, err := m.MarshalAppend(appendEnvelopeHeader(payload, n.clusterID))
		if err != nil {
			n.debug("marshal", "type", m.Type, "err", err)
			continue
		}
		if m.Type == raft.MsgSnap && n.streamSnapshot(m, payload) {
			continue // the snapshot file follows it over the stream
		}
		// Send only queues (it never blocks for long); a failure is a lost
		// message, which Raft tolerates, but the leader learns of it so it
		// can stop pipelining into the void.
		err = n.tr.Send(context.Background(), m.To, n.cfg.Service, payload)
		n.obs.sent(m, err)
		if err != nil {
			switch m.Type {
			case raft.MsgApp:
				n.core.ReportUnreachable(m.To)
			case raft.MsgSnap:
				n.core.ReportSnapshot(m.To, err)
			}
		}
	}
}

// dropOverwritten notes the proposals whose entries ents overwrite or
// truncate away (§5.3: a follower's conflicting suffix is replaced by the
// leader's entries). Such a proposal is not necessarily lost: another node
// may still hold its entry and commit it (Figure 8). So it keeps waiting
// for its index to be applied, which settles it either way, but only for a
// bounded time (expireOrphans): its index may not be reached again soon.
func (n *Node) dropOverwritten(ents []raft.Entry) {
	first, last := ents[0].Index, ents[len(ents)-1].Index
	for index, p := range n.waiters {
		if p.orphanedAt != 0 || index < first || (index <= last && ents[index-first].Term == p.term) {
			continue
		}
		p.orphanedAt = n.ticks + 1
		n.orphans++
	}
}

// expireOrphans fails, with ErrOutcomeUnknown, the orphaned proposals whose
// index was not applied within two election timeouts.
func (n *Node) expireOrphans() {
	limit := uint64(2 * n.cfg.ElectionTicks)
	for index, p := range n.waiters {
		if p.orphanedAt != 0 && n.ticks+1-p.orphanedAt >= limit {
			n.resolve(index, p, result{err: ErrOutcomeUnknown})
		}
	}
}

// resolve answers the proposal waiting at index and forgets it.
func (n *Node) resolve(index uint64, p *proposal, r result) {
	delete(n.waiters, index)
	if p.orphanedAt != 0 {
		n.orphans--
	}
	n.answered++
	p.answer(r)
}

// committedBefore returns the prefix of ents with indices below index.
func committedBefore(ents []raft.Entry, index uint64) []raft.Entry {
	i := 0
	for i < len(ents) && ents[i].Index < index {
		i++
	}
	return ents[:i]
}

func (n *Node) apply(ents []raft.Entry) {
	if len(ents) == 0 {
		return
	}
	start := time.Now()
	for i := range ents {
		e := &ents[i]
		var val any
		if e.Type == raft.EntryNormal {
			val = n.sm.Apply(Entry{Index: e.Index, Term: e.Term, Command: e.Data})
		}
		n.applied = e.Index
		if e.Type == raft.EntryConfChange {
			n.appliedConfChange(e) // the core applied it; the state machine skips it
		}
		p := n.waiters[e.Index]
		if p == nil {
			continue
		}
		if p.term == e.Term && e.Type == raft.EntryNormal {
			n.resolve(e.Index, p, result{val: val})
		} else {
			n.resolve(e.Index, p, result{err: ErrProposalLost})
		}
	}
	n.obs.applied(len(ents), time.Since(start))
}

// snapshot snapshots the state machine as of n.applied and compacts the
// log, unless the snapshot policy defers it (Config.SnapshotLogPercent) or
// one is still being written. A state machine that offers a view
// (SnapshotViewer) is written out by a goroutine of its own
// (writeSnapshot, then finishSnapshot on the loop); any other is written
// here, on the loop.
func (n *Node) snapshot() error {
	if n.snapping {
		// The previous one is still being written; the core asks again
		// SnapshotThreshold entries later.
		n.debug("snapshot skipped: the previous one is still being written", "index", n.applied)
		return nil
	}
	if !n.snapPol.due(n.cfg.SnapshotLogPercent) {
		n.debug("snapshot deferred: too few command bytes since the last one", "index", n.applied,
			"bytes", n.snapPol.logBytes, "last", n.snapPol.lastSize, "deferred", n.snapPol.deferred)
		return nil
	}
	if v, ok := n.sm.(SnapshotViewer); ok {
		view, err := v.SnapshotView()
		if err == nil && isNil(view) {
			err = errors.New("nil view")
		}
		if err != nil {
			if n.logger != nil {
				n.logger.Warn("consensus: state machine snapshot view failed; snapshot skipped", "node", n.cfg.ID, "index", n.applied, "err", err)
			}
			return nil
		}
		m, err := n.core.MembershipAt(n.applied)
		if err != nil {
			view.Release()
			return fmt.Errorf("consensus: snapshot membership at %d: %w", n.applied, err)
		}
		n.snapping = true
		n.snapPol.started()
		n.snapWG.Add(1)
		go n.writeSnapshot(view, n.applied, m)
		return nil
	}
	var buf bytes.Buffer
	if err := n.sm.Snapshot(&buf); err != nil {
		return fmt.Errorf("consensus: snapshot state machine: %w", err)
	}
	n.snapPol.started()
	m, err := n.core.MembershipAt(n.applied)
	if err != nil {
		return fmt.Errorf("consensus: snapshot membership at %d: %w", n.applied, err)
	}
	if _, err := n.store.CreateSnapshot(n.applied, m, buf.Bytes()); err != nil &&
		!errors.Is(err, raft.ErrSnapshotOutOfDate) {
		return fmt.Errorf("consensus: save snapshot at %d: %w", n.applied, err)
	}
	n.snapPol.finished(uint64(buf.Len()), true)
	n.obs.snapshot(SnapshotTaken, n.applied)
	n.debug("snapshot", "index", n.applied, "bytes", buf.Len())
	return nil
}

// snapResult is the outcome of a background snapshot.
type snapResult struct {
	index uint64
	m     raft.Membership
	// Either commit (a snapshotStreamer staged the file) or data (the
	// snapshot's bytes, for CreateSnapshot).
	commit func() error
	data   []byte
	size   uint64 // bytes the view wrote
	err    error
}

// errSnapshotAbandoned is what the snapshot goroutine's writes return once
// the node stops.
var errSnapshotAbandoned = errors.New("consensus: snapshot abandoned: node stopped")

// writeSnapshot is the snapshot goroutine: it writes view (streamed to the
// storage if it can take a stream, into memory otherwise) through a
// pacedWriter (Config.SnapshotWriteRate) and hands the outcome to the
// loop.
func (n *Node) writeSnapshot(view SnapshotWriter, index uint64, m raft.Membership) {
	defer n.snapWG.Done()
	res := snapResult{index: index, m: m}
	pw := &pacedWriter{quit: n.quitc, rate: n.cfg.SnapshotWriteRate}
	if st, ok := n.store.(snapshotStreamer); ok {
		res.commit, res.err = st.StageSnapshot(index, m, func(w io.Writer) error {
			pw.w = w
			return view.WriteSnapshot(pw)
		})
	} else {
		var buf bytes.Buffer
		pw.w = &buf
		res.err = view.WriteSnapshot(pw)
		res.data = buf.Bytes()
	}
	res.size = pw.n
	view.Release()
	n.snapc <- res // never blocks: one snapshot in flight, size 1
}

// finishSnapshot records a snapshot written in the background and compacts
// the log. A snapshot that could not be written is skipped (the next one
// comes SnapshotThreshold entries later); one that cannot be recorded
// stops the node, like any storage failure.
func (n *Node) finishSnapshot(res snapResult) error {
	n.snapping = false
	if res.err != nil {
		n.snapPol.finished(0, false)
		if n.logger != nil {
			n.logger.Warn("consensus: background snapshot failed; skipped", "node", n.cfg.ID, "index", res.index, "err", res.err)
		}
		return nil
	}
	var err error
	if res.commit != nil {
		err = res.commit()
	} else {
		_, err = n.store.CreateSnapshot(res.index, res.m, res.data)
	}
	// Out of date: a newer snapshot from the leader was installed meanwhile.
	if err != nil && !errors.Is(err, raft.ErrSnapshotOutOfDate) {
		return fmt.Errorf("consensus: save snapshot at %d: %w", res.index, err)
	}
	n.snapPol.finished(res.size, true)
	if err == nil {
		n.obs.snapshot(SnapshotTaken, res.index)
	}
	n.debug("snapshot", "index", res.index, "bytes", res.size, "background", true)
	return nil
}

func (n *Node) status() Status {
	st := Status{
		Status:           n.core.Status(),
		PendingProposals: len(n.waiters),
		ClusterID:        n.clusterID,
		DroppedForeign:   n.droppedForeign.Load(),
		DroppedNonMember: n.droppedNonMember.Load(),
		DroppedMalformed: n.droppedMalformed.Load(),
		Err:              n.failure,
	}
	n.obs.fill(&st)
	return st
}

// shutdown fails every waiting proposal, closes the storage and
// unregisters from the transport. It runs on the loop goroutine as it exits.
func (n *Node) shutdown(cause error) {
	n.tr.Handle(n.cfg.Service, nil)
	n.propMu.Lock()
	if !n.closed {
		// The node failed on its own: later proposals say why.
		n.closed, n.closedErr = true, fmt.Errorf("%w: %w", ErrClosed, cause)
	}
	props, closedErr := n.props, n.closedErr
	n.props = nil
	n.propMu.Unlock()
	for _, p := range props {
		p.answer(result{err: closedErr}) // never reached the core
	}
	stopErr := ErrStopped
	if cause != ErrStopped {
		stopErr = fmt.Errorf("%w: %w", ErrStopped, cause)
	}
	for index, p := range n.waiters {
		n.resolve(index, p, result{err: stopErr})
	}
	n.stopBounds() // attempt.go: every bounded proposal is answered
	n.onShutdown()
	n.final = n.status()
	// The snapshot goroutine's writes fail from now on; wait for it before
	// closing the storage it may be writing to. A staged snapshot not
	// committed is a temporary file, removed on the next open.
	close(n.quitc)
	n.snapWG.Wait()
	select {
	case <-n.snapc:
	default:
	}
	if err := n.store.Close(); err != nil && n.final.Err == nil {
		n.final.Err = err
	}
}
