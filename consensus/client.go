package consensus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
)

// Proposer is what a Client sends commands to: a *Node, or a stub that
// forwards to a node over the network. Propose follows Node.Propose's
// error contract (ErrNotLeader carrying a *raft.NotLeaderError, ErrClosed,
// ErrProposalLost, ErrOutcomeUnknown, ErrStopped).
type Proposer interface {
	Propose(ctx context.Context, cmd []byte) (any, error)
}

var _ Proposer = (*Node)(nil)

// ClientConfig configures a Client.
type ClientConfig struct {
	// AttemptTimeout bounds one attempt on one node, so a partitioned or
	// dead node costs at most this much before the next is tried.
	AttemptTimeout time.Duration
	// RetryInterval is the first pause after a round in which no node
	// knew the leader (an election is under way); it doubles up to
	// 8*RetryInterval.
	RetryInterval time.Duration
	// RetryAmbiguous also retries failures after which the command may or
	// may not have been applied (an attempt timed out, or the node stopped
	// with the command in flight). Retrying then may apply a command twice:
	// enable it only for idempotent commands, or deduplicate in the state
	// machine (Raft thesis §6.3). Failures that prove the command was not
	// applied (not the leader, proposal lost, node closed) are always
	// retried.
	RetryAmbiguous bool
}

// DefaultClientConfig returns a configuration suited to DefaultConfig
// nodes.
func DefaultClientConfig() ClientConfig {
	return ClientConfig{AttemptTimeout: time.Second, RetryInterval: 20 * time.Millisecond}
}

// Validate reports the first problem with c.
func (c ClientConfig) Validate() error {
	switch {
	case c.AttemptTimeout <= 0:
		return fmt.Errorf("%w: client AttemptTimeout is %v; want > 0", ErrInvalidConfig, c.AttemptTimeout)
	case c.RetryInterval <= 0:
		return fmt.Errorf("%w: client RetryInterval is %v; want > 0", ErrInvalidConfig, c.RetryInterval)
	}
	return nil
}

// Client sends commands to a cluster: it remembers the leader, follows
// ErrNotLeader's hint, moves on from dead nodes and retries until the
// caller's context ends. It is safe for concurrent use.
type Client struct {
	cfg     ClientConfig
	ids     []transport.NodeID // sorted, for a deterministic search order
	members map[transport.NodeID]Proposer

	mu     sync.Mutex // guards leader
	leader transport.NodeID
}

// NewClient returns a Client for the given members.
func NewClient(members map[transport.NodeID]Proposer, cfg ClientConfig) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(members) == 0 {
		return nil, fmt.Errorf("%w: client has no members", ErrInvalidConfig)
	}
	c := &Client{cfg: cfg, members: make(map[transport.NodeID]Proposer, len(members))}
	for id, p := range members {
		if id == "" || p == nil {
			return nil, fmt.Errorf("%w: client member %q is empty or nil", ErrInvalidConfig, id)
		}
		c.members[id] = p
		c.ids = append(c.ids, id)
	}
	slices.Sort(c.ids)
	c.leader = c.ids[0]
	return c, nil
}

// errNoClient is what a Client not created by NewClient reports.
var errNoClient = fmt.Errorf("%w: Client not created by NewClient", ErrInvalidConfig)

// Leader returns the node the client currently believes leads ("" for a
// Client not created by NewClient).
func (c *Client) Leader() transport.NodeID {
	if c == nil {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leader
}

// Propose proposes cmd to the leader and returns the result of applying it.
// It returns when the command is applied, when a failure is not worth
// retrying (see ClientConfig.RetryAmbiguous), or when ctx ends; the error
// then wraps ctx's error (outcome unknown) and names the last failure.
// After trying as many nodes as there are members without success (an
// election is under way), it pauses before the next round.
func (c *Client) Propose(ctx context.Context, cmd []byte) (any, error) {
	if c == nil || len(c.ids) == 0 {
		return nil, errNoClient
	}
	if ctx == nil {
		return nil, ErrNilContext
	}
	target := c.Leader()
	pause := c.cfg.RetryInterval
	tried := 0 // nodes tried since the last pause
	var lastErr error
	for {
		if err := ctx.Err(); err != nil {
			if lastErr != nil {
				return nil, fmt.Errorf("consensus: client: %w (last failure: %v)", err, lastErr)
			}
			return nil, fmt.Errorf("consensus: client: %w", err)
		}
		actx, cancel := context.WithTimeout(ctx, c.cfg.AttemptTimeout)
		res, err := c.members[target].Propose(actx, cmd)
		attemptTimedOut := actx.Err() != nil && ctx.Err() == nil
		cancel()
		if err == nil {
			c.setLeader(target)
			return res, nil
		}
		lastErr = err
		var nle *raft.NotLeaderError
		switch {
		case errors.As(err, &nle) && nle.Leader != "" && nle.Leader != target && c.members[nle.Leader] != nil:
			// Follow the hint at once. It still counts as a try below:
			// stale hints during an election can point in a circle.
			target = nle.Leader
		case errors.Is(err, ErrNotLeader), errors.Is(err, ErrProposalLost), errors.Is(err, ErrClosed),
			errors.Is(err, raft.ErrProposalDropped):
			// Certainly not applied: safe to retry anywhere.
			target = c.next(target)
		case errors.Is(err, ErrStopped), errors.Is(err, ErrOutcomeUnknown), attemptTimedOut:
			if !c.cfg.RetryAmbiguous {
				return nil, err
			}
			target = c.next(target)
		default:
			return nil, err
		}
		if tried++; tried >= len(c.ids) {
			tried = 0
			t := time.NewTimer(pause)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
			pause = min(2*pause, 8*c.cfg.RetryInterval)
		}
	}
}

func (c *Client) setLeader(id transport.NodeID) {
	c.mu.Lock()
	c.leader = id
	c.mu.Unlock()
}

func (c *Client) next(id transport.NodeID) transport.NodeID {
	i := slices.Index(c.ids, id)
	return c.ids[(i+1)%len(c.ids)]
}
