package clock

import (
	"iter"
	"strconv"
	"strings"
	"time"
)

// Ordering is the relation between two vector clocks, and so between the
// events they stamp.
type Ordering int8

// The four possible outcomes of Vector.Compare.
const (
	// Equal: both clocks have the same counter for every node (the same
	// event, or copies of one clock). Equal is not Concurrent.
	Equal Ordering = iota
	// Before: the receiver happened before the argument (every counter ≤,
	// at least one <).
	Before
	// After: the argument happened before the receiver.
	After
	// Concurrent: neither happened before the other.
	Concurrent
)

// String returns "equal", "before", "after" or "concurrent".
func (o Ordering) String() string {
	switch o {
	case Equal:
		return "equal"
	case Before:
		return "before"
	case After:
		return "after"
	case Concurrent:
		return "concurrent"
	}
	return "Ordering(" + strconv.Itoa(int(o)) + ")"
}

// entry is one node's component of a vector clock.
type entry struct {
	node    NodeID
	counter uint64 // ≥ 1: absent nodes are implicitly 0
	// updated is the wall time (Unix nanoseconds) at which the counter was
	// last set by TickAt, or 0 if unknown. Only pruning looks at it.
	updated int64
}

// Vector is a vector clock (Fidge 1988, Mattern 1989) keyed by node ID, so
// membership can change: a node missing from the clock has counter 0.
//
// The zero value is an empty clock, ready to use. A Vector is not safe for
// concurrent use; like a map, it belongs to one goroutine at a time. Copying
// a Vector value aliases its storage: use Copy to get an independent clock.
// Methods that only read treat a nil *Vector as an empty clock; methods that
// modify the clock need a non-nil one.
//
// Entries are kept sorted by node ID, so Compare and Merge are linear merges
// of two sorted lists and need no allocation when no node is new.
type Vector struct {
	entries []entry // sorted by node, node IDs unique, counters ≥ 1
}

// NewVector returns an empty vector clock.
func NewVector() *Vector { return &Vector{} }

// VectorOf returns a vector clock with the given counters. Zero counters are
// left out (a missing node already reads 0); counters above MaxCounter are
// rejected with ErrTimestampTooLarge.
func VectorOf(counters map[NodeID]uint64) (*Vector, error) {
	v := &Vector{entries: make([]entry, 0, len(counters))}
	for node, c := range counters {
		if c == 0 {
			continue
		}
		if c > MaxCounter {
			return nil, errCounterTooLarge(node, c)
		}
		v.entries = append(v.entries, entry{node: node, counter: c})
	}
	sortEntries(v.entries)
	return v, nil
}

// find returns the index of node's entry, or where it would be inserted.
func (v *Vector) find(node NodeID) (int, bool) {
	lo, hi := 0, len(v.entries)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if v.entries[m].node < node {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(v.entries) && v.entries[lo].node == node
}

// Get returns node's counter (0 if the clock has no entry for node).
func (v *Vector) Get(node NodeID) uint64 {
	if v == nil {
		return 0
	}
	if i, ok := v.find(node); ok {
		return v.entries[i].counter
	}
	return 0
}

// Len returns the number of nodes with a non-zero counter.
func (v *Vector) Len() int {
	if v == nil {
		return 0
	}
	return len(v.entries)
}

// All iterates over the non-zero entries in ascending node order.
func (v *Vector) All() iter.Seq2[NodeID, uint64] {
	return func(yield func(NodeID, uint64) bool) {
		if v == nil {
			return
		}
		for _, e := range v.entries {
			if !yield(e.node, e.counter) {
				return
			}
		}
	}
}

// Tick records an event at node and returns node's new counter.
func (v *Vector) Tick(node NodeID) uint64 { return v.tick(node, 0) }

// TickAt is Tick that also records now as the time node's entry was last
// updated. Only Prune uses that time; a node that ticks with TickAt can have
// its entry pruned by age. A zero now behaves like Tick.
func (v *Vector) TickAt(node NodeID, now time.Time) uint64 {
	var at int64
	if !now.IsZero() {
		at = now.UnixNano()
	}
	return v.tick(node, at)
}

func (v *Vector) tick(node NodeID, at int64) uint64 {
	i, ok := v.find(node)
	if !ok {
		v.entries = append(v.entries, entry{})
		copy(v.entries[i+1:], v.entries[i:])
		v.entries[i] = entry{node: node}
	}
	e := &v.entries[i]
	e.counter++
	if at != 0 {
		e.updated = at
	}
	return e.counter
}

// Merge sets every counter of v to the maximum of its own and o's counter
// for the same node. Merging does not record an event; Receive does. A nil o
// is an empty clock. Merge allocates only when o has nodes v lacks.
func (v *Vector) Merge(o *Vector) {
	if o == nil || o == v {
		return
	}
	a, b := v.entries, o.entries
	// First pass: merge the shared nodes in place and count o's new ones.
	missing := 0
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i].node == b[j].node:
			mergeEntry(&a[i], b[j])
			i++
			j++
		case a[i].node < b[j].node:
			i++
		default:
			missing++
			j++
		}
	}
	missing += len(b) - j
	if missing == 0 {
		return
	}
	// Second pass: grow and merge from the back, so each entry moves once.
	n := len(a)
	a = append(a, make([]entry, missing)...)
	i, j, k := n-1, len(b)-1, len(a)-1
	for j >= 0 {
		switch {
		case i >= 0 && a[i].node > b[j].node:
			a[k] = a[i]
			i--
		case i >= 0 && a[i].node == b[j].node: // merged in the first pass
			a[k] = a[i]
			i--
			j--
		default:
			a[k] = b[j]
			j--
		}
		k--
	}
	v.entries = a
}

// mergeEntry keeps the larger counter and, with it, the update time that
// goes with it (the later one on a tie), as Riak's vclock merge does.
func mergeEntry(dst *entry, src entry) {
	switch {
	case src.counter > dst.counter:
		*dst = entry{node: dst.node, counter: src.counter, updated: src.updated}
	case src.counter == dst.counter && src.updated > dst.updated:
		dst.updated = src.updated
	}
}

// Receive records the receipt at node of a message stamped with o: it
// merges o into v, then ticks node. It returns node's new counter.
func (v *Vector) Receive(node NodeID, o *Vector) uint64 {
	v.Merge(o)
	return v.Tick(node)
}

// Compare reports how v relates to o: Before if v happened before o, After
// if o happened before v, Equal if they are the same clock, Concurrent
// otherwise. A nil clock compares as empty. Compare does not allocate.
func (v *Vector) Compare(o *Vector) Ordering {
	var a, b []entry
	if v != nil {
		a = v.entries
	}
	if o != nil {
		b = o.entries
	}
	less, greater := false, false // some counter of v is < / > o's
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i].node == b[j].node:
			if a[i].counter < b[j].counter {
				less = true
			} else if a[i].counter > b[j].counter {
				greater = true
			}
			i++
			j++
		case a[i].node < b[j].node: // o lacks the node: o's counter is 0
			greater = true
			i++
		default:
			less = true
			j++
		}
		if less && greater {
			return Concurrent
		}
	}
	greater = greater || i < len(a)
	less = less || j < len(b)
	switch {
	case less && greater:
		return Concurrent
	case less:
		return Before
	case greater:
		return After
	}
	return Equal
}

// HappenedBefore reports whether v happened before o (Compare == Before).
func (v *Vector) HappenedBefore(o *Vector) bool { return v.Compare(o) == Before }

// ConcurrentWith reports whether neither of v and o happened before the
// other and they are not equal.
func (v *Vector) ConcurrentWith(o *Vector) bool { return v.Compare(o) == Concurrent }

// Copy returns an independent copy of v. A nil v copies as an empty clock.
func (v *Vector) Copy() *Vector {
	if v == nil {
		return &Vector{}
	}
	return &Vector{entries: append([]entry(nil), v.entries...)}
}

// Reset empties the clock, keeping its storage.
func (v *Vector) Reset() { v.entries = v.entries[:0] }

// String formats the clock as "{a:1 b:3}", nodes in ascending order.
func (v *Vector) String() string {
	var sb strings.Builder
	sb.WriteByte('{')
	for i, e := range v.entriesOrNil() {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(string(e.node))
		sb.WriteByte(':')
		sb.WriteString(strconv.FormatUint(e.counter, 10))
	}
	sb.WriteByte('}')
	return sb.String()
}

func (v *Vector) entriesOrNil() []entry {
	if v == nil {
		return nil
	}
	return v.entries
}
