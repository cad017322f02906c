package transport

import (
	"context"
	"errors"
)

// NodeID names a node. It is opaque to the transport: any non-empty string
// that is unique within a cluster will do.
type NodeID string

// Message is the envelope every transport carries.
//
// Several protocols share one node's transport; Service tells them apart
// (for example "raft", "detector" or "txn").
type Message struct {
	From    NodeID
	To      NodeID
	Service string
	// Payload is opaque to the transport. A handler must treat it as
	// read-only (a duplicating network may hand the same slice to two
	// deliveries) but may retain it.
	Payload []byte
}

// Handler receives the messages addressed to one service on one node.
//
// A transport may call a handler from several goroutines at once, so a
// handler must be safe for concurrent use. It should return quickly: slow
// work belongs on the handler's own goroutine, because a transport that
// promises per-link FIFO order delivers a link's messages one after another.
// A panicking handler loses the message but never brings down the node.
type Handler func(msg Message)

// Transport moves messages between nodes. Delivery is best effort: a message
// may be lost, and the protocols built on a Transport tolerate that.
//
// Implementations are safe for concurrent use. The conformance suite in
// package transporttest checks an implementation against this contract.
type Transport interface {
	// ID returns the node this transport belongs to.
	ID() NodeID

	// Send queues a one-way message to the given service on node to. It
	// takes ownership of payload: the caller must not modify it afterwards.
	// Send never blocks forever: it returns once the message is queued, or
	// with an error when the queue towards to is full (ErrQueueFull), ctx
	// ends, the transport is closed (ErrClosed), the peer is unknown
	// (ErrUnknownPeer) or the payload is too large (ErrMessageTooLarge).
	// A nil error does not mean the message was delivered.
	Send(ctx context.Context, to NodeID, service string, payload []byte) error

	// Handle registers h for messages addressed to service, replacing any
	// earlier handler; a nil h removes it. Messages for a service with no
	// handler are dropped. Handle may be called at any time, also after
	// Close (it then has no effect).
	Handle(service string, h Handler)

	// Close stops the transport and waits for its goroutines to exit. Sends
	// after Close fail with ErrClosed. Close is idempotent: later calls
	// return nil.
	Close() error
}

// DoneNotifier is an optional interface of a Transport. Done returns a
// channel that is closed once the transport starts closing. RPC uses it so
// that calls waiting for a response fail at once with ErrClosed when the
// transport under them closes, instead of waiting for their deadline.
type DoneNotifier interface {
	Done() <-chan struct{}
}

// Sentinel errors returned by transports. Compare with errors.Is; the
// returned errors usually wrap these with the peer or service involved.
// Deadlines and cancellation surface as the context's own errors
// (context.DeadlineExceeded, context.Canceled).
var (
	// ErrClosed is returned by operations on a closed transport or RPC.
	ErrClosed = errors.New("transport: closed")
	// ErrUnknownPeer is returned when sending to a node the transport cannot reach by name.
	ErrUnknownPeer = errors.New("transport: unknown peer")
	// ErrMessageTooLarge is returned when a payload exceeds the transport's limit.
	ErrMessageTooLarge = errors.New("transport: message too large")
	// ErrQueueFull is returned when the bounded queue towards a peer is
	// full, and by RPC.Call when too many calls are already pending.
	ErrQueueFull = errors.New("transport: queue full")
)
