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
// Raft leader and its RaftNode cannot transfer leadership (it does not
// implement RaftTransferer). *consensus.Node can.
var ErrCannotResign = errors.New("election: raft leader cannot resign (the node offers no leadership transfer)")

// RaftNode is what RaftElector needs of a Raft node: its Status.
// *consensus.Node implements it, and RaftObserver and RaftTransferer too.
type RaftNode interface {
	Status() consensus.Status
}

// RaftObserver is a RaftNode that notifies leadership changes: the elector
// then follows them as they happen instead of polling.
type RaftObserver interface {
	Observe(ctx context.Context) <-chan consensus.LeaderInfo
}

// RaftTransferer is a RaftNode that can hand its leadership over: Resign
// on the leader then transfers leadership to another voter.
type RaftTransferer interface {
	TransferLeadership(ctx context.Context, to transport.NodeID) error
}

var (
	_ RaftObserver   = (*consensus.Node)(nil)
	_ RaftTransferer = (*consensus.Node)(nil)
)

// RaftConfig configures a RaftElector.
type RaftConfig struct {
	// PollInterval is how often the elector reads the node's Status when
	// the node offers no leadership notification (RaftObserver); with one
	// (*consensus.Node) changes are seen as they happen and it is unused.
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
// that follows the node's leadership notifications (or polls its Status,
// for a node without them).
type RaftElector struct {
	node  RaftNode
	self  transport.NodeID
	views Notifier

	// pub makes publish's check and publication one step: the goroutine
	// that follows the node and Resign both publish.
	pub sync.Mutex

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
	if o, ok := node.(RaftObserver); ok {
		ctx, cancel := context.WithCancel(context.Background())
		ch := o.Observe(ctx)
		go e.follow(ch, cancel)
	} else {
		go e.run(cfg.PollInterval)
	}
	return e, nil
}

// follow publishes every leadership change the node notifies, until the
// elector closes (cancel then ends the node's observer).
func (e *RaftElector) follow(ch <-chan consensus.LeaderInfo, cancel context.CancelFunc) {
	defer close(e.donec)
	defer cancel()
	for {
		select {
		case <-e.stopc:
			return
		case li, ok := <-ch:
			if !ok {
				<-e.stopc // the node stopped: nothing more to see
				return
			}
			e.publish(Leader{ID: li.Leader, Epoch: li.Term})
		}
	}
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
	e.publish(Leader{ID: st.Leader, Epoch: st.Term})
}

// publish publishes l if it is news and does not go back in epoch.
func (e *RaftElector) publish(l Leader) {
	e.pub.Lock()
	defer e.pub.Unlock()
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
// nothing; while this node leads, it hands leadership over to the most
// up-to-date other voter (consensus.Node.TransferLeadership) and returns
// once another node leads, or with the transfer's error (ErrCannotResign
// for a node that cannot transfer). When it returns nil, Leader and
// Observe no longer name this node.
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
	if e.node.Status().Leader != e.self {
		// A follower has nothing to give up; a view that still names this
		// node is stale (the node's notification is on the way).
		e.poll()
		return nil
	}
	tr, ok := e.node.(RaftTransferer)
	if !ok {
		return ErrCannotResign
	}
	if err := tr.TransferLeadership(ctx, ""); err != nil {
		return fmt.Errorf("election: resign: %w", err)
	}
	// The node knows another leader now; its notification may still be
	// on the way to the goroutine that follows it.
	e.poll()
	return nil
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

// Close stops following the node, waits for the goroutine and closes every Observe
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
