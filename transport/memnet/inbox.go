package memnet

import (
	"sync"
	"time"

	"github.com/distkit/distkit/internal/netfault"
	"github.com/distkit/distkit/transport"
)

// item is a message waiting in a node's inbox.
type item struct {
	msg      transport.Message
	src      *Transport // sender, to drop messages that outlive its incarnation
	srcEpoch uint64     // sender's epoch at Send
	dstEpoch uint64     // receiver's epoch at Send
	link     *link      // counters to update on delivery or loss
}

// pushResult says what became of a pushed item.
type pushResult uint8

const (
	pushed     pushResult = iota
	pushFull              // the inbox is at its limit
	pushClosed            // the inbox's transport is closed
)

// inbox is one node's bounded queue of undelivered messages: those due now,
// in arrival order (which is what makes a perfect network FIFO), and those
// held back by a delay, by due time (then arrival order). One delivery
// goroutine drains it; senders never block on it.
type inbox struct {
	// mu guards every field below except wake.
	mu      sync.Mutex
	ready   []item               // due now, in arrival order
	delayed netfault.Queue[item] // held back, by due time since Network.start
	limit   int                  // bound on len(ready)+delayed.Len()
	waiting bool                 // the delivery goroutine is parked and needs a wake-up
	stopped bool                 // the transport is closed; pushes are refused

	// wake has room for one token: a single pending wake-up is enough to
	// make the parked goroutine look at the queue again.
	wake chan struct{}
}

func (q *inbox) push(it item, delay time.Duration, now func() time.Duration) pushResult {
	q.mu.Lock()
	switch {
	case q.stopped:
		q.mu.Unlock()
		return pushClosed
	case len(q.ready)+q.delayed.Len() >= q.limit:
		q.mu.Unlock()
		return pushFull
	}
	if delay <= 0 {
		q.ready = append(q.ready, it)
	} else {
		q.delayed.Push(now()+delay, it)
	}
	wake := q.waiting
	q.waiting = false
	q.mu.Unlock()
	if wake {
		select {
		case q.wake <- struct{}{}:
		default: // a token is already pending
		}
	}
	return pushed
}

// take moves every message that is due into batch (reusing its storage) and
// returns it. When nothing is due it marks the goroutine as waiting and
// returns how long until the earliest delayed message is due (0 if none).
// ok is false once the inbox is stopped.
func (q *inbox) take(batch []item, now time.Duration) (out []item, wait time.Duration, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return batch, 0, false
	}
	// Swap buffers rather than copy: the senders append to the old batch's
	// storage next, so neither side allocates in steady state.
	batch, q.ready = q.ready, batch[:0]
	for at, ok := q.delayed.Next(); ok && at <= now; at, ok = q.delayed.Next() {
		_, it := q.delayed.Pop()
		batch = append(batch, it)
	}
	if len(batch) == 0 {
		q.waiting = true
		if at, ok := q.delayed.Next(); ok {
			wait = at - now
		}
	}
	return batch, wait, true
}

// discard drops every queued message, counting it on its link, and stops
// the inbox if stop is set.
func (q *inbox) discard(stop bool, idle *idleTracker) {
	q.mu.Lock()
	defer q.mu.Unlock()
	idle.done(int64(len(q.ready) + q.delayed.Len()))
	for i := range q.ready {
		q.ready[i].link.dropped.Add(1)
		q.ready[i] = item{}
	}
	q.ready = q.ready[:0]
	q.delayed.Drain(func(it *item) { it.link.dropped.Add(1) })
	q.stopped = q.stopped || stop
}
