package txn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
)

// ErrNotLeader is returned by a ReplicatedCoordinator replica that does
// not lead its group (or has not finished taking over): run the
// transaction on the leader, which the *NotLeaderError names if known.
var ErrNotLeader = errors.New("txn: coordinator replica is not the leader")

// ErrOutcomeUnknown is returned by ReplicatedCoordinator.Run when its
// context ends after the replica stopped leading and before it learned
// the outcome: the group decides it (commit if the COMMIT reached the
// replicated log, abort otherwise); participants learn it from the leader.
var ErrOutcomeUnknown = errors.New("txn: outcome unknown: the coordinator leader changed")

// ErrLeaderChanged is the cause of an abort when the coordinator leader
// that began the transaction was replaced before it decided: the new
// leader aborts every transaction it finds begun and undecided.
var ErrLeaderChanged = errors.New("txn: coordinator leader changed before the decision")

// NotLeaderError is ErrNotLeader with the leader this replica knows of.
type NotLeaderError struct {
	Leader transport.NodeID // "" if unknown (an election is in progress)
}

// Error implements error.
func (e *NotLeaderError) Error() string {
	if e.Leader == "" {
		return ErrNotLeader.Error() + " (leader unknown)"
	}
	return fmt.Sprintf("%s (leader is %q)", ErrNotLeader, e.Leader)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// maxInflightBatches bounds the replicated-log writes in flight from one
// leader. While they are, new records accumulate in the core and go out
// together in the next write (group commit); a few in flight keep the
// pipeline busy while one is being replicated.
const maxInflightBatches = 2

// ReplicatedCoordinator is a Coordinator whose log is a consensus group of
// replicas (3 or 5): one ReplicatedCoordinator per replica, each on its
// own node and transport. The replica that leads the group runs
// transactions: it drives the same RawCoordinator core as Coordinator,
// but its COMMIT (the only record before the decision: there is no
// BEGIN), presumed-abort and END records are commands in the replicated
// log, so when it dies the next leader finds every committed transaction
// and finishes it, the others are aborted by presumption through the log,
// and participants do not wait for the dead one to come back. See the package documentation for
// what it costs and when it still blocks.
//
// It is safe for concurrent use.
type ReplicatedCoordinator struct {
	t      transport.Transport
	node   *consensus.Node
	table  *txnTable
	cfg    Config
	rcfg   consensus.Config
	logger *slog.Logger
	loop   *loop
	ctx    context.Context // cancelled by Close; bounds proposals and sends
	cancel context.CancelFunc
	work   sync.WaitGroup // proposal goroutines

	// mu guards everything below.
	mu         sync.Mutex
	core       *RawCoordinator // nil unless leading (after the takeover)
	term       uint64          // the term core leads in
	epoch      uint64          // the takeover core leads under (its log index)
	superseded uint64          // the last takeover applied here (epoch)
	takingOver bool
	leaderHint transport.NodeID
	pending    []*repBatch // in submission order: messages leave in it
	lazy       []Record    // END records for the next write (lazy)
	inflight   int
	waiters    map[uuid.UUID]*repWaiter
	stepDown   chan struct{} // closed (and replaced) whenever leadership ends
	closed     bool
	committed  uint64
	aborted    uint64
	writes     uint64
	idle       []chan struct{}

	// hook (tests) is called at each step of the leader's work.
	hook atomic.Pointer[func(step string)]
}

// repBatch is one Ready on its way through the replicated log.
type repBatch struct {
	rd    Ready
	term  uint64
	epoch uint64
	done  bool
	err   error
	// keep lists transactions whose presumed abort met a commit in the
	// table: their ABORT answers are not sent.
	keep abortsRefused
}

type repWaiter struct {
	ch    chan Result // size 1: delivery never blocks
	epoch uint64
	// committed: the COMMIT is applied, and the leader (this replica,
	// still leading under epoch) delivers the result once the COMMIT
	// messages have left, or when it steps down.
	committed bool
}

// NewReplicatedCoordinator starts one replica of a replicated coordinator
// on t: a consensus.Node configured by raftCfg (ID must be t.ID(), Peers
// lists every replica, DataDir holds its durable log; use a Service no
// other Raft group on t uses) running the coordinator's state machine, and
// the coordinator service (ServiceCoordinator) on t. cfg configures the
// 2PC side as for NewCoordinator. Replicas restarted from their DataDir
// recover the table from the group. The caller keeps ownership of t.
func NewReplicatedCoordinator(t transport.Transport, raftCfg consensus.Config, cfg Config) (*ReplicatedCoordinator, error) {
	if t == nil {
		return nil, fmt.Errorf("%w: nil transport", ErrInvalid)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(raftCfg.Peers) > MaxReplicas {
		return nil, fmt.Errorf("%w: %d replicas; at most %d", ErrInvalid, len(raftCfg.Peers), MaxReplicas)
	}
	if raftCfg.Service == ServiceCoordinator || raftCfg.Service == ServiceParticipant {
		return nil, fmt.Errorf("%w: consensus service %q is a txn service", ErrInvalid, raftCfg.Service)
	}
	c := &ReplicatedCoordinator{t: t, table: newTxnTable(), cfg: cfg, rcfg: raftCfg,
		logger: orDiscard(cfg.Logger).With("coordinator", string(t.ID())), loop: newLoop(),
		waiters: make(map[uuid.UUID]*repWaiter), stepDown: make(chan struct{})}
	c.table.onEvent = c.onTableEvent
	node, err := consensus.New(raftCfg, t, c.table)
	if err != nil {
		return nil, fmt.Errorf("txn: replicated coordinator: %w", err)
	}
	c.node = node
	c.ctx, c.cancel = context.WithCancel(context.Background())
	t.Handle(ServiceCoordinator, c.receive)
	c.loop.start(cfg.TickInterval, c.tick, c.process)
	c.loop.wake()
	return c, nil
}

// proposeTimeout bounds one write to the replicated log: a leader whose
// write does not complete within it (it lost its majority, or was
// deposed) stops leading until it is elected again.
func (c *ReplicatedCoordinator) proposeTimeout() time.Duration {
	return max(4*time.Duration(c.rcfg.ElectionTicks)*c.rcfg.TickInterval, c.cfg.RetryInterval)
}

// Run runs a transaction over work on this replica, which must lead the
// group (otherwise an error matching ErrNotLeader, a *NotLeaderError
// naming the leader if known). Its results are those of Coordinator.Run:
// nil once the COMMIT is in the replicated log (a majority of replicas
// has it durably), or an *AbortError. If the leader changes before the
// decision, the transaction is aborted by the next leader (cause
// ErrLeaderChanged) and Run returns that once this replica learns it; if
// ctx ends first, Run returns an error matching ErrOutcomeUnknown.
func (c *ReplicatedCoordinator) Run(ctx context.Context, work ...Work) (Result, error) {
	return c.RunID(ctx, uuid.New(), work...)
}

// RunID is Run with a caller-chosen transaction ID, which must be unique.
func (c *ReplicatedCoordinator) RunID(ctx context.Context, id uuid.UUID, work ...Work) (Result, error) {
	if c == nil || c.loop == nil {
		return Result{}, errNotConstructed
	}
	var timeout time.Duration
	if d, ok := ctx.Deadline(); ok {
		if timeout = time.Until(d); timeout <= 0 {
			return Result{}, ctx.Err()
		}
	}
	w := &repWaiter{ch: make(chan Result, 1)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return Result{}, ErrClosed
	}
	if c.core == nil {
		hint := c.leaderHint
		if hint == c.t.ID() {
			hint = "" // still taking over
		}
		c.mu.Unlock()
		return Result{}, &NotLeaderError{Leader: hint}
	}
	if _, dup := c.waiters[id]; dup {
		c.mu.Unlock()
		return Result{}, fmt.Errorf("%w: %s", ErrDuplicateTxn, id)
	}
	if err := c.core.Begin(time.Now(), id, work, timeout); err != nil {
		c.mu.Unlock()
		return Result{}, err
	}
	w.epoch = c.epoch
	c.waiters[id] = w
	c.mu.Unlock()
	c.loop.wake()

	select {
	case r := <-w.ch:
		return result(r)
	case <-ctx.Done():
	}
	c.mu.Lock()
	leading := c.core != nil && c.epoch == w.epoch
	if leading {
		c.core.Abort(time.Now(), id)
	}
	sd := c.stepDown
	if !leading {
		delete(c.waiters, id)
	}
	c.mu.Unlock()
	c.loop.wake()
	if leading {
		// The decision is the abort just requested or one already made
		// and on its way through the replicated log, unless this
		// replica stops leading first.
		select {
		case r := <-w.ch:
			return result(r)
		case <-sd:
		}
		c.mu.Lock()
		delete(c.waiters, id)
		c.mu.Unlock()
	}
	select {
	case r := <-w.ch:
		return result(r)
	default:
	}
	return Result{Txn: id, Outcome: Unknown}, fmt.Errorf("%w: %w", ErrOutcomeUnknown, ctx.Err())
}

func (c *ReplicatedCoordinator) deliverLocked(r Result) {
	if w, ok := c.waiters[r.Txn]; ok {
		w.ch <- r
		delete(c.waiters, r.Txn)
	}
}

// onTableEvent learns decisions from the replicated log, on every replica:
// a waiter whose replica stopped leading learns its transaction's fate
// here. It runs on the consensus node's goroutine.
func (c *ReplicatedCoordinator) onTableEvent(ev tableEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ev.Committed {
		if w, ok := c.waiters[id]; ok && c.core != nil && w.epoch == c.epoch {
			// This replica's own: Run returns after the COMMIT messages
			// leave (process), so that a caller's next transaction never
			// overtakes them.
			w.committed = true
			continue
		}
		c.deliverLocked(Result{Txn: id, Outcome: Committed})
	}
	if ev.Takeover == 0 {
		return
	}
	c.superseded = max(c.superseded, ev.Takeover)
	if c.core != nil && c.epoch < ev.Takeover {
		// Another takeover (by another replica, or by this one after
		// it stepped down): nothing this core proposes counts any more.
		c.stepDownLocked("superseded by a takeover")
	}
	for id, w := range c.waiters {
		if w.epoch < ev.Takeover {
			// Not committed before the takeover (that would have been
			// delivered above, earlier), and fenced by it: its COMMIT
			// can never be applied now, so it is aborted (presumed
			// abort; participants that ask are told so through the log).
			c.deliverLocked(Result{Txn: id, Outcome: Aborted, Err: &AbortError{Txn: id, Cause: ErrLeaderChanged}})
		}
	}
}

func (c *ReplicatedCoordinator) step(name string) {
	if h := c.hook.Load(); h != nil {
		(*h)(name)
	}
}

func (c *ReplicatedCoordinator) receive(msg transport.Message) {
	m, err := UnmarshalMessage(msg.Payload)
	if err != nil {
		c.logger.Debug("txn: dropped malformed message", "from", msg.From, "err", err)
		return
	}
	c.mu.Lock()
	switch {
	case c.closed:
	case c.core != nil:
		c.core.Step(time.Now(), msg.From, m)
	case m.Type == MsgQuery && c.leaderHint != "" && c.leaderHint != c.t.ID():
		// Not the leader: name it, so that the participant asks it next.
		hint := c.leaderHint
		c.mu.Unlock()
		send(c.ctx, c.t, c.logger, []Envelope{{To: msg.From, Service: ServiceParticipant,
			Msg: Message{Type: MsgDecision, Txn: m.Txn, Outcome: Unknown, Coordinator: hint}}})
		return
	}
	c.mu.Unlock()
	c.loop.wake()
}

// tick follows the group's leadership: a replica that becomes leader
// takes over (a command through the log that aborts what earlier leaders
// left undecided and returns what is left to finish); one that stops
// leading drops its core.
func (c *ReplicatedCoordinator) tick() {
	st := c.node.Status()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.leaderHint = st.Leader
	leading := st.Err == nil && st.Role == raft.Leader
	if c.core != nil && (!leading || st.Term != c.term) {
		c.stepDownLocked("no longer the leader")
	}
	if c.core == nil && leading && !c.takingOver {
		c.takingOver = true
		c.work.Add(1)
		go c.takeover(st.Term)
	}
	if c.core != nil {
		c.core.Tick(time.Now())
	}
}

func (c *ReplicatedCoordinator) takeover(term uint64) {
	defer c.work.Done()
	ctx, cancel := context.WithTimeout(c.ctx, c.proposeTimeout())
	res, err := c.node.Propose(ctx, encodeTakeover(term))
	cancel()
	tr, ok := res.(takeoverResult)
	if err == nil && !ok {
		err, _ = res.(error)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.takingOver = false
	if err != nil || !ok || c.closed || c.core != nil || tr.epoch < c.superseded {
		c.logger.Debug("txn: takeover failed", "term", term, "err", err)
		return
	}
	core, err := NewRawCoordinator(c.t.ID(), c.cfg)
	if err == nil {
		core.replicas, core.replicated = slices.Clone(c.rcfg.Peers), true
		err = core.Recover(time.Now(), tr.recs)
	}
	if err != nil {
		c.logger.Error("txn: takeover: recovery", "err", err)
		return
	}
	c.core, c.term, c.epoch = core, term, tr.epoch
	st := core.Status()
	c.logger.Info("txn: leading the coordinator group", "term", term,
		"committed-to-finish", st.Committed, "aborted-to-finish", st.Aborted)
	c.loop.wake()
}

// stepDownLocked stops leading: the core and the messages not sent yet
// are dropped (the next leader re-sends what is needed); waiters stay
// until the log tells their transaction's fate.
func (c *ReplicatedCoordinator) stepDownLocked(why string) {
	if c.core == nil {
		return
	}
	c.logger.Info("txn: stopped leading the coordinator group", "term", c.term, "why", why)
	c.core, c.term, c.epoch = nil, 0, 0
	c.pending, c.lazy = nil, nil
	for id, w := range c.waiters {
		if w.committed {
			c.deliverLocked(Result{Txn: id, Outcome: Committed})
		}
	}
	close(c.stepDown)
	c.stepDown = make(chan struct{})
}

// process moves the core's work through the replicated log. A Ready's
// records (COMMIT, RecAbort) are one command, and its messages and results
// are released only once that command is applied, and after those of
// every earlier Ready; PREPAREs alone leave at once, because no record
// precedes them (there is no BEGIN: see txnTable.batchLocked). END
// records are lazy: they ride with the next command, or go alone when no
// command is in flight. While maxInflightBatches commands are in flight,
// the core's new records wait and go out together in the next one (group
// commit).
func (c *ReplicatedCoordinator) process() {
	for {
		var out []Envelope
		var results []Result
		progressed := false
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return
		}
		for len(c.pending) > 0 && c.pending[0].done {
			b := c.pending[0]
			c.pending = c.pending[1:]
			progressed = true
			if b.err != nil {
				c.stepDownLocked(b.err.Error())
				break
			}
			for _, r := range b.rd.Results {
				if r.Outcome == Committed {
					c.committed++
				} else {
					c.aborted++
				}
			}
			results = append(results, b.rd.Results...)
			for _, e := range b.rd.Messages {
				if len(b.keep) > 0 && e.Msg.Type == MsgDecision && e.Msg.Outcome == Aborted && slices.Contains(b.keep, e.Msg.Txn) {
					continue
				}
				out = append(out, e)
			}
		}
		if c.core != nil && c.core.HasReady() && c.inflight < maxInflightBatches {
			progressed = true
			rd := c.core.Ready()
			c.lazy = append(c.lazy, rd.Lazy...)
			rd.Lazy = nil
			// PREPAREs wait for nothing.
			msgs := rd.Messages[:0]
			for _, e := range rd.Messages {
				if e.Msg.Type == MsgPrepare {
					out = append(out, e)
				} else {
					msgs = append(msgs, e)
				}
			}
			rd.Messages = msgs
			b := &repBatch{rd: rd, term: c.term, epoch: c.epoch, done: len(rd.Log) == 0}
			if b.done && len(c.pending) == 0 {
				c.aborted += uint64(len(rd.Results)) // only aborts are decided without a record
				results = append(results, rd.Results...)
				out = append(out, rd.Messages...)
			} else {
				c.pending = append(c.pending, b)
				if !b.done {
					recs := append(c.lazy, rd.Log...)
					c.lazy = nil
					c.writes++
					c.inflight++
					c.work.Add(1)
					go c.propose(b, recs)
				}
			}
		}
		if c.core != nil && len(c.lazy) > 0 && c.inflight == 0 {
			// Nothing to carry the END records: they go alone.
			progressed = true
			b := &repBatch{term: c.term, epoch: c.epoch}
			c.pending = append(c.pending, b)
			recs := c.lazy
			c.lazy = nil
			c.writes++
			c.inflight++
			c.work.Add(1)
			go c.propose(b, recs)
		}
		if c.core != nil && len(c.pending) == 0 && len(c.lazy) == 0 && !c.core.HasReady() && c.core.Status() == (CoordinatorStatus{}) {
			for _, ch := range c.idle {
				close(ch)
			}
			c.idle = nil
		}
		c.mu.Unlock()
		if c.hook.Load() != nil {
			for _, e := range out {
				c.step(stepName(e.Msg))
				send(c.ctx, c.t, c.logger, []Envelope{e})
			}
		} else if len(out) > 0 {
			send(c.ctx, c.t, c.logger, out)
		}
		if len(results) > 0 {
			// After the messages: a caller's next transaction never
			// overtakes this one's decision.
			c.mu.Lock()
			for _, r := range results {
				c.deliverLocked(r)
			}
			c.mu.Unlock()
		}
		if !progressed {
			return
		}
	}
}

func stepName(m Message) string {
	switch {
	case m.Type == MsgPrepare:
		return "send-prepare"
	case m.Type == MsgDecision && m.Outcome == Committed:
		return "send-commit"
	case m.Type == MsgDecision && m.Outcome == Aborted:
		return "send-abort"
	}
	return "send-other"
}

// propose writes one batch to the replicated log.
func (c *ReplicatedCoordinator) propose(b *repBatch, recs []Record) {
	defer c.work.Done()
	if c.hook.Load() != nil {
		c.step("propose " + recordKinds(recs))
	}
	cmd, err := encodeBatch(b.term, b.epoch, recs)
	if err == nil {
		logRecords(c.logger, recs)
		ctx, cancel := context.WithTimeout(c.ctx, c.proposeTimeout())
		var res any
		res, err = c.node.Propose(ctx, cmd)
		cancel()
		if e, ok := res.(error); ok && err == nil {
			err = e
		}
		if k, ok := res.(abortsRefused); ok && err == nil {
			b.keep = k
		}
	}
	if err == nil && c.hook.Load() != nil {
		c.step("applied " + recordKinds(recs))
	}
	c.mu.Lock()
	b.done, b.err = true, err
	c.inflight--
	c.mu.Unlock()
	c.loop.wake()
}

func recordKinds(recs []Record) string {
	var s []string
	for _, r := range recs {
		var k string
		switch r.Type {
		case RecBegin:
			k = "BEGIN"
		case RecCommit:
			k = "COMMIT"
		case RecEnd:
			k = "END"
		case RecAbort:
			k = "ABORT"
		}
		if !slices.Contains(s, k) {
			s = append(s, k)
		}
	}
	slices.Sort(s)
	out := ""
	for i, k := range s {
		if i > 0 {
			out += "+"
		}
		out += k
	}
	return out
}

// Quiesce waits until this replica leads and no transaction it knows of
// is in flight (every one it tracks has been decided and acknowledged by
// every participant). On a replica that does not lead it returns
// ErrNotLeader. A transaction an earlier leader prepared and never
// committed is not in the replicated log (no BEGIN is logged), so Quiesce
// does not wait for it: its participants resolve it by asking, within the
// in-doubt bound (see the package doc).
func (c *ReplicatedCoordinator) Quiesce(ctx context.Context) error {
	if c == nil || c.loop == nil {
		return errNotConstructed
	}
	ch := make(chan struct{})
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return ErrClosed
	case c.core == nil:
		c.mu.Unlock()
		return &NotLeaderError{Leader: c.leaderHint}
	}
	c.idle = append(c.idle, ch)
	c.mu.Unlock()
	c.loop.wake()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		defer c.mu.Unlock()
		if i := slices.Index(c.idle, ch); i >= 0 {
			c.idle = slices.Delete(c.idle, i, i+1)
		}
		return ctx.Err()
	}
}

// ReplicaStats are a replica's counters and current state.
type ReplicaStats struct {
	CoordinatorStatus        // transactions the leader tracks (zero on a follower)
	Leading           bool   // this replica leads and has taken over
	Term              uint64 // the term it leads in
	Leader            transport.NodeID
	Committed         uint64 // transactions this replica decided COMMIT while leading
	Aborted           uint64 // transactions this replica decided ABORT while leading
	Writes            uint64 // commands it wrote to the replicated log while leading (group commit: Committed/Writes per command)
	Live              int    // transactions in the replicated table (begun, not ended)
}

// Stats returns the replica's counters.
func (c *ReplicatedCoordinator) Stats() ReplicaStats {
	if c == nil || c.loop == nil {
		return ReplicaStats{}
	}
	c.mu.Lock()
	s := ReplicaStats{Leading: c.core != nil, Term: c.term, Leader: c.leaderHint, Committed: c.committed, Aborted: c.aborted, Writes: c.writes}
	if c.core != nil {
		s.CoordinatorStatus = c.core.Status()
	}
	c.mu.Unlock()
	c.table.mu.Lock()
	for _, t := range c.table.txns {
		if t.epoch != 0 {
			s.Live++
		}
	}
	c.table.mu.Unlock()
	return s
}

// Node returns the replica's consensus node (for its Status), nil for a
// ReplicatedCoordinator not created by NewReplicatedCoordinator.
func (c *ReplicatedCoordinator) Node() *consensus.Node {
	if c == nil {
		return nil
	}
	return c.node
}

var errNotConstructed = fmt.Errorf("%w: ReplicatedCoordinator not created by NewReplicatedCoordinator", ErrInvalid)

// Close stops the replica: its coordinator service, its goroutines and
// its consensus node. Callers still waiting in Run get ErrClosed. What it
// led is finished by the next leader. Close is idempotent.
func (c *ReplicatedCoordinator) Close() error {
	if c == nil || c.loop == nil {
		return nil
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	for id, w := range c.waiters {
		w.ch <- Result{Txn: id, Outcome: Unknown}
		delete(c.waiters, id)
	}
	for _, ch := range c.idle {
		close(ch)
	}
	c.idle = nil
	c.mu.Unlock()
	c.t.Handle(ServiceCoordinator, nil)
	c.cancel()
	c.loop.stop()
	err := c.node.Close()
	c.work.Wait()
	if err != nil {
		return fmt.Errorf("txn: replicated coordinator close: %w", err)
	}
	return nil
}
