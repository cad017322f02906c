package memnet

import (
	"sync"
	"time"

	"github.com/distkit/distkit/transport"
)

// item is a message waiting in a node's inbox.
type item struct {
	msg      transport.Message
	src      *Transport    // sender, to drop messages that outlive its incarnation
	srcEpoch uint64        // sender's epoch at Send
	dstEpoch uint64        // receiver's epoch at Send
	link     *link         // counters to update on delivery or loss
	at       time.Duration // due time of a delayed message, since Network.start
	seq      uint64        // arrival order of delayed messages, to break ties in at
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
// held back by a delay, in a heap by due time. One delivery goroutine drains
// it; senders never block on it.
type inbox struct {
	// mu guards every field below except wake.
	mu      sync.Mutex
	ready   []item    // due now, in arrival order
	delayed delayHeap // held back, earliest first
	seq     uint64    // last seq given to a delayed item
	limit   int       // bound on len(ready)+len(delayed)
	waiting bool      // the delivery goroutine is parked and needs a wake-up
	stopped bool      // the transport is closed; pushes are refused

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
	case len(q.ready)+len(q.delayed) >= q.limit:
		q.mu.Unlock()
		return pushFull
	}
	if delay <= 0 {
		q.ready = append(q.ready, it)
	} else {
		q.seq++
		it.at, it.seq = now()+delay, q.seq
		q.delayed.push(it)
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
	for len(q.delayed) > 0 && q.delayed[0].at <= now {
		batch = append(batch, q.delayed.pop())
	}
	if len(batch) == 0 {
		q.waiting = true
		if len(q.delayed) > 0 {
			wait = q.delayed[0].at - now
		}
	}
	return batch, wait, true
}

// discard drops every queued message, counting it on its link, and stops
// the inbox if stop is set.
func (q *inbox) discard(stop bool, idle *idleTracker) {
	q.mu.Lock()
	defer q.mu.Unlock()
	idle.done(int64(len(q.ready) + len(q.delayed)))
	for i := range q.ready {
		q.ready[i].link.dropped.Add(1)
		q.ready[i] = item{}
	}
	for i := range q.delayed {
		q.delayed[i].link.dropped.Add(1)
		q.delayed[i] = item{}
	}
	q.ready, q.delayed = q.ready[:0], q.delayed[:0]
	q.stopped = q.stopped || stop
}

// delayHeap is a binary min-heap of items by (at, seq), written out so the
// items stay unboxed.
type delayHeap []item

func (h delayHeap) less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}

func (h *delayHeap) push(it item) {
	*h = append(*h, it)
	a := *h
	for i := len(a) - 1; i > 0; {
		p := (i - 1) / 2
		if !a.less(i, p) {
			break
		}
		a[i], a[p] = a[p], a[i]
		i = p
	}
}

func (h *delayHeap) pop() item {
	a := *h
	top := a[0]
	last := len(a) - 1
	a[0] = a[last]
	a[last] = item{}
	a = a[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(a) && a.less(l, m) {
			m = l
		}
		if r < len(a) && a.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	*h = a
	return top
}
