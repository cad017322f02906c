// Package transport is the contract every distkit protocol speaks: a small
// Transport interface that moves one-way messages between named nodes, and
// an RPC layer that builds request/response calls on top of any Transport.
//
// Implementations live in subpackages: memnet (an in-process network with
// scriptable faults, for tests and the tour) and tcp (real sockets, with
// optional mutual TLS). Package transporttest is the conformance suite both
// run; a third-party Transport can run it too.
//
// # One-way messages
//
// Several protocols share one node's Transport; each registers a Handler for
// its own service name:
//
//	t.Handle("detector", func(msg transport.Message) { … })
//	err := t.Send(ctx, "n2", "detector", payload)
//
// # Calls
//
// RPC adds correlation IDs, deadlines, cancellation and remote errors:
//
//	rpc, err := transport.NewRPC(t, transport.DefaultRPCConfig())
//	defer rpc.Close()
//	rpc.Handle("kv.get", func(ctx context.Context, from transport.NodeID, req []byte) ([]byte, error) {
//		return store.Get(ctx, req)
//	})
//	resp, err := rpc.Call(ctx, "n2", "kv.get", key)
//	var re *transport.RemoteError
//	if errors.As(err, &re) { … the handler on n2 failed: re.Code, re.Message … }
//
// One RPC per Transport serves every protocol of the node: each registers its
// own services with RPC.Handle. A caller's context deadline (or
// RPCConfig.Timeout) travels with the request and bounds the handler's
// context on the callee; a caller that gives up frees its slot at once and
// tells the callee, which cancels the handler's context.
//
// # Wire format
//
// An RPC message is a one-way message on RPCConfig.Service whose payload is
// a compact binary envelope: a version byte, a kind byte (request, response,
// error, cancel), the call ID as a uvarint, and for requests the remaining
// time budget and the service name, followed by the opaque body. Decoding
// checks every length against the bytes present and never panics
// (FuzzDecodeEnvelope).
//
// # Caller duties
//
//  1. Treat a received Message.Payload as read-only; it may be retained.
//  2. Do not modify a payload after passing it to Send (Call copies its
//     request, so the caller keeps it).
//  3. Keep Handlers short: a transport that promises FIFO order runs a
//     link's handlers one after another. RequestHandlers run on their own
//     goroutines and may block until their context ends.
//  4. Expect loss: a nil error from Send does not mean delivery, and a Call
//     may time out although the callee ran the handler. Make handlers
//     idempotent or deduplicate (package idempotency).
//  5. Close the RPC and the Transport when done; both wait for their
//     goroutines.
//
// # Concurrency
//
// Transport and RPC are safe for concurrent use. Handlers may run
// concurrently with each other (for different links), so they synchronise
// their own state.
//
// # Fault model
//
// Transports are best effort: messages may be lost, delayed, duplicated or,
// unless the implementation promises FIFO per link, reordered; nodes crash
// and restart. Nothing is Byzantine: a node's ID is trusted as claimed (the
// tcp transport can bind IDs to TLS certificates). RPC tolerates loss through
// deadlines, duplication through per-caller call IDs (a duplicate of a
// request still running is ignored; responses match their call and the
// calling node only once), and restarts by starting call IDs at a random
// point.
//
// # Tests
//
// The property tests run a few seeds by default; DISTKIT_SOAK=1 runs 100
// (go test -run Lossy ./transport/).
package transport
