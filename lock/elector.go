package lock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/distkit/distkit/election"
	"github.com/distkit/distkit/transport"
)

// ElectorConfig configures an Elector.
type ElectorConfig struct {
	// ID is this node's ID, recorded as the owner of its sessions so that
	// other nodes learn who leads.
	ID transport.NodeID
	// Name is the election lock's name; every candidate uses the same.
	Name string
	// Session configures the lease behind a leadership (TTL, keepalive,
	// safety margin). Its Owner is set to ID.
	Session SessionConfig
	// PollInterval is how often the elector reads the election lock's
	// holder to keep Leader and Observe current. 0 means the session's
	// TTL/3.
	PollInterval time.Duration
}

// DefaultElectorConfig returns a config for election lock "leader" with
// DefaultSessionConfig. Set ID.
func DefaultElectorConfig() ElectorConfig {
	return ElectorConfig{Name: "leader", Session: DefaultSessionConfig()}
}

// Validate reports the first problem with c.
func (c ElectorConfig) Validate() error {
	switch {
	case c.ID == "" || len(c.ID) > MaxOwnerLen:
		return fmt.Errorf("%w: ID %q; want 1..%d bytes", ErrInvalidConfig, c.ID, MaxOwnerLen)
	case c.Name == "" || len(c.Name) > MaxNameLen:
		return fmt.Errorf("%w: Name of %d bytes; want 1..%d", ErrInvalidConfig, len(c.Name), MaxNameLen)
	case c.PollInterval < 0:
		return fmt.Errorf("%w: PollInterval is %v; want >= 0", ErrInvalidConfig, c.PollInterval)
	}
	s := c.Session
	s.Owner = string(c.ID)
	return s.Validate()
}

// Elector is a lease-based leader election on top of a lock service, like
// etcd's concurrency.Election or Kubernetes' leader election: to campaign
// is to acquire the election lock (candidates queue FIFO), the leadership's
// epoch is the grant's fencing token, to resign is to unlock, and losing
// the session's lease is losing the leadership. It implements
// election.Elector.
//
// A leader learns it lost its lease by its own conservative bound, before
// the service can hand the lock to the next candidate, but a paused leader
// may act after the bound: tag every action with the epoch and let the
// resources reject old epochs (Fence).
//
// An Elector is safe for concurrent use.
type Elector struct {
	svc      Service
	cfg      ElectorConfig
	notifier election.Notifier

	campaign chan struct{} // size 1: held by the one Campaign in progress

	mu        sync.Mutex // guards the fields below
	session   *Session   // the current session; nil before the first Campaign or after loss
	grant     Grant      // the leadership's grant, when leading
	leading   bool
	cancelRun context.CancelFunc // cancels the Campaign in progress
	closed    bool

	base    context.Context // cancelled by Close: ends the poll's reads
	endBase context.CancelFunc
	stop    chan struct{}
	wg      sync.WaitGroup // the poll goroutine and the lease watchers
}

var _ election.Elector = (*Elector)(nil)

// NewElector returns an elector for node cfg.ID on svc. It starts
// observing the election at once; call Campaign to run.
func NewElector(svc Service, cfg ElectorConfig) (*Elector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if svc == nil {
		return nil, fmt.Errorf("%w: nil Service", ErrInvalidArgument)
	}
	cfg.Session.Owner = string(cfg.ID)
	if cfg.PollInterval == 0 {
		cfg.PollInterval = cfg.Session.TTL / 3
	}
	e := &Elector{svc: svc, cfg: cfg, campaign: make(chan struct{}, 1), stop: make(chan struct{})}
	e.base, e.endBase = context.WithCancel(context.Background())
	e.wg.Add(1)
	go e.poll()
	return e, nil
}

// Campaign blocks until this node leads, and returns its leadership, whose
// Epoch is the election lock's fencing token. If this node already leads
// it returns the current leadership, unless its lease bound has passed
// (the watchdog that ends it has not run yet): then it waits for the
// session to end and campaigns again, in a new session.
func (e *Elector) Campaign(ctx context.Context) (election.Leader, error) {
	if e == nil || e.stop == nil {
		return election.Leader{}, errElectorNotNew
	}
	if ctx == nil {
		return election.Leader{}, election.ErrNilContext
	}
	select {
	case e.campaign <- struct{}{}:
		defer func() { <-e.campaign }()
	case <-ctx.Done():
		return election.Leader{}, ctx.Err()
	case <-e.stop:
		return election.Leader{}, election.ErrClosed
	}
	e.mu.Lock()
	for e.leading && !e.session.Valid() {
		// The lease bound passed, and the session's watchdog has not
		// ended the leadership yet (Leader reports none already): it is
		// over, not to be returned. Wait for the session to end, then
		// campaign in a new one.
		s := e.session
		e.mu.Unlock()
		select {
		case <-s.Done():
		case <-ctx.Done():
			return election.Leader{}, ctx.Err()
		case <-e.stop:
			return election.Leader{}, election.ErrClosed
		}
		e.mu.Lock()
		if e.leading && e.session == s {
			e.leading = false // as watchLease would
			e.notifier.Publish(election.Leader{})
		}
	}
	if e.closed {
		e.mu.Unlock()
		return election.Leader{}, election.ErrClosed
	}
	if e.leading {
		l := e.view(e.grant)
		e.mu.Unlock()
		return l, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.cancelRun = cancel
	s := e.session
	e.mu.Unlock()

	if s == nil || s.Err() != nil {
		var err error
		if s, err = NewSession(ctx, e.svc, e.cfg.Session); err != nil {
			return election.Leader{}, e.campaignErr(ctx, err)
		}
		e.mu.Lock()
		e.session = s
		e.mu.Unlock()
	}
	g, err := s.Lock(ctx, e.cfg.Name)
	if err != nil {
		return election.Leader{}, e.campaignErr(ctx, err)
	}
	e.mu.Lock()
	e.cancelRun = nil
	if e.closed {
		e.mu.Unlock()
		// Bounded by the session (Close ends it), so an unreachable
		// service cannot hold this Campaign forever.
		s.Unlock(s.Context(), g)
		return election.Leader{}, election.ErrClosed
	}
	e.grant, e.leading = g, true
	l := e.view(g)
	e.notifier.Publish(l)
	e.wg.Add(1)
	go e.watchLease(s, g)
	e.mu.Unlock()
	return l, nil
}

func (e *Elector) campaignErr(ctx context.Context, err error) error {
	e.mu.Lock()
	closed := e.closed
	e.cancelRun = nil
	e.mu.Unlock()
	switch {
	case closed:
		return election.ErrClosed
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return ctx.Err()
	}
	return fmt.Errorf("lock: campaign: %w", err)
}

func (e *Elector) view(g Grant) election.Leader {
	return election.Leader{ID: transport.NodeID(g.Owner), Epoch: uint64(g.Token)}
}

// watchLease ends the leadership when its session's lease is lost.
func (e *Elector) watchLease(s *Session, g Grant) {
	defer e.wg.Done()
	select {
	case <-s.Done():
	case <-e.stop:
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.leading && e.grant == g {
		e.leading = false
		e.notifier.Publish(election.Leader{}) // who leads next is not known yet
	}
}

// Resign gives up the leadership if this node holds it (unlocking the
// election lock, so the next candidate in line takes over at once) and
// cancels a Campaign in progress.
func (e *Elector) Resign(ctx context.Context) error {
	if e == nil || e.stop == nil {
		return errElectorNotNew
	}
	if ctx == nil {
		return election.ErrNilContext
	}
	e.mu.Lock()
	if e.cancelRun != nil {
		e.cancelRun()
	}
	if !e.leading {
		e.mu.Unlock()
		return nil
	}
	e.leading = false
	g, s := e.grant, e.session
	e.notifier.Publish(election.Leader{})
	e.mu.Unlock()
	if err := s.Unlock(ctx, g); err != nil && !errors.Is(err, ErrNotHolder) {
		return fmt.Errorf("lock: resign: %w", err)
	}
	return nil
}

// Leader returns the current leader as this node knows it. While this
// node leads it checks the lease bound itself: the watchdog that ends the
// leadership may not have run yet.
func (e *Elector) Leader() election.Leader {
	if e == nil || e.stop == nil {
		return election.Leader{}
	}
	e.mu.Lock()
	leading, s := e.leading, e.session
	e.mu.Unlock()
	if leading && !s.Valid() {
		return election.Leader{}
	}
	return e.notifier.Current()
}

// Observe returns a channel with the current view and then every change
// (see election.Elector).
// On an Elector not made by NewElector the channel is closed at once.
func (e *Elector) Observe(ctx context.Context) <-chan election.Leader {
	if e == nil || e.stop == nil {
		c := make(chan election.Leader)
		close(c)
		return c
	}
	return e.notifier.Observe(ctx)
}

// errElectorNotNew is what the methods of an Elector not made by NewElector
// report.
var errElectorNotNew = fmt.Errorf("%w: Elector not created by NewElector", ErrInvalidConfig)

// poll reads the election lock's holder every PollInterval and publishes
// it. It never names this node unless this node knows it leads: a lease
// this node lost may not have expired at the service yet.
func (e *Elector) poll() {
	defer e.wg.Done()
	ticker := time.NewTicker(e.cfg.PollInterval)
	defer ticker.Stop()
	for {
		ctx, cancel := context.WithTimeout(e.base, e.cfg.PollInterval)
		resp, err := e.svc.Do(ctx, Request{Op: OpHolder, Name: e.cfg.Name})
		cancel()
		if err == nil {
			e.mu.Lock()
			switch {
			case e.leading:
				// Our own view is authoritative while we lead.
			case !resp.Granted || resp.Grant.Owner == string(e.cfg.ID):
				e.notifier.Publish(election.Leader{})
			default:
				e.notifier.Publish(e.view(resp.Grant))
			}
			e.mu.Unlock()
		}
		select {
		case <-ticker.C:
		case <-e.stop:
			return
		}
	}
}

// Close resigns if leading, ends the session and stops the goroutines,
// waiting for them. Observers' channels are closed. Close is idempotent.
func (e *Elector) Close() error {
	if e == nil || e.stop == nil {
		return errElectorNotNew
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	if e.cancelRun != nil {
		e.cancelRun()
	}
	s := e.session
	e.leading = false
	close(e.stop)
	e.endBase()
	e.mu.Unlock()
	e.wg.Wait()
	var err error
	if s != nil {
		err = s.Close() // ends the session: the election lock passes on at once
	}
	e.notifier.Close()
	return err
}
