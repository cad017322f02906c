package loopback

import (
	"context"
	"fmt"
	"sync"

	"github.com/distkit/distkit/transport"
)

// Network connects the nodes created with Join.
type Network struct {
	maxPayload int
	inboxSize  int

	// mu guards nodes.
	mu    sync.RWMutex
	nodes map[transport.NodeID]*Node
}

// New returns an empty network whose nodes reject payloads larger than
// maxPayload and hold up to inboxSize undelivered messages each.
func New(maxPayload, inboxSize int) *Network {
	return &Network{maxPayload: maxPayload, inboxSize: inboxSize, nodes: make(map[transport.NodeID]*Node)}
}

// Node is one node's Transport.
type Node struct {
	id  transport.NodeID
	net *Network
	// inbox holds messages waiting for delivery; its capacity is the
	// network's inboxSize, the bound that makes Send fail with
	// ErrQueueFull rather than block.
	inbox chan transport.Message
	done  chan struct{} // closed by Close
	wg    sync.WaitGroup

	closeOnce sync.Once

	// mu guards handlers and closed.
	mu       sync.RWMutex
	handlers map[string]transport.Handler
	closed   bool
}

var (
	_ transport.Transport    = (*Node)(nil)
	_ transport.DoneNotifier = (*Node)(nil)
)

// Join adds a node to the network and starts its delivery goroutine.
func (n *Network) Join(id transport.NodeID) (*Node, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.nodes[id]; ok {
		return nil, fmt.Errorf("loopback: node %q already joined", id)
	}
	node := &Node{
		id:       id,
		net:      n,
		inbox:    make(chan transport.Message, n.inboxSize),
		done:     make(chan struct{}),
		handlers: make(map[string]transport.Handler),
	}
	n.nodes[id] = node
	node.wg.Add(1)
	go node.deliver()
	return node, nil
}

// ID implements transport.Transport.
func (n *Node) ID() transport.NodeID { return n.id }

// Done implements transport.DoneNotifier.
func (n *Node) Done() <-chan struct{} { return n.done }

// Send implements transport.Transport.
func (n *Node) Send(ctx context.Context, to transport.NodeID, service string, payload []byte) error {
	select {
	case <-n.done:
		return transport.ErrClosed
	default:
	}
	if len(payload) > n.net.maxPayload {
		return fmt.Errorf("%w: %d bytes", transport.ErrMessageTooLarge, len(payload))
	}
	n.net.mu.RLock()
	peer := n.net.nodes[to]
	n.net.mu.RUnlock()
	if peer == nil {
		return fmt.Errorf("%w: %q", transport.ErrUnknownPeer, to)
	}
	select {
	case <-peer.done:
		return nil // a crashed peer loses the message
	default:
	}
	select {
	case peer.inbox <- transport.Message{From: n.id, To: to, Service: service, Payload: payload}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	default:
		return fmt.Errorf("%w: to %q", transport.ErrQueueFull, to)
	}
}

// Handle implements transport.Transport.
func (n *Node) Handle(service string, h transport.Handler) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	if h == nil {
		delete(n.handlers, service)
		return
	}
	n.handlers[service] = h
}

// Close implements transport.Transport.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closed = true
		n.mu.Unlock()
		close(n.done)
		n.wg.Wait()
	})
	return nil
}

func (n *Node) deliver() {
	defer n.wg.Done()
	for {
		select {
		case <-n.done:
			return
		case msg := <-n.inbox:
			n.mu.RLock()
			h := n.handlers[msg.Service]
			n.mu.RUnlock()
			if h != nil {
				safeCall(h, msg)
			}
		}
	}
}

// safeCall runs h, containing a panic so that it loses only this message.
func safeCall(h transport.Handler, msg transport.Message) {
	defer func() { _ = recover() }()
	h(msg)
}
