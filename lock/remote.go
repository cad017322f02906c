package lock

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/distkit/distkit/transport"
)

// RemoteConfig configures a Remote client of a replicated lock service.
type RemoteConfig struct {
	// Servers lists the service's members.
	Servers []transport.NodeID
	// Service is the RPC service name the servers handle
	// (ServerConfig.Service).
	Service string
	// AttemptTimeout bounds one request to one server (an acquire gets
	// WaitPoll on top), so a dead or partitioned server costs at most that
	// much before the next is tried. Keep it well below the sessions'
	// keepalive interval: a keepalive stuck on a dead leader for longer
	// costs the lease.
	AttemptTimeout time.Duration
	// WaitPoll is how long an acquire may wait inside one request; match
	// the servers' WaitPoll.
	WaitPoll time.Duration
	// RetryInterval is the pause after a round in which no server could
	// serve (an election is under way); it doubles up to 8 times itself.
	RetryInterval time.Duration
}

// DefaultRemoteConfig returns settings matching DefaultServerConfig. Set
// Servers.
func DefaultRemoteConfig() RemoteConfig {
	return RemoteConfig{Service: "lock", AttemptTimeout: 500 * time.Millisecond, WaitPoll: time.Second,
		RetryInterval: 20 * time.Millisecond}
}

// Validate reports the first problem with c.
func (c RemoteConfig) Validate() error {
	switch {
	case len(c.Servers) == 0:
		return fmt.Errorf("%w: no Servers", ErrInvalidConfig)
	case c.Service == "":
		return fmt.Errorf("%w: Service is empty", ErrInvalidConfig)
	case c.AttemptTimeout <= 0 || c.WaitPoll <= 0 || c.RetryInterval <= 0:
		return fmt.Errorf("%w: AttemptTimeout (%v), WaitPoll (%v) and RetryInterval (%v) must be > 0",
			ErrInvalidConfig, c.AttemptTimeout, c.WaitPoll, c.RetryInterval)
	}
	for i, id := range c.Servers {
		if id == "" || slices.Contains(c.Servers[:i], id) {
			return fmt.Errorf("%w: Servers[%d] is empty or repeated", ErrInvalidConfig, i)
		}
	}
	return nil
}

// Remote is a Service backed by a replicated lock service (Servers) reached
// through an RPC. It finds the leader, follows redirects, moves on from
// dead servers and retries until the request's context ends: every lock
// operation is idempotent for its session, so retrying a request whose
// outcome is unknown is safe. It is safe for concurrent use.
type Remote struct {
	rpc *transport.RPC
	cfg RemoteConfig

	mu     sync.Mutex // guards leader
	leader transport.NodeID
}

var _ Service = (*Remote)(nil)

// NewRemote returns a client calling the servers through rpc, which the
// caller owns.
func NewRemote(rpc *transport.RPC, cfg RemoteConfig) (*Remote, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if rpc == nil {
		return nil, fmt.Errorf("%w: nil RPC", ErrInvalidConfig)
	}
	cfg.Servers = slices.Clone(cfg.Servers)
	return &Remote{rpc: rpc, cfg: cfg, leader: cfg.Servers[0]}, nil
}

// Do performs req at the service's leader (see Service). An OpAcquire
// that has to wait re-polls until the grant or ctx's end.
func (r *Remote) Do(ctx context.Context, req Request) (Response, error) {
	if req.Op == 0 || req.Op > OpHolder {
		return Response{}, fmt.Errorf("%w: operation %d", ErrInvalidArgument, uint8(req.Op))
	}
	body := AppendRequest(nil, req)
	timeout := r.cfg.AttemptTimeout
	if req.Op == OpAcquire {
		timeout += r.cfg.WaitPoll
	}
	r.mu.Lock()
	target := r.leader
	r.mu.Unlock()
	pause := r.cfg.RetryInterval
	failed := 0 // servers that failed since the last pause
	var last error
	for {
		if err := ctx.Err(); err != nil {
			if last != nil {
				return Response{}, fmt.Errorf("lock: %v: %w (last failure: %v)", req.Op, err, last)
			}
			return Response{}, fmt.Errorf("lock: %v: %w", req.Op, err)
		}
		actx, cancel := context.WithTimeout(ctx, timeout)
		raw, err := r.rpc.Call(actx, target, r.cfg.Service, body)
		cancel()
		var resp Response
		if err == nil {
			resp, err = decodeResponse(raw)
		}
		var nl *errNotLeader
		switch {
		case err == nil && req.Op == OpAcquire && !resp.Granted:
			r.setLeader(target)
			failed, pause = 0, r.cfg.RetryInterval
			continue // still queued: ask again
		case err == nil:
			r.setLeader(target)
			return resp, nil
		case errors.As(err, &nl) && nl.hint != "" && nl.hint != string(target) && slices.Contains(r.cfg.Servers, transport.NodeID(nl.hint)):
			target = transport.NodeID(nl.hint)
			last = err
			continue
		case errors.Is(err, ErrLocked), errors.Is(err, ErrNotHolder), errors.Is(err, ErrNoSession),
			errors.Is(err, ErrInvalidArgument):
			r.setLeader(target)
			return Response{}, err
		}
		last = err
		target = r.next(target)
		if failed++; failed >= len(r.cfg.Servers) {
			failed = 0
			t := time.NewTimer(pause)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
			pause = min(2*pause, 8*r.cfg.RetryInterval)
		}
	}
}

func (r *Remote) setLeader(id transport.NodeID) {
	r.mu.Lock()
	r.leader = id
	r.mu.Unlock()
}

func (r *Remote) next(id transport.NodeID) transport.NodeID {
	i := slices.Index(r.cfg.Servers, id)
	return r.cfg.Servers[(i+1)%len(r.cfg.Servers)]
}
