package lock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/distkit/distkit/clock"
	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
)

// ServerConfig configures a Server: one member of a replicated lock
// service.
type ServerConfig struct {
	// Consensus configures the Raft node (ID, Peers, DataDir…). Its
	// transport Service must differ from the RPC's (RPCConfig.Service).
	Consensus consensus.Config
	// Table configures the lock table; every member must use the same.
	Table TableConfig
	// Service is the name, within the RPC, of the service clients call.
	Service string
	// TickInterval is how often the leader proposes its time, so leases
	// expire without waiting for client traffic. Expiry is late by up to
	// this much (plus commit latency), never early.
	TickInterval time.Duration
	// WaitPoll is the longest an acquire waits inside one RPC before the
	// server answers "still queued" and the client asks again; it bounds
	// how long a waiter can stay attached to a deposed leader.
	WaitPoll time.Duration
	// Clock stamps the commands this member proposes as leader. nil means
	// clock.System, of which only the monotonic elapsed time counts (a
	// wall-clock step moves no lease; a new term rebases the table on the
	// new leader's stamps anyway).
	Clock clock.Source
	// Logger receives server events. nil is silent.
	Logger *slog.Logger
}

// DefaultServerConfig returns consensus.DefaultConfig with service "lock",
// ticks every 50 ms and acquires re-polled every second. Set
// Consensus.ID, Consensus.Peers and (for durability) Consensus.DataDir.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		Consensus:    consensus.DefaultConfig(),
		Table:        DefaultTableConfig(),
		Service:      "lock",
		TickInterval: 50 * time.Millisecond,
		WaitPoll:     time.Second,
	}
}

// Validate reports the first problem with c (the consensus part is
// checked by consensus.New).
func (c ServerConfig) Validate() error {
	switch {
	case c.Service == "":
		return fmt.Errorf("%w: Service is empty", ErrInvalidConfig)
	case c.TickInterval <= 0:
		return fmt.Errorf("%w: TickInterval is %v; want > 0", ErrInvalidConfig, c.TickInterval)
	case c.WaitPoll <= 0:
		return fmt.Errorf("%w: WaitPoll is %v; want > 0", ErrInvalidConfig, c.WaitPoll)
	}
	return c.Table.Validate()
}

// Server is one member of a replicated lock service: a consensus.Node whose
// state machine is the lock table, an RPC handler that serves Remote
// clients, and, while this member leads, a ticker that proposes the time.
// Requests are served by the leader; other members answer with the leader
// they know, and the client goes there. Every change goes through the log;
// OpHolder is read through consensus.Node.Read when no lease or lock-delay
// is due (see the package documentation), so answers are linearizable.
type Server struct {
	cfg   ServerConfig
	clock steadyClock // stamps proposals
	sm    *StateMachine
	node  *consensus.Node
	rpc   *transport.RPC

	stop chan struct{}
	wg   sync.WaitGroup // the ticker goroutine
	once sync.Once
}

// NewServer starts a member on tr, serving clients through rpc (which the
// caller created on tr and keeps ownership of: close the Server first,
// then the RPC, then the transport).
func NewServer(cfg ServerConfig, tr transport.Transport, rpc *transport.RPC) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if tr == nil || rpc == nil {
		return nil, fmt.Errorf("%w: nil transport or RPC", ErrInvalidConfig)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System{}
	}
	sm, err := NewStateMachine(cfg.Table)
	if err != nil {
		return nil, err
	}
	node, err := consensus.New(cfg.Consensus, tr, sm)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	s := &Server{cfg: cfg, clock: newSteadyClock(cfg.Clock), sm: sm, node: node, rpc: rpc, stop: make(chan struct{})}
	rpc.Handle(cfg.Service, s.serve)
	s.wg.Add(1)
	go s.tickLoop()
	return s, nil
}

// Node returns the member's consensus node (for Status).
// A nil *Server has none.
func (s *Server) Node() *consensus.Node {
	if s == nil {
		return nil
	}
	return s.node
}

// StateMachine returns the member's replica of the lock table.
// A nil *Server has none.
func (s *Server) StateMachine() *StateMachine {
	if s == nil {
		return nil
	}
	return s.sm
}

// errServerNotNew is what Close reports on a Server not made by NewServer.
var errServerNotNew = fmt.Errorf("%w: Server not created by NewServer", ErrInvalidConfig)

// Close stops serving, stops the ticker and closes the consensus node. It
// waits for all of them and is idempotent.
func (s *Server) Close() error {
	if s == nil || s.node == nil {
		return errServerNotNew
	}
	var err error
	s.once.Do(func() {
		s.rpc.Handle(s.cfg.Service, nil)
		close(s.stop)
		s.wg.Wait()
		err = s.node.Close()
	})
	return err
}

// tickLoop proposes the leader's time every TickInterval while this member
// leads and sessions exist.
func (s *Server) tickLoop() {
	defer s.wg.Done()
	ticker := time.NewTicker(s.cfg.TickInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
		case <-s.stop:
			return
		}
		if s.node.Status().Role != raft.Leader || s.sm.Sessions() == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 4*s.cfg.TickInterval)
		if _, err := s.propose(ctx, Request{Op: opTick}); err != nil && s.cfg.Logger != nil {
			s.cfg.Logger.Debug("lock: tick failed", "err", err)
		}
		cancel()
	}
}

// propose stamps req with this member's time and replicates it.
func (s *Server) propose(ctx context.Context, req Request) (Response, error) {
	v, err := s.node.Propose(ctx, encodeCommand(s.clock.Now(), req))
	if err != nil {
		return Response{}, err
	}
	r, ok := v.(applied)
	if !ok {
		return Response{}, fmt.Errorf("lock: unexpected apply result %T", v)
	}
	return r.resp, r.err
}

// serve is the RPC handler of cfg.Service.
func (s *Server) serve(ctx context.Context, from transport.NodeID, body []byte) ([]byte, error) {
	req, err := DecodeRequest(body)
	if err != nil {
		return appendResponse(nil, Response{}, fmt.Errorf("%w: %w", ErrInvalidArgument, err)), nil
	}
	if req.Op == OpHolder {
		if resp, ok := s.readHolder(ctx, req.Name); ok {
			return appendResponse(nil, resp, nil), nil
		}
	}
	var watch chan Grant
	if req.Op == OpAcquire {
		// Registered before proposing, so a grant applied between the
		// proposal's answer and the wait is not missed.
		watch = s.sm.watch(req.Session, req.Name)
		defer s.sm.unwatch(req.Session, req.Name, watch)
	}
	resp, err := s.propose(ctx, req)
	var nle *raft.NotLeaderError
	switch {
	case errors.As(err, &nle):
		return notLeaderResponse(string(nle.Leader)), nil
	case err == nil && req.Op == OpAcquire && !resp.Granted:
		return appendResponse(nil, s.wait(ctx, watch), nil), nil
	}
	return appendResponse(nil, resp, err), nil
}

// readHolder answers OpHolder without the log when it can (ok false: ask
// the log). On the leader, after consensus.Node.Read, the table holds every
// write acknowledged before the request; it reads this member's clock and
// answers only if the table was stamped by this member in its current term
// (so its times are this clock's) and no lease or lock-delay ends by that
// reading: then an OpHolder stamped with it would expire nothing, and the
// answer is the one the log would give at that instant. Otherwise (a
// holder's session due to expire, a lock-delay ending, a leader that has
// not stamped yet, Read failing) the log answers, and its stamp expires
// what is due.
func (s *Server) readHolder(ctx context.Context, name string) (Response, bool) {
	li := s.node.Leader()
	if li.Role != raft.Leader {
		return Response{}, false // the log path answers with the leader
	}
	if err := s.node.Read(ctx); err != nil {
		return Response{}, false
	}
	g, held, ok := s.sm.settledHolder(name, li.Term, s.clock.Now())
	if !ok {
		return Response{}, false
	}
	return Response{Granted: held, Grant: g}, true
}

// wait waits for a queued session's grant, at most WaitPoll and at most
// three quarters of the caller's remaining time (so the answer can still
// reach it), and returns the grant or "still queued".
func (s *Server) wait(ctx context.Context, watch chan Grant) Response {
	d := s.cfg.WaitPoll
	if deadline, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(deadline)*3/4)
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case g := <-watch:
		return Response{Granted: true, Grant: g}
	case <-timer.C:
	case <-ctx.Done():
	case <-s.stop:
	}
	return Response{}
}
