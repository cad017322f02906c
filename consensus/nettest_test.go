package consensus

import (
	"context"
	"sync"

	"github.com/distkit/distkit/transport"
)

// chanNet is a minimal in-process network for the runtime tests: Send hands
// the payload straight to the receiver's handler (which only queues it).
type chanNet struct {
	mu    sync.Mutex // guards nodes
	nodes map[transport.NodeID]*chanTransport
}

func newChanNet() *chanNet { return &chanNet{nodes: map[transport.NodeID]*chanTransport{}} }

func (n *chanNet) join(id transport.NodeID) transport.Transport {
	t := &chanTransport{net: n, id: id, handlers: map[string]transport.Handler{}}
	n.mu.Lock()
	n.nodes[id] = t
	n.mu.Unlock()
	return t
}

type chanTransport struct {
	net *chanNet
	id  transport.NodeID

	mu       sync.Mutex // guards handlers and closed
	handlers map[string]transport.Handler
	closed   bool
}

func (t *chanTransport) ID() transport.NodeID { return t.id }

func (t *chanTransport) Send(ctx context.Context, to transport.NodeID, service string, payload []byte) error {
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return transport.ErrClosed
	}
	t.net.mu.Lock()
	dst := t.net.nodes[to]
	t.net.mu.Unlock()
	if dst == nil {
		return transport.ErrUnknownPeer
	}
	dst.mu.Lock()
	h := dst.handlers[service]
	if dst.closed {
		h = nil
	}
	dst.mu.Unlock()
	if h != nil {
		h(transport.Message{From: t.id, To: to, Service: service, Payload: payload})
	}
	return nil
}

func (t *chanTransport) Handle(service string, h transport.Handler) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if h == nil {
		delete(t.handlers, service)
		return
	}
	t.handlers[service] = h
}

func (t *chanTransport) Close() error {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	return nil
}
