package election

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/transport"
)

// ErrCannotResign is returned by RaftElector.Resign while this node is the
// Raft leader: the consensus package has no leadership transfer yet, and
// an elector that is only an observer of Raft has no other way to step
// down. Close the consensus node to give leadership up.
var ErrCannotResign = errors.New("election: raft leader cannot resign (no leadership transfer in consensus)")

// RaftNode is what RaftElector needs of a Raft node: its Status.
// *consensus.Node implements it.
type RaftNode interface {
	Status() consensus.Status
}

// RaftConfig configures a RaftElector.
type RaftConfig struct {
	// PollInterval is how often the elector reads the node's Status;
	// leadership changes are seen at most this late. consensus has no
	// leadership notification, so the elector polls.
	PollInterval time.Duration
}

// DefaultRaftConfig polls every 10 ms, one Raft tick with consensus's
// DefaultConfig.
func DefaultRaftConfig() RaftConfig { return RaftConfig{PollInterval: 10 * time.Millisecond} }

// Validate reports a problem with c, wrapping ErrInvalidConfig.
func (c RaftConfig) Validate() error {
	if c.PollInterval <= 0 {
		return fmt.Errorf("%w: PollInterval is %v; want > 0", ErrInvalidConfig, c.PollInterval)
	}
	return nil
}

// RaftElector is an Elector over a Raft node: the Raft leader is the
// leader and the Raft term is the epoch. It runs no protocol of its own:
// Raft's election (§5.2 of the Raft paper) already guarantees at most one
// leader per term, and a leader only in a majority. It owns one goroutine
// that polls the node's Status.
type RaftElector struct {
	node  RaftNode
	self  transport.NodeID
	views Notifier

	stopc chan struct{}
	donec chan struct{}
	stop  sync.Once
}

var _ Elector = (*RaftElector)(nil)

// NewRaft returns an elector over node, which must already be running; the
// caller keeps ownership of node and closes it after the elector.
func NewRaft(node RaftNode, cfg RaftConfig) (*RaftElector, error) {
	if cn, ok := node.(*consensus.Node); node == nil || (ok && cn == nil) {
		return nil, fmt.Errorf("%w: nil raft node", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	self := node.Status().ID
	if self == "" {
		return nil, fmt.Errorf("%w: raft node reports no ID", ErrInvalidConfig)
	}
	e := &RaftElector{
		node:  node,
		self:  self,
		stopc: make(chan struct{}),
		donec: make(chan struct{}),
	}
	e.poll()
	go e.run(cfg.PollInterval)
	return e, nil
}

func (e *RaftElector) run(every time.Duration) {
	defer close(e.donec)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-e.stopc:
			return
		case <-t.C:
			e.poll()
		}
	}
}

// poll publishes the node's (leader, term) when it changed. A term only
// grows at one node, so the epochs published never go back.
func (e *RaftElector) poll() {
	st := e.node.Status()
	l := Leader{ID: st.Leader, Epoch: st.Term}
	if cur := e.views.Current(); l != cur && l.Epoch >= cur.Epoch {
		e.views.Publish(l)
	}
}

// Campaign blocks until this node is the Raft leader (Raft elects whoever
// wins a majority; there is no priority), or ctx ends, or the elector is
// closed.
func (e *RaftElector) Campaign(ctx context.Context) (Leader, error) {
	if e == nil || e.stopc == nil {
		return Leader{}, errRaftElectorNotNew
	}
	if ctx == nil {
		return Leader{}, ErrNilContext
	}
	obsCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	for l := range e.views.Observe(obsCtx) {
		if l.ID == e.self {
			return l, nil
		}
	}
	select {
	case <-e.stopc:
		return Leader{}, ErrClosed
	default:
		return Leader{}, ctx.Err()
	}
}

// Resign gives up leadership. Every Raft node stands for election and an
// observer of Raft cannot change that, so on a follower Resign does
// nothing, and while this node leads it fails with ErrCannotResign.
func (e *RaftElector) Resign(ctx context.Context) error {
	if e == nil || e.stopc == nil {
		return errRaftElectorNotNew
	}
	if ctx == nil {
		return ErrNilContext
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-e.stopc:
		return ErrClosed
	default:
	}
	if e.views.Current().ID == e.self {
		return ErrCannotResign
	}
	return nil // a follower has nothing to give up
}

// Leader returns the latest (leader, term) seen.
func (e *RaftElector) Leader() Leader {
	if e == nil || e.stopc == nil {
		return Leader{}
	}
	return e.views.Current()
}

// Observe returns a channel with the current view and every change.
func (e *RaftElector) Observe(ctx context.Context) <-chan Leader {
	if e == nil || e.stopc == nil {
		return closedLeaders()
	}
	return e.views.Observe(ctx)
}

// Close stops polling, waits for the goroutine and closes every Observe
// channel. It does not close the Raft node.
func (e *RaftElector) Close() error {
	if e == nil || e.stopc == nil {
		return errRaftElectorNotNew
	}
	e.stop.Do(func() {
		close(e.stopc)
		<-e.donec
		e.views.Close()
	})
	<-e.donec
	return nil
}
