package election

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/distkit/distkit/transport"
)

// Leader is a node's view of who leads, and since when.
//
// Epoch only grows: every new leadership (a new election, a new term, a new
// lease grant) has a larger epoch than every earlier one. A leader should tag
// its actions with its epoch and the resources it acts on should reject an
// epoch lower than the highest they have seen; that is what makes two nodes
// briefly believing they lead harmless.
type Leader struct {
	// ID is the leader's node ID; empty when no leader is known.
	ID transport.NodeID
	// Epoch is the leadership's epoch (Bully/Ring epoch, Raft term, lock
	// fencing token).
	Epoch uint64
}

// Known reports whether the view names a leader.
func (l Leader) Known() bool { return l.ID != "" }

// Elector is a leader-election algorithm as seen by one node.
//
// An elector cannot stop two nodes from acting as leader at the same instant:
// an old leader may not yet know that it has been replaced. Use the Epoch of
// the Leader as a fencing token to make that harmless.
//
// Implementations are safe for concurrent use.
type Elector interface {
	// Campaign blocks until this node is the leader, and returns the
	// leadership it won, or until ctx ends (returning ctx.Err()) or the
	// elector is closed (ErrClosed). A node that can never lead (for example
	// a Bully node that is not the highest live priority) keeps waiting.
	Campaign(ctx context.Context) (Leader, error)

	// Resign gives up leadership if this node holds it, and stops this node
	// from campaigning until Campaign is called again. When it returns nil,
	// Leader and Observe no longer name this node.
	Resign(ctx context.Context) error

	// Leader returns the current leader as this node knows it.
	Leader() Leader

	// Observe returns a channel that receives the current view at once and
	// then every change. A slow reader never blocks the elector: the channel
	// holds one value, and a newer view replaces an unread older one. The
	// channel is closed when ctx ends or the elector is closed.
	Observe(ctx context.Context) <-chan Leader

	// Close stops the elector (resigning if it leads) and waits for its
	// goroutines to exit. Close is idempotent.
	Close() error
}

// Sentinel errors shared by the electors. Compare with errors.Is.
var (
	// ErrClosed is returned by operations on a closed elector.
	ErrClosed = errors.New("election: closed")
	// ErrNilContext is returned by Campaign and Resign for a nil context.
	ErrNilContext = errors.New("election: nil context")
)

// Notifier fans a changing Leader view out to observers without ever
// blocking the publisher. Electors embed one as a named field and return
// Notifier.Observe from their Observe method. The zero value is ready to use.
type Notifier struct {
	mu        sync.Mutex // guards the fields below
	current   Leader
	observers map[*observer]struct{}
	closed    bool
}

type observer struct {
	ch   chan Leader // capacity 1: holds the newest unread view
	stop func() bool // unregisters the context callback
}

// Publish records l as the current view and offers it to every observer,
// replacing any view an observer has not read yet. It never blocks.
func (n *Notifier) Publish(l Leader) {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	n.current = l
	for o := range n.observers {
		offer(o.ch, l)
	}
}

// Current returns the last published view.
func (n *Notifier) Current() Leader {
	if n == nil {
		return Leader{}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.current
}

// Observe returns a channel that receives the current view and then every
// change, coalescing views a slow reader missed; it is closed when ctx ends
// or Close is called. It starts no goroutine: the channel is closed by
// whichever comes first, the context's AfterFunc or Close. A nil ctx gets
// a closed channel (there is no error to return).
func (n *Notifier) Observe(ctx context.Context) <-chan Leader {
	if n == nil {
		return closedLeaders()
	}
	o := &observer{ch: make(chan Leader, 1)}
	n.mu.Lock()
	if n.closed || ctx == nil {
		n.mu.Unlock()
		close(o.ch)
		return o.ch
	}
	if n.observers == nil {
		n.observers = make(map[*observer]struct{})
	}
	n.observers[o] = struct{}{}
	o.ch <- n.current
	// Registered under the lock so Close sees stop set; if ctx is already
	// done the callback runs on its own goroutine and waits for the lock.
	o.stop = context.AfterFunc(ctx, func() { n.remove(o) })
	n.mu.Unlock()
	return o.ch
}

func (n *Notifier) remove(o *observer) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.observers[o]; ok {
		delete(n.observers, o)
		close(o.ch)
	}
}

// Close closes every observer's channel; later Publish calls are ignored and
// later Observe calls return a closed channel.
func (n *Notifier) Close() {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	n.closed = true
	for o := range n.observers {
		delete(n.observers, o)
		o.stop()
		close(o.ch)
	}
}

// offer puts l on ch, replacing an unread value. Callers hold the Notifier's
// lock, so offer is the only writer to ch.
func offer(ch chan Leader, l Leader) {
	select {
	case ch <- l:
		return
	default:
	}
	select {
	case <-ch:
	default:
	}
	ch <- l
}

// Errors of the electors not made by their constructors.
var (
	errNodeNotNew        = fmt.Errorf("%w: Node not created by NewBully or NewRing", ErrInvalidConfig)
	errRaftElectorNotNew = fmt.Errorf("%w: RaftElector not created by NewRaft", ErrInvalidConfig)
)

// closedLeaders returns a closed channel: what Observe gives on an elector
// that does not exist, so a range over it ends at once.
func closedLeaders() <-chan Leader {
	c := make(chan Leader)
	close(c)
	return c
}
