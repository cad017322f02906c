package sim

import (
	"time"

	"github.com/distkit/distkit/transport"
)

// eventKind says what an event does when its time comes.
type eventKind uint8

const (
	evDeliver eventKind = iota + 1 // hand msg to node
	evTimer                        // fire timer on node
	evAction                       // run fn (a test action scheduled with At)
)

// event is one entry of the simulator's agenda.
type event struct {
	at        time.Duration // virtual time, as an offset from Config.Start
	seq       uint64        // scheduling order; breaks ties in at deterministically
	kind      eventKind
	node      *simNode   // target of a delivery or timer
	epoch     uint64     // node's incarnation when scheduled; stale events are skipped
	from      *simNode   // sender of a delivery
	fromEpoch uint64     // sender's incarnation when it sent
	copy      int        // 0 for the original delivery, 1 for a duplicate
	link      *LinkStats // counters of the delivery's link
	msg       transport.Message
	timer     TimerID
	name      string // timer name
	fn        func()
}

// agenda is a binary min-heap of events ordered by (at, seq). It is written
// out rather than using container/heap so events stay unboxed values.
type agenda []event

func (a agenda) less(i, j int) bool {
	if a[i].at != a[j].at {
		return a[i].at < a[j].at
	}
	return a[i].seq < a[j].seq
}

func (a *agenda) push(ev event) {
	*a = append(*a, ev)
	h := *a
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (a *agenda) pop() event {
	h := *a
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h[last] = event{} // drop references so payloads and closures can be collected
	h = h[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(h) && h.less(l, m) {
			m = l
		}
		if r < len(h) && h.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	*a = h
	return top
}
