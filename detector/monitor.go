package detector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/distkit/distkit/clock"
	"github.com/distkit/distkit/transport"
)

// MonitorOptions are the runtime settings of a Monitor. The zero value is
// usable: the system clock, no logging, a random seed.
type MonitorOptions struct {
	// Clock tells the time the detectors judge by. Nil means clock.System.
	// Timers are real: the Monitor sleeps until the time the core asks
	// for, as measured by Clock.
	Clock clock.Source
	// Logger receives status changes (Info) and send failures (Debug).
	// Nil is silent.
	Logger *slog.Logger
	// Seed drives heartbeat jitter and the choice of helpers. Zero picks a
	// random one.
	Seed uint64
	// EventBuffer is how many undelivered events the Monitor keeps for a
	// slow reader of Events; past it the oldest are dropped and counted in
	// MonitorStats.EventsDropped, so a reader that stalls never stalls
	// failure detection. Default (0) 1024.
	EventBuffer int
}

// MonitorStats are a Monitor's counters.
type MonitorStats struct {
	Membership    MembershipStats
	EventsDropped uint64 // events discarded because the reader fell behind
	SendErrors    uint64 // Sends the transport refused (the message is lost, as on a lossy network)
}

// Monitor runs a Membership over a transport.Transport with real timers:
// it heartbeats the members, probes suspects directly and through other
// members, answers probes about itself and delivers status changes on
// Events.
//
// A Monitor owns two goroutines, one that ticks the core and one that
// delivers events; Close stops both and waits for them. The transport is
// the caller's: the Monitor registers a handler for Service on it and
// removes it on Close, but does not close it. All methods are safe for
// concurrent use. Build one with NewMonitor; a zero Monitor behaves as a
// closed one.
type Monitor struct {
	tr     transport.Transport
	clock  clock.Source
	log    *slog.Logger
	ctx    context.Context // cancelled by Close; bounds every Send
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex // guards core and closed
	core   *Membership
	closed bool // also true in effect while core is nil (a zero Monitor): see dead

	qmu     sync.Mutex // guards queue, head, dropped and sendErr
	queue   []Event    // events not yet delivered, oldest first, at most bufCap
	head    uint64     // sequence number of queue[0], counting every event ever queued
	bufCap  int
	dropped uint64
	sendErr uint64
	wake    chan struct{} // size 1: a pending "queue is non-empty" signal is enough
	events  chan Event    // unbuffered: what the reader sees; closed by Close
}

// NewMonitor starts monitoring on tr with no members; add them with
// AddMember. It returns an error wrapping ErrInvalidConfig for a bad config.
func NewMonitor(tr transport.Transport, cfg Config, opts MonitorOptions) (*Monitor, error) {
	if tr == nil {
		return nil, fmt.Errorf("%w: nil transport", ErrInvalidConfig)
	}
	if opts.EventBuffer < 0 {
		return nil, fmt.Errorf("%w: EventBuffer %d must not be negative", ErrInvalidConfig, opts.EventBuffer)
	}
	if opts.Clock == nil {
		opts.Clock = clock.System{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Seed == 0 {
		opts.Seed = rand.Uint64()
	}
	if opts.EventBuffer == 0 {
		opts.EventBuffer = 1024
	}
	core, err := NewMembership(tr.ID(), cfg, opts.Seed, opts.Clock.Now())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Monitor{
		tr:     tr,
		clock:  opts.Clock,
		log:    opts.Logger.With("node", tr.ID()),
		ctx:    ctx,
		cancel: cancel,
		core:   core,
		bufCap: opts.EventBuffer,
		wake:   make(chan struct{}, 1),
		events: make(chan Event),
	}
	tr.Handle(Service, m.handle)
	m.wg.Add(2)
	go m.tick()
	go m.deliver()
	return m, nil
}

// Events returns the channel status changes arrive on, in order. It is
// closed after Close. A reader that falls more than EventBuffer events
// behind loses the oldest ones (see MonitorStats.EventsDropped).
func (m *Monitor) Events() <-chan Event {
	if m == nil {
		return nil
	}
	if m.events == nil {
		return closedEvents // a zero Monitor
	}
	return m.events
}

// closedEvents is the Events channel of a zero Monitor.
var closedEvents = func() chan Event {
	c := make(chan Event)
	close(c)
	return c
}()

// dead reports whether m is closed or was never built. m.mu is held.
func (m *Monitor) dead() bool { return m.closed || m.core == nil }

// AddMember starts monitoring id. It fails with ErrClosed after Close,
// ErrSelf, ErrDuplicateMember or ErrInvalidConfig (an empty ID), and with
// ctx's error if ctx is already done.
func (m *Monitor) AddMember(ctx context.Context, id transport.NodeID) error {
	if m == nil {
		return errNilDetector
	}
	return m.change(ctx, func(core *Membership) error { return core.AddMember(id, m.clock.Now()) })
}

// RemoveMember stops monitoring id. It fails with ErrClosed after Close,
// ErrUnknownMember, or ctx's error if ctx is already done.
func (m *Monitor) RemoveMember(ctx context.Context, id transport.NodeID) error {
	if m == nil {
		return errNilDetector
	}
	return m.change(ctx, func(core *Membership) error { return core.RemoveMember(id) })
}

// change applies a membership change to the core, unless ctx is done or
// the Monitor is closed.
func (m *Monitor) change(ctx context.Context, apply func(core *Membership) error) error {
	if ctx == nil {
		return errNilContext
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dead() {
		return ErrClosed
	}
	return apply(m.core)
}

// errNilContext is returned for a nil context.
var errNilContext = errors.New("detector: nil context")

// Members returns every member's current state, sorted by ID.
func (m *Monitor) Members() []MemberState {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.core == nil {
		return nil
	}
	return m.core.Members(m.clock.Now())
}

// Member returns one member's current state, or an error wrapping
// ErrUnknownMember.
func (m *Monitor) Member(id transport.NodeID) (MemberState, error) {
	if m == nil {
		return MemberState{}, errNilDetector
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.core == nil {
		return MemberState{}, fmt.Errorf("%w: %q", ErrUnknownMember, id)
	}
	return m.core.Member(id, m.clock.Now())
}

// Incarnation returns this node's current incarnation.
func (m *Monitor) Incarnation() uint64 {
	if m == nil {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.core == nil {
		return 0
	}
	return m.core.Incarnation()
}

// Stats returns the counters so far.
func (m *Monitor) Stats() MonitorStats {
	if m == nil {
		return MonitorStats{}
	}
	m.mu.Lock()
	var s MonitorStats
	if m.core != nil {
		s.Membership = m.core.Stats()
	}
	m.mu.Unlock()
	m.qmu.Lock()
	s.EventsDropped, s.SendErrors = m.dropped, m.sendErr
	m.qmu.Unlock()
	return s
}

// Close stops monitoring: it removes the handler, stops both goroutines,
// waits for them and for any message being handled, and closes the Events
// channel; nothing is sent after it returns. Undelivered events are
// discarded. Close is idempotent and always returns nil.
func (m *Monitor) Close() error {
	if m == nil {
		return errNilDetector
	}
	m.mu.Lock()
	if m.dead() {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	// Cancel first: a handler call in the middle of a Send returns at once,
	// whatever the transport does in Handle.
	m.cancel()
	m.tr.Handle(Service, nil)
	m.wg.Wait()
	close(m.events)
	return nil
}

// handle is the transport handler: it feeds a message to the core.
func (m *Monitor) handle(msg transport.Message) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	// Close waits for this call as for its own goroutines, so that nothing
	// is sent on the caller's transport after Close returns. The Add happens
	// under mu before Close can set closed, hence before its Wait.
	m.wg.Add(1)
	defer m.wg.Done()
	if err := m.core.Receive(m.clock.Now(), msg.From, msg.Payload); err != nil {
		m.log.Debug("detector: dropped a message", "from", msg.From, "err", err)
	}
	rd := m.core.Ready()
	m.enqueue(rd.Events) // under mu, so events keep the core's order
	m.mu.Unlock()
	m.send(rd.Messages)
}

// tick sleeps until the core's next deadline, ticks it and sends what it
// produced, until Close.
func (m *Monitor) tick() {
	defer m.wg.Done()
	timer := time.NewTimer(time.Hour) // reset before every wait
	defer timer.Stop()
	for {
		m.mu.Lock()
		next := m.core.NextTick()
		m.mu.Unlock()
		timer.Reset(max(next.Sub(m.clock.Now()), 0))
		select {
		case <-m.ctx.Done():
			return
		case <-timer.C:
		}
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return
		}
		m.core.Tick(m.clock.Now())
		rd := m.core.Ready()
		m.enqueue(rd.Events)
		m.mu.Unlock()
		m.send(rd.Messages)
	}
}

func (m *Monitor) send(msgs []Envelope) {
	for _, e := range msgs {
		if err := m.tr.Send(m.ctx, e.To, Service, e.Payload); err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, transport.ErrClosed) {
				return
			}
			m.qmu.Lock()
			m.sendErr++
			m.qmu.Unlock()
			m.log.Debug("detector: send failed", "to", e.To, "err", err)
		}
	}
}

// enqueue queues events for delivery, dropping the oldest past bufCap.
func (m *Monitor) enqueue(evs []Event) {
	if len(evs) == 0 {
		return
	}
	for _, e := range evs {
		m.log.Info("detector: "+e.Kind.String(), "member", e.Member, "phi", e.Phi, "incarnation", e.Incarnation)
	}
	m.qmu.Lock()
	m.queue = append(m.queue, evs...)
	if over := len(m.queue) - m.bufCap; over > 0 {
		m.queue = append(m.queue[:0], m.queue[over:]...)
		m.head += uint64(over)
		m.dropped += uint64(over)
	}
	m.qmu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// deliver hands queued events to the reader of Events, one at a time,
// until Close.
func (m *Monitor) deliver() {
	defer m.wg.Done()
	for {
		m.qmu.Lock()
		var next Event
		have, seq := len(m.queue) > 0, m.head
		if have {
			next = m.queue[0]
		}
		m.qmu.Unlock()
		if !have {
			select {
			case <-m.ctx.Done():
				return
			case <-m.wake:
				continue
			}
		}
		select {
		case <-m.ctx.Done():
			return
		case m.events <- next:
			m.qmu.Lock()
			// The event may have been dropped as the oldest meanwhile; pop
			// only if it is still at the head.
			if m.head == seq {
				m.queue = m.queue[1:]
				m.head++
			}
			m.qmu.Unlock()
		}
	}
}
