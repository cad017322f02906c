package txn

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/distkit/distkit/transport"
)

// Coordinator runs transactions: it drives a RawCoordinator over a
// Transport (service ServiceCoordinator) with a durable Log and real
// timers. It is safe for concurrent use; Run may be called from many
// goroutines at once.
type Coordinator struct {
	t      transport.Transport
	log    Log
	cfg    Config
	logger *slog.Logger
	debug  bool // logger has debug enabled (checked once: it is hot)
	loop   *loop
	ctx    context.Context // cancelled by Close; bounds sends
	cancel context.CancelFunc

	// lazy holds the Ready.Lazy records (BEGIN) not written yet, and
	// lazyDue says a tick has passed since they were buffered. Only the
	// loop goroutine touches them: they are written in front of the next
	// durable batch, or at the next tick, so that PREPAREs never wait for
	// an fsync and an idle coordinator still writes them soon.
	lazy    []Record
	lazyDue bool

	// mu guards core, waiters, err, closed and the counters.
	mu        sync.Mutex
	core      *RawCoordinator
	waiters   map[uuid.UUID]chan Result // each of size 1, so delivery never blocks
	err       error                     // sticky storage failure
	closed    bool
	committed uint64
	aborted   uint64
	idle      []chan struct{} // Quiesce callers, closed when nothing is in flight
}

// NewCoordinator recovers a coordinator from log and starts it. Committed
// transactions found in the log are driven to completion (their COMMIT is
// sent until every participant acknowledges); begun but undecided ones are
// aborted (their ABORT is sent likewise), and any whose BEGIN record was
// lost in a crash are aborted by presumption. The caller keeps ownership of t and log: Close does not
// close them.
func NewCoordinator(t transport.Transport, log Log, cfg Config) (*Coordinator, error) {
	if t == nil || log == nil {
		return nil, fmt.Errorf("%w: nil transport or log", ErrInvalid)
	}
	core, err := NewRawCoordinator(t.ID(), cfg)
	if err != nil {
		return nil, err
	}
	recs, err := log.Load()
	if err != nil {
		return nil, fmt.Errorf("txn: coordinator recovery: %w", err)
	}
	if err := core.Recover(time.Now(), recs); err != nil {
		return nil, fmt.Errorf("txn: coordinator recovery: %w", err)
	}
	c := &Coordinator{t: t, log: log, cfg: cfg, logger: orDiscard(cfg.Logger).With("coordinator", string(t.ID())),
		loop: newLoop(), core: core, waiters: make(map[uuid.UUID]chan Result)}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.debug = c.logger.Enabled(c.ctx, slog.LevelDebug)
	if st := core.Status(); st.Committed > 0 || st.Aborted > 0 {
		c.logger.Debug("txn: recovered", "committed-unacknowledged", st.Committed, "aborted-unacknowledged", st.Aborted)
	}
	t.Handle(ServiceCoordinator, c.receive)
	c.loop.start(cfg.TickInterval, c.tick, c.process)
	c.loop.wake()
	return c, nil
}

// Run runs a transaction over work (one entry per participant) with a new
// ID and returns once it is decided. It returns a nil error if the
// transaction committed, an *AbortError (errors.Is ErrAborted) saying why
// it aborted, or another error if it could not be run (ErrClosed,
// ErrInvalid, a storage failure). Votes are awaited until ctx's deadline
// or Config.VoteTimeout, whichever comes first (then ErrTimeout); if ctx
// is cancelled before the decision the transaction is aborted with
// ErrCancelled.
//
// A committed result means the decision is durable: every participant will
// apply it, even across crashes, though some may not have yet.
func (c *Coordinator) Run(ctx context.Context, work ...Work) (Result, error) {
	if c == nil || c.loop == nil {
		return Result{}, errNotBuilt
	}
	return c.RunID(ctx, uuid.New(), work...)
}

// RunID is Run with a caller-chosen transaction ID, which must be unique
// (uuid.New is what Run uses).
func (c *Coordinator) RunID(ctx context.Context, id uuid.UUID, work ...Work) (Result, error) {
	if c == nil || c.loop == nil {
		return Result{}, errNotBuilt
	}
	var timeout time.Duration
	if d, ok := ctx.Deadline(); ok {
		if timeout = time.Until(d); timeout <= 0 {
			return Result{}, ctx.Err()
		}
	}
	ch := make(chan Result, 1)
	c.mu.Lock()
	if err := c.usableLocked(); err != nil {
		c.mu.Unlock()
		return Result{}, err
	}
	if err := c.core.Begin(time.Now(), id, work, timeout); err != nil {
		c.mu.Unlock()
		return Result{}, err
	}
	c.waiters[id] = ch
	c.mu.Unlock()
	c.loop.wake()

	select {
	case r := <-ch:
		return result(r)
	case <-ctx.Done():
	}
	c.mu.Lock()
	if c.err == nil && !c.closed {
		c.core.Abort(time.Now(), id)
	}
	c.mu.Unlock()
	c.loop.wake()
	// The decision is either the abort just requested or one already
	// made and on its way through the log: it comes without waiting for
	// the network.
	return result(<-ch)
}

func result(r Result) (Result, error) {
	if r.Outcome == Committed {
		return r, nil
	}
	if r.Err == nil { // closed or failed before the decision
		return r, ErrClosed
	}
	return r, r.Err
}

func (c *Coordinator) usableLocked() error {
	if c.closed {
		return ErrClosed
	}
	return c.err
}

func (c *Coordinator) receive(msg transport.Message) {
	m, err := UnmarshalMessage(msg.Payload)
	if err != nil {
		c.logger.Debug("txn: dropped malformed message", "from", msg.From, "err", err)
		return
	}
	c.mu.Lock()
	if c.usableLocked() == nil {
		c.core.Step(time.Now(), msg.From, m)
	}
	c.mu.Unlock()
	c.loop.wake()
}

func (c *Coordinator) tick() {
	c.mu.Lock()
	if c.usableLocked() == nil {
		c.core.Tick(time.Now())
	}
	c.mu.Unlock()
	c.lazyDue = len(c.lazy) > 0
}

// process drains the core: log, checkpoint, send, then results.
func (c *Coordinator) process() {
	for {
		c.mu.Lock()
		if c.usableLocked() != nil || !c.core.HasReady() {
			usable := c.usableLocked() == nil
			if usable {
				c.wakeIdleLocked()
			}
			c.mu.Unlock()
			if usable && c.lazyDue {
				c.lazyDue = false
				if err := c.writeLog(nil); err != nil {
					c.fail(err)
				}
			}
			return
		}
		rd := c.core.Ready()
		c.mu.Unlock()

		c.lazy = append(c.lazy, rd.Lazy...)
		var err error
		if len(rd.Log) > 0 || rd.Checkpoint != nil {
			err = c.writeLog(rd.Log)
		}
		if err == nil && rd.Checkpoint != nil {
			c.logger.Debug("txn: checkpoint", "records", len(rd.Checkpoint))
			err = c.log.Replace(rd.Checkpoint)
		}
		if err != nil {
			c.fail(err)
			return
		}
		send(c.ctx, c.t, c.logger, rd.Messages)
		c.mu.Lock()
		for _, r := range rd.Results {
			if c.debug {
				c.logger.Debug("txn: decided", "txn", r.Txn, "outcome", r.Outcome)
			}
			if r.Outcome == Committed {
				c.committed++
			} else {
				c.aborted++
			}
			if ch, ok := c.waiters[r.Txn]; ok {
				ch <- r
				delete(c.waiters, r.Txn)
			}
		}
		c.mu.Unlock()
	}
}

// writeLog appends the buffered lazy records followed by recs, durably.
func (c *Coordinator) writeLog(recs []Record) error {
	if len(c.lazy) > 0 {
		recs = append(c.lazy, recs...)
		c.lazy = nil
	}
	logRecords(c.logger, recs)
	return c.log.Append(recs)
}

// Quiesce waits until no transaction is in flight: every one begun has
// been decided and its decision acknowledged by every participant (so all
// of them have applied it). Use it before a planned shutdown, or in tests.
func (c *Coordinator) Quiesce(ctx context.Context) error {
	if c == nil || c.loop == nil {
		return errNotBuilt
	}
	ch := make(chan struct{})
	c.mu.Lock()
	if err := c.usableLocked(); err != nil {
		c.mu.Unlock()
		return err
	}
	c.idle = append(c.idle, ch)
	c.mu.Unlock()
	c.loop.wake()
	select {
	case <-ch:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.usableLocked()
	case <-ctx.Done():
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, w := range c.idle {
			if w == ch {
				c.idle = append(c.idle[:i], c.idle[i+1:]...)
				break
			}
		}
		return ctx.Err()
	}
}

// wakeIdleLocked releases Quiesce callers if nothing is in flight.
func (c *Coordinator) wakeIdleLocked() {
	if len(c.idle) == 0 || c.core.Status() != (CoordinatorStatus{}) {
		return
	}
	for _, ch := range c.idle {
		close(ch)
	}
	c.idle = nil
}

// fail makes a storage error sticky: the coordinator stops deciding,
// because it can no longer make decisions durable. Waiting callers get the
// error; what was decided stays decided in the log.
func (c *Coordinator) fail(err error) {
	c.logger.Error("txn: log failed; coordinator stopped", "err", err)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = fmt.Errorf("txn: coordinator log: %w", err)
	}
	c.releaseWaitersLocked()
}

func (c *Coordinator) releaseWaitersLocked() {
	for id, ch := range c.waiters {
		ch <- Result{Txn: id, Outcome: Unknown}
		delete(c.waiters, id)
	}
	for _, ch := range c.idle {
		close(ch)
	}
	c.idle = nil
}

// CoordinatorStats are a coordinator's counters and current state.
type CoordinatorStats struct {
	CoordinatorStatus
	Committed uint64 // transactions decided COMMIT since start
	Aborted   uint64 // transactions decided ABORT since start
	Err       error  // the storage failure that stopped it, if any
}

// Stats returns the coordinator's counters.
func (c *Coordinator) Stats() CoordinatorStats {
	if c == nil || c.loop == nil {
		return CoordinatorStats{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return CoordinatorStats{CoordinatorStatus: c.core.Status(), Committed: c.committed, Aborted: c.aborted, Err: c.err}
}

// Close stops the coordinator and waits for its goroutine. Callers still
// waiting in Run get ErrClosed; transactions committed but not yet
// acknowledged are finished, and those still undecided are aborted, by the
// next coordinator opened on the same log (Close writes the BEGIN records
// still buffered, and reports an error if that fails). Close is
// idempotent.
func (c *Coordinator) Close() error {
	if c == nil || c.loop == nil {
		return errNotBuilt
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.t.Handle(ServiceCoordinator, nil)
	c.cancel()
	c.loop.stop()
	c.mu.Lock()
	c.releaseWaitersLocked()
	// The loop has stopped, so its lazy buffer is ours. Write it, with the
	// lazy records the core still holds (their messages are dropped, and
	// unwritten COMMITs with them: no one was told of those decisions), so
	// that the next coordinator on this log aborts at once what this one
	// left undecided.
	var err error
	if c.err == nil {
		c.lazy = append(c.lazy, c.core.Ready().Lazy...)
		if len(c.lazy) > 0 {
			err = c.writeLog(nil)
		}
	}
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("txn: coordinator close: %w", err)
	}
	return nil
}
