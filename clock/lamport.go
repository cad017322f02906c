package clock

import (
	"cmp"
	"fmt"
	"strconv"
	"sync/atomic"
)

// MaxCounter is the largest Lamport timestamp, vector clock counter or
// remote value this package accepts from outside (2^63-1). Capping inputs at
// 63 bits leaves 2^63 local ticks of headroom before a uint64 could wrap —
// centuries at one tick per nanosecond — so Tick never needs to report an
// overflow, and the values also fit a signed 64-bit database column.
const MaxCounter = 1<<63 - 1

// NodeID names a process (a node) in a vector clock or a Stamp. It has the
// same meaning as transport.NodeID; convert with clock.NodeID(id). The clock
// package does not depend on transport because clocks are plain data.
type NodeID string

// Lamport is a Lamport logical clock (Lamport 1978, "Time, Clocks, and the
// Ordering of Events in a Distributed System", §2 rules IR1 and IR2).
//
// The zero value is a clock reading 0, ready to use. A Lamport clock is safe
// for concurrent use and lock-free: Tick is one atomic add and Receive a
// compare-and-swap loop. It must not be copied after first use.
type Lamport struct {
	now atomic.Uint64
}

// Tick records a local event and returns its timestamp (IR1: the clock is
// incremented between any two successive events of a process).
func (c *Lamport) Tick() uint64 { return c.now.Add(1) }

// Send records a send event and returns the timestamp to attach to the
// message. A send is an event like any other, so it ticks the clock (IR1);
// the receiver passes the attached value to Receive (IR2).
func (c *Lamport) Send() uint64 { return c.now.Add(1) }

// Receive records the receipt of a message carrying timestamp ts and
// returns the receive event's timestamp: max(local, ts) + 1 (IR2). It
// returns ErrTimestampTooLarge, leaving the clock unchanged, if ts exceeds
// MaxCounter: a faulty or malicious peer must not be able to wrap the clock.
func (c *Lamport) Receive(ts uint64) (uint64, error) {
	if c == nil {
		return 0, errNilLamport
	}
	if ts > MaxCounter {
		return 0, fmt.Errorf("%w: received %d, limit %d", ErrTimestampTooLarge, ts, uint64(MaxCounter))
	}
	for {
		old := c.now.Load()
		next := max(old, ts) + 1
		if c.now.CompareAndSwap(old, next) {
			return next, nil
		}
	}
}

// Current returns the timestamp of the latest event without recording a new
// one.
// A nil *Lamport reads as a clock at zero.
func (c *Lamport) Current() uint64 {
	if c == nil {
		return 0
	}
	return c.now.Load()
}

// errNilLamport is what Receive reports on a nil *Lamport.
var errNilLamport = fmt.Errorf("%w: nil *Lamport (its zero value is ready to use)", ErrInvalidConfig)

// Stamp is a Lamport timestamp paired with the node that issued it. Ordering
// stamps by time and breaking ties by node gives Lamport's total order "⇒"
// (1978, §3): it extends happens-before and agrees on every node, which is
// what, say, a distributed mutual-exclusion queue needs.
//
// Stamp is a small value type; copy it freely.
type Stamp struct {
	Time uint64 // the Lamport timestamp
	Node NodeID // the node that issued it; breaks ties between equal times
}

// Compare returns -1 if s orders before o, +1 if after, and 0 if they are the
// same stamp. Times are compared first, then node IDs bytewise.
func (s Stamp) Compare(o Stamp) int {
	if c := cmp.Compare(s.Time, o.Time); c != 0 {
		return c
	}
	return cmp.Compare(s.Node, o.Node)
}

// Less reports whether s orders before o in the total order.
func (s Stamp) Less(o Stamp) bool { return s.Compare(o) < 0 }

// String formats the stamp as "time@node", for example "3@p1".
func (s Stamp) String() string {
	return strconv.FormatUint(s.Time, 10) + "@" + string(s.Node)
}
