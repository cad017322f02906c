// Package transporttest is the conformance suite every transport.Transport
// implementation runs, much like net/http/httptest serves HTTP tests. A new
// implementation proves that it keeps the Transport contract by calling Run
// from one of its tests:
//
//	func TestConformance(t *testing.T) {
//		transporttest.Run(t, func(t *testing.T, ids []transport.NodeID) []transport.Transport {
//			// Build one connected, fault-free Transport per id, in order.
//			return newCluster(t, ids)
//		}, transporttest.Options{FIFO: true, MaxPayload: 1 << 20})
//	}
//
// The suite checks, each in its own subtest: IDs; delivery between every
// pair of nodes with From, To, Service and Payload intact; routing by
// service, replacing and removing handlers; per-link FIFO order when
// Options.FIFO says the implementation promises it; concurrent senders;
// large messages and oversized ones (ErrMessageTooLarge); unknown peers
// (ErrUnknownPeer); a panicking handler that must not kill the node; Close
// semantics (Send after Close fails with ErrClosed, Close is idempotent,
// sending to a closed peer never blocks, no goroutine outlives Close); and
// request/response round trips through transport.RPC, including remote
// errors, cancellation, deadlines and pending calls failing fast with
// ErrClosed.
//
// The factory's duties:
//
//  1. Return len(ids) transports, the i-th with ID ids[i], all able to reach
//     each other by ID once the factory returns (connections may still be
//     established lazily).
//  2. Inject no faults: every message that Send accepts while both ends are
//     open must eventually be delivered.
//  3. Accept bursts of at least 256 messages per link without ErrQueueFull.
//  4. Release everything it started when the transports are closed or, at
//     the latest, in t.Cleanup callbacks: the suite checks for goroutine
//     leaks after the subtest that created the cluster ends.
//
// The suite closes every transport it receives, so the factory need not.
// Run must not be called in parallel with other tests of the same process,
// because the leak check counts all goroutines.
package transporttest
