package memnet

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distkit/distkit/internal/netfault"
	"github.com/distkit/distkit/transport"
)

// Transport is one node's endpoint on a Network. It implements
// transport.Transport and is safe for concurrent use.
//
// Messages to a node are delivered by that node's own goroutine, one at a
// time, so its handlers never run concurrently with each other; a handler
// must not call Close on its own Transport. A handler that panics loses its
// message, is logged and counted (Stats.HandlerPanics), and the node goes on.
type Transport struct {
	net *Network
	id  transport.NodeID

	closed bool                       // guarded by net.mu
	out    map[transport.NodeID]route // outgoing routes by receiver; guarded by net.mu

	crashed atomic.Bool   // written under net.mu; read on the delivery path
	closing atomic.Bool   // set by Close; the rest of a batch being delivered is dropped
	epoch   atomic.Uint64 // bumped by Crash, invalidating what is in flight

	// handlersMu serialises Handle; readers load handlers without locking.
	handlersMu sync.Mutex
	handlers   atomic.Pointer[map[string]transport.Handler]

	inbox inbox

	closeOnce sync.Once
	stop      chan struct{} // closed by Close to stop the delivery goroutine; returned by Done
	done      chan struct{} // closed when the delivery goroutine has exited
}

var (
	_ transport.Transport    = (*Transport)(nil)
	_ transport.DoneNotifier = (*Transport)(nil)
)

// route is a sender's cached way to one receiver.
type route struct {
	dst  *Transport
	link *link
}

// Errors returned by Send, built once so the hot path does not allocate.
var (
	errClosed    = fmt.Errorf("memnet: send: %w", transport.ErrClosed)
	errQueueFull = fmt.Errorf("memnet: send: receiver's queue is full: %w", transport.ErrQueueFull)
)

func newTransport(n *Network, id transport.NodeID) *Transport {
	t := &Transport{
		net:  n,
		id:   id,
		out:  make(map[transport.NodeID]route),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	t.inbox.limit = n.cfg.QueueSize
	t.inbox.wake = make(chan struct{}, 1)
	empty := map[string]transport.Handler{}
	t.handlers.Store(&empty)
	return t
}

// ID returns the node's ID.
func (t *Transport) ID() transport.NodeID {
	if t == nil {
		return ""
	}
	return t.id
}

// Send queues a message for the given service on node to and returns
// without waiting for delivery. The network's faults decide its fate: a
// message that is dropped, blocked by a partition, or sent from or to a
// crashed or closed node is counted as dropped and Send still returns nil,
// as a real network gives no error. Send fails with ErrClosed after Close,
// ErrUnknownPeer if to never joined, ErrMessageTooLarge beyond
// Config.MaxPayload, ErrQueueFull when to's queue is full, and ctx's error
// if ctx is already done. It takes ownership of payload; duplicates share it.
func (t *Transport) Send(ctx context.Context, to transport.NodeID, service string, payload []byte) error {
	if t == nil || t.net == nil {
		return errTransportNotNew
	}
	if ctx == nil {
		return fmt.Errorf("%w: nil context", ErrInvalidConfig)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	n := t.net
	if len(payload) > n.cfg.MaxPayload {
		return fmt.Errorf("memnet: send %d bytes to %q: limit %d: %w", len(payload), to, n.cfg.MaxPayload, transport.ErrMessageTooLarge)
	}

	n.mu.Lock()
	if t.closed {
		n.mu.Unlock()
		return errClosed
	}
	// One map lookup on the hot path: the route caches both the link and
	// the receiver, and is refreshed when the receiver was closed (a later
	// Join may have replaced it).
	r := t.out[to]
	if r.dst == nil || r.dst.closed {
		dst := n.nodes[to]
		if dst == nil {
			n.mu.Unlock()
			return fmt.Errorf("memnet: send to %q: %w", to, transport.ErrUnknownPeer)
		}
		if r.link == nil {
			r.link = n.linkLocked(t.id, to)
		}
		r.dst = dst
		t.out[to] = r
	}
	dst, l := r.dst, r.link
	fate := netfault.Fate{Copies: 1}
	switch {
	case dst.closed || t.crashed.Load() || dst.crashed.Load():
		fate.Copies = 0
	case n.quiet.Load():
		// A perfect network: one copy, no delay, nothing blocked.
	case n.rules.Blocked(t.id, to):
		fate.Copies = 0
	default:
		fate = netfault.Decide(n.rules.FaultsFor(t.id, to), l.rng)
	}
	it := item{
		msg:      transport.Message{From: t.id, To: to, Service: service, Payload: payload},
		src:      t,
		srcEpoch: t.epoch.Load(),
		dstEpoch: dst.epoch.Load(),
		link:     l,
	}
	n.mu.Unlock()

	l.sent.Add(1)
	if fate.Copies == 0 {
		l.dropped.Add(1)
		return nil
	}
	if fate.Copies > 1 {
		l.duplicated.Add(1)
	}
	for i := range fate.Copies {
		n.idle.add(1)
		switch dst.inbox.push(it, fate.Delays[i], n.since) {
		case pushFull:
			n.idle.done(1)
			l.dropped.Add(uint64(fate.Copies - i))
			if i == 0 {
				return errQueueFull
			}
			return nil // the original got in; only the duplicate was lost
		case pushClosed:
			n.idle.done(1)
			l.dropped.Add(uint64(fate.Copies - i))
			return nil
		}
	}
	return nil
}

// Handle registers h for messages addressed to service, replacing any
// earlier handler; a nil h removes it. Messages for a service with no
// handler are dropped (and counted). Handlers survive Crash and Restart;
// after Close, Handle has no effect.
func (t *Transport) Handle(service string, h transport.Handler) {
	if t == nil || t.net == nil {
		return // a zero Transport; Send and Close report it
	}
	t.handlersMu.Lock()
	defer t.handlersMu.Unlock()
	old := *t.handlers.Load()
	next := make(map[string]transport.Handler, len(old)+1)
	for s, oh := range old {
		next[s] = oh
	}
	if h == nil {
		delete(next, service)
	} else {
		next[service] = h
	}
	t.handlers.Store(&next)
}

// Close takes the node off the network: queued messages are dropped, Sends
// from it fail with ErrClosed, Sends to it are dropped, and Close waits for
// the delivery goroutine (and so for a running handler) to finish. The
// Network may then issue a new Transport for the same ID with Join. Close is
// idempotent and safe to call concurrently.
func (t *Transport) Close() error {
	if t == nil || t.net == nil {
		return errTransportNotNew
	}
	t.closeOnce.Do(func() {
		t.net.mu.Lock()
		t.closed = true
		t.closing.Store(true)
		t.net.mu.Unlock()
		t.inbox.discard(true, &t.net.idle)
		close(t.stop)
	})
	<-t.done
	return nil
}

// Done returns a channel that is closed once Close begins. It implements
// transport.DoneNotifier, so an RPC on this transport fails its pending
// calls with ErrClosed at once instead of waiting for their deadlines. A
// Crash does not close it: a crashed node's transport is still open and
// its calls time out, as they would against a real crashed process.
func (t *Transport) Done() <-chan struct{} {
	if t == nil {
		return nil
	}
	return t.stop
}

// deliverLoop is the node's delivery goroutine. It runs until Close.
func (t *Transport) deliverLoop() {
	defer close(t.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var batch []item
	for {
		var wait time.Duration
		var ok bool
		batch, wait, ok = t.inbox.take(batch, t.net.since())
		if !ok {
			return
		}
		if len(batch) == 0 {
			var tick <-chan time.Time
			if wait > 0 {
				timer.Reset(wait)
				tick = timer.C
			}
			select {
			case <-t.inbox.wake:
			case <-tick:
			case <-t.stop:
				return
			}
			timer.Stop()
			continue
		}
		for i := range batch {
			t.deliver(&batch[i])
			batch[i] = item{} // let the payload be collected
		}
	}
}

// deliver hands one message to its handler unless the network lost it in
// the meantime: a crash of either end since Send, the receiver closing, or
// a partition or cut that now separates them.
func (t *Transport) deliver(it *item) {
	defer t.net.idle.done(1)
	m := &it.msg
	if it.dstEpoch != t.epoch.Load() || t.crashed.Load() || t.closing.Load() ||
		it.srcEpoch != it.src.epoch.Load() || t.net.blocked(m.From, m.To) {
		it.link.dropped.Add(1)
		return
	}
	h := (*t.handlers.Load())[m.Service]
	if h == nil {
		it.link.dropped.Add(1)
		return
	}
	it.link.delivered.Add(1)
	t.call(h, *m)
}

// call runs a handler, containing a panic to this one message.
func (t *Transport) call(h transport.Handler, msg transport.Message) {
	defer func() {
		if r := recover(); r != nil {
			t.net.panics.Add(1)
			t.net.log.Warn("memnet: handler panicked; message lost",
				"node", t.id, "from", msg.From, "service", msg.Service, "panic", r)
		}
	}()
	h(msg)
}
