package netfault

import "time"

// Queue holds values until they are due: a priority queue by due time that
// is first in, first out among values due at the same time. It is the delay
// line of both networks (and the simulator's whole agenda), so that a
// message's latency means the same in either. The zero value is an empty
// queue. It is a binary min-heap written out rather than container/heap, so
// values stay unboxed and Push and Pop do not allocate once the queue has
// grown.
type Queue[T any] struct {
	slots []slot[T]
	seq   uint64 // last sequence number given out; breaks ties in due time
}

type slot[T any] struct {
	at  time.Duration // due time
	seq uint64        // order of Push
	v   T
}

func (q *Queue[T]) less(i, j int) bool {
	a, b := &q.slots[i], &q.slots[j]
	if a.at != b.at {
		return a.at < b.at
	}
	return a.seq < b.seq
}

// Len returns the number of values in the queue.
func (q *Queue[T]) Len() int { return len(q.slots) }

// Push adds v, due at time at. O(log n).
func (q *Queue[T]) Push(at time.Duration, v T) {
	q.seq++
	q.slots = append(q.slots, slot[T]{at: at, seq: q.seq, v: v})
	for i := len(q.slots) - 1; i > 0; {
		p := (i - 1) / 2
		if !q.less(i, p) {
			break
		}
		q.slots[i], q.slots[p] = q.slots[p], q.slots[i]
		i = p
	}
}

// Next returns the due time of the earliest value; ok is false if the queue
// is empty. O(1).
func (q *Queue[T]) Next() (at time.Duration, ok bool) {
	if len(q.slots) == 0 {
		return 0, false
	}
	return q.slots[0].at, true
}

// Pop removes and returns the earliest value and its due time; among values
// due at the same time, the one pushed first. The queue must not be empty.
// O(log n).
func (q *Queue[T]) Pop() (at time.Duration, v T) {
	top := q.slots[0]
	last := len(q.slots) - 1
	q.slots[0] = q.slots[last]
	q.slots[last] = slot[T]{} // drop references so payloads and closures can be collected
	q.slots = q.slots[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < last && q.less(l, m) {
			m = l
		}
		if r < last && q.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		q.slots[i], q.slots[m] = q.slots[m], q.slots[i]
		i = m
	}
	return top.at, top.v
}

// Drain calls fn with every value, in no particular order, and empties the
// queue, keeping its storage.
func (q *Queue[T]) Drain(fn func(v *T)) {
	for i := range q.slots {
		fn(&q.slots[i].v)
		q.slots[i] = slot[T]{}
	}
	q.slots = q.slots[:0]
}
