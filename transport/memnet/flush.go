package memnet

import (
	"context"
	"sync"
	"sync/atomic"
)

// idleTracker counts the messages queued or being handled anywhere on the
// network and lets Flush wait until there are none.
type idleTracker struct {
	inflight atomic.Int64 // messages pushed to an inbox and not yet handled or dropped
	waiters  atomic.Int64 // Flush calls waiting; checked so the hot path skips mu

	mu   sync.Mutex    // guards idle
	idle chan struct{} // closed (and replaced) when inflight drops to zero with waiters
}

func (it *idleTracker) add(n int64) { it.inflight.Add(n) }

func (it *idleTracker) done(n int64) {
	// A Flush increments waiters before reading inflight, and done
	// decrements inflight before reading waiters, so at least one of them
	// sees the other (both are sequentially consistent atomics).
	if it.inflight.Add(-n) == 0 && it.waiters.Load() > 0 {
		it.mu.Lock()
		if it.idle != nil {
			close(it.idle)
			it.idle = nil
		}
		it.mu.Unlock()
	}
}

// Flush waits until no message is queued, delayed or being handled anywhere
// on the network, or until ctx ends. Messages sent concurrently with Flush
// may or may not be waited for. Tests use it to observe the network at rest
// (for example the counters) without sleeping.
func (n *Network) Flush(ctx context.Context) error {
	if n == nil {
		return errNetworkNotNew
	}
	it := &n.idle
	for {
		it.mu.Lock()
		it.waiters.Add(1)
		if it.inflight.Load() == 0 {
			it.waiters.Add(-1)
			it.mu.Unlock()
			return nil
		}
		if it.idle == nil {
			it.idle = make(chan struct{})
		}
		ch := it.idle
		it.mu.Unlock()
		select {
		case <-ch:
			it.waiters.Add(-1)
		case <-ctx.Done():
			it.waiters.Add(-1)
			return ctx.Err()
		}
	}
}
