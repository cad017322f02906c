package election

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/distkit/distkit/clock"
	"github.com/distkit/distkit/transport"
)

// maxQueued bounds the received messages waiting for the loop. Beyond it
// messages are dropped, as a lossy network would; the protocols recover.
const maxQueued = 4096

// Node runs a Bully or Ring core over a transport.Transport with real
// timers, and implements Elector. One goroutine owns the core; Close stops
// it and waits.
type Node struct {
	cfg    Config
	tr     transport.Transport
	clk    clock.Source
	store  EpochStore
	logger *slog.Logger
	views  Notifier

	// mu guards queue.
	mu    sync.Mutex
	queue []transport.Message
	sig   chan struct{} // size 1: coalesced wake-up for queued messages

	cmds   chan candidacy  // unbuffered: the loop takes one at a time
	statsc chan chan Stats // unbuffered: requests for the core's Stats
	stopc  chan struct{}
	donec  chan struct{}
	stop   sync.Once
	// failure is why the loop stopped on its own (a failed Save); written
	// before donec is closed, read after.
	failure error

	// Owned by the loop goroutine.
	core  interface{ Stats() Stats }
	drive Core
}

var _ Elector = (*Node)(nil)

type candidacy struct {
	on   bool
	done chan struct{} // closed once applied and its view published
}

// NewBully starts a Bully elector for cfg.ID over tr, resuming from the
// epoch in cfg.Store. The node stands for election from the start (see
// Campaign and Resign). The caller keeps ownership of tr and closes it
// after the Node.
func NewBully(tr transport.Transport, cfg Config) (*Node, error) {
	return newNode(tr, cfg, func(st State, seed uint64, now time.Time) (Core, error) {
		return NewBullyCore(cfg, st, seed, now)
	})
}

// NewRing starts a Ring elector for cfg.ID over tr, resuming from the
// epoch in cfg.Store. The node stands for election from the start. The
// caller keeps ownership of tr and closes it after the Node.
func NewRing(tr transport.Transport, cfg Config) (*Node, error) {
	return newNode(tr, cfg, func(st State, seed uint64, now time.Time) (Core, error) {
		return NewRingCore(cfg, st, seed, now)
	})
}

func newNode(tr transport.Transport, cfg Config, build func(st State, seed uint64, now time.Time) (Core, error)) (*Node, error) {
	if tr == nil {
		return nil, fmt.Errorf("%w: nil transport", ErrInvalidConfig)
	}
	if tr.ID() != cfg.ID {
		return nil, fmt.Errorf("%w: transport is %q but ID is %q", ErrInvalidConfig, tr.ID(), cfg.ID)
	}
	clk := cfg.Clock
	if clk == nil {
		clk = clock.System{}
	}
	store := cfg.Store
	if store == nil {
		store = new(MemoryEpochStore)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err // before touching the store
	}
	epoch, err := store.Load()
	if err != nil {
		return nil, fmt.Errorf("election: loading the epoch: %w", err)
	}
	core, err := build(State{Epoch: epoch}, rand.Uint64(), clk.Now())
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:    cfg,
		tr:     tr,
		clk:    clk,
		store:  store,
		logger: cfg.Logger,
		sig:    make(chan struct{}, 1),
		cmds:   make(chan candidacy),
		statsc: make(chan chan Stats),
		stopc:  make(chan struct{}),
		donec:  make(chan struct{}),
		drive:  core,
		core:   core.(interface{ Stats() Stats }),
	}
	// The boot view (the durable epoch, no leader known yet) is visible
	// before NewBully/NewRing returns: Leader never reports an epoch below
	// the one this node reached before a restart.
	n.views.Publish(Leader{Epoch: epoch})
	tr.Handle(cfg.Service, n.receive)
	go n.run()
	return n, nil
}

// receive is the transport handler: queue and wake the loop.
func (n *Node) receive(msg transport.Message) {
	n.mu.Lock()
	if len(n.queue) < maxQueued {
		n.queue = append(n.queue, msg)
	}
	n.mu.Unlock()
	select {
	case n.sig <- struct{}{}:
	default:
	}
}

func (n *Node) run() {
	defer close(n.donec)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var spare []transport.Message
	// applied is the candidacy change whose caller waits until the view
	// it led to is published: Resign must not return while Leader still
	// names this node.
	var applied chan struct{}
	for {
		if err := n.flush(ctx); err != nil {
			// Sending an epoch that is not durable could let a restart
			// reuse it: stop, as a crashed node would.
			n.failure = err
			if n.logger != nil {
				n.logger.Error("election: stopped", "node", n.cfg.ID, "err", err)
			}
			n.views.Close() // ends Campaign and the observers
			return
		}
		if applied != nil {
			close(applied)
			applied = nil
		}
		timer.Reset(max(n.drive.NextTick().Sub(n.clk.Now()), time.Millisecond))
		select {
		case <-n.stopc:
			// Resign on the way out, so the others need not wait for the
			// detector to notice.
			n.drive.SetCandidate(n.clk.Now(), false)
			_ = n.flush(ctx) // a failed Save sends nothing; Close reports no error for it
			return
		case <-timer.C:
			n.drive.Tick(n.clk.Now())
		case <-n.sig:
			n.mu.Lock()
			msgs := n.queue
			n.queue = spare[:0]
			n.mu.Unlock()
			now := n.clk.Now()
			for _, m := range msgs {
				if err := n.drive.Receive(now, m.From, m.Payload); err != nil && n.logger != nil {
					n.logger.Debug("election: dropped message", "node", n.cfg.ID, "from", m.From, "err", err)
				}
			}
			clear(msgs)
			spare = msgs
		case c := <-n.cmds:
			n.drive.SetCandidate(n.clk.Now(), c.on)
			applied = c.done // closed once the flush above has published its view
		case reply := <-n.statsc:
			reply <- n.core.Stats()
		}
	}
}

// flush makes the core's State durable, then sends its messages and
// publishes a changed view. It sends and publishes nothing when the Save
// fails, and returns the error.
func (n *Node) flush(ctx context.Context) error {
	rd := n.drive.Ready()
	if rd.State.Epoch != 0 {
		if err := n.store.Save(rd.State.Epoch); err != nil {
			return fmt.Errorf("%w: saving epoch %d: %w", ErrStore, rd.State.Epoch, err)
		}
	}
	for _, m := range rd.Messages {
		// Best effort, like the network: a full queue or an unknown peer
		// loses the message and the protocol recovers.
		if err := n.tr.Send(ctx, m.To, n.cfg.Service, m.Payload); err != nil && n.logger != nil {
			n.logger.Debug("election: send failed", "node", n.cfg.ID, "to", m.To, "err", err)
		}
	}
	if rd.Leader != n.views.Current() {
		n.views.Publish(rd.Leader)
		if n.logger != nil {
			n.logger.Info("election: leader", "node", n.cfg.ID, "leader", rd.Leader.ID, "epoch", rd.Leader.Epoch)
		}
	}
	return nil
}

// closedErr is what operations return once the loop has stopped: the
// store failure that stopped it, or ErrClosed.
func (n *Node) closedErr() error {
	<-n.donec
	if n.failure != nil {
		return n.failure
	}
	return ErrClosed
}

// setCandidate hands a candidacy change to the loop.
func (n *Node) setCandidate(ctx context.Context, on bool) error {
	if ctx == nil {
		return ErrNilContext
	}
	c := candidacy{on: on, done: make(chan struct{})}
	select {
	case n.cmds <- c:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.donec:
		return n.closedErr()
	}
	select {
	case <-c.done:
		return nil
	case <-n.donec:
		return n.closedErr()
	}
}

// Campaign stands for election and blocks until this node leads, returning
// its leadership, or until ctx ends or the Node is closed. With Bully and
// Ring only the highest-priority live candidate leads, so a lower node
// waits until the nodes above it fail or resign.
func (n *Node) Campaign(ctx context.Context) (Leader, error) {
	if n == nil || n.stopc == nil {
		return Leader{}, errNodeNotNew
	}
	if err := n.setCandidate(ctx, true); err != nil {
		return Leader{}, err
	}
	obsCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	for l := range n.views.Observe(obsCtx) {
		if l.ID == n.cfg.ID {
			return l, nil
		}
	}
	// The channel closed: ctx ended, the Node was closed, or the loop
	// stopped on a store failure (it closes the views before donec).
	if ctx.Err() != nil {
		return Leader{}, ctx.Err()
	}
	return Leader{}, n.closedErr()
}

// Resign withdraws this node from election: if it leads, it announces that
// its epoch has no leader any more, and the others elect a new one. When
// it returns, Leader and Observe no longer name this node. It stands again
// at the next Campaign.
func (n *Node) Resign(ctx context.Context) error {
	if n == nil || n.stopc == nil {
		return errNodeNotNew
	}
	return n.setCandidate(ctx, false)
}

// Leader returns this node's current view of the leader.
func (n *Node) Leader() Leader {
	if n == nil || n.stopc == nil {
		return Leader{}
	}
	return n.views.Current()
}

// Observe returns a channel that receives the current view and every
// change; it never blocks the Node (see Notifier).
func (n *Node) Observe(ctx context.Context) <-chan Leader {
	if n == nil || n.stopc == nil {
		return closedLeaders()
	}
	return n.views.Observe(ctx)
}

// Stats returns the core's counters; after Close, zero Stats.
func (n *Node) Stats() Stats {
	if n == nil || n.stopc == nil {
		return Stats{}
	}
	reply := make(chan Stats, 1)
	select {
	case n.statsc <- reply:
		return <-reply
	case <-n.donec:
		return Stats{}
	}
}

// Close resigns (if this node leads, the others are told at once), stops
// the loop and waits for it, unregisters from the transport, and closes
// every Observe channel. It is idempotent. It returns nil, also after the
// Node stopped on a store failure (Campaign and Resign report that).
func (n *Node) Close() error {
	if n == nil || n.stopc == nil {
		return errNodeNotNew
	}
	n.stop.Do(func() {
		close(n.stopc)
		<-n.donec
		n.tr.Handle(n.cfg.Service, nil)
		n.views.Close()
	})
	<-n.donec
	return nil
}
