// Package clock provides logical and hybrid clocks for ordering events in a
// distributed system — Lamport clocks, vector clocks and hybrid logical
// clocks — and Source, the injectable wall-time source the rest of distkit
// uses.
//
// # Happens-before and the clock condition
//
// Lamport (1978) defines happens-before, written a → b, as the smallest
// relation such that
//
//  1. if a and b are events of the same process and a comes first, a → b;
//  2. if a is the sending of a message and b its receipt, a → b;
//  3. if a → b and b → c, then a → c.
//
// Two distinct events are concurrent (a ∥ b) when neither a → b nor b → a:
// no message chain could have carried information from one to the other.
//
// A logical clock C assigns a timestamp to every event. It satisfies the
// clock condition if a → b ⇒ C(a) < C(b). Lamport clocks do, which is why
// ordering by (timestamp, node) — Stamp — gives a total order that every
// node agrees on and that respects causality.
//
// The converse fails for Lamport clocks: C(a) < C(b) does not imply a → b.
// A single integer cannot tell "b heard about a" from "b's process was just
// busier". Two independent processes that each do one event both read 1;
// after a few more local events one of them reads 4 and the other still 1,
// though neither event knows of the other.
//
// Vector clocks fix this with one counter per process: VC(a)[p] counts the
// events of p that happened before or at a. They satisfy the strong clock
// condition, a → b ⇔ VC(a) < VC(b) (componentwise ≤, and not equal), so
// comparing two vectors answers the causal question exactly: Before,
// After, Equal or Concurrent. The price is size: a vector grows with the
// number of processes that ever wrote, which is why Vector supports an
// optional, lossy PrunePolicy.
//
// Hybrid logical clocks (Kulkarni et al. 2014) keep the Lamport guarantee
// in a timestamp close to physical time: the wall part never runs ahead of
// the physical clock by more than the skew between nodes (which Update
// enforces with a maximum offset), so a timestamp is both a causal order
// and a usable date.
//
// # Which clock to use
//
//	clock      size            cost per event            tells you
//	---------  --------------  ------------------------  -----------------------------------------
//	Lamport    8 bytes         one atomic add or CAS     a → b ⇒ C(a) < C(b); with Stamp a total
//	                                                     order consistent with causality. Cannot
//	                                                     detect concurrency.
//	Vector     O(processes)    O(n) merge / compare,     a → b ⇔ VC(a) < VC(b); detects concurrent
//	                           no allocation if no new   (conflicting) updates exactly, e.g. for
//	                           node                      multi-writer replicas and sibling values.
//	HLC        8 bytes         one clock read + one CAS  like Lamport, plus a wall time within the
//	                                                     max offset of real time: snapshot reads,
//	                                                     TTLs, MVCC versions, bounded staleness.
//	Source     —               one clock read            the local wall time only; never compare
//	                                                     wall times across nodes to order events.
//
// # Usage
//
//	var lc clock.Lamport
//	attach := lc.Send()                   // put attach in the message
//	lt, err := lc.Receive(msg.Lamport)    // on receipt: max(local, msg) + 1
//
//	v := clock.NewVector()
//	v.Tick("p1")                          // local event
//	v.Receive("p1", msgVector)            // on receipt: merge, then tick
//	if v.Compare(other) == clock.Concurrent {
//		// conflicting updates: keep both
//	}
//
//	h, err := clock.NewHLC(clock.DefaultHLCConfig())
//	ht := h.Now()                         // local or send event
//	ht, err = h.Update(msg.HLC)           // receive; rejects clocks > MaxOffset ahead
//
// # Caller duties
//
//  1. Stamp every message you send with the value returned by Send (Lamport),
//     a Copy or encoding of the vector after Tick (Vector), or Now (HLC), and
//     pass the value received to Receive / Update before acting on the
//     message.
//  2. Treat errors from Receive, Update and the decoders as a faulty peer:
//     drop the message; the clock is left unchanged.
//  3. Across restarts, clocks must not go backwards: persist the last value
//     (or, for an HLC, wait MaxOffset before issuing timestamps) and feed it
//     back with Receive / Update.
//  4. Give every process a distinct NodeID in vector clocks and Stamps.
//
// # Concurrency
//
// Lamport and HLC are safe for concurrent use and lock-free. Vector, like a
// map, is not: one goroutine owns it at a time, and Copy makes an
// independent clock to hand to another. Stamp and Timestamp are immutable
// values. System, Manual and Func sources are safe for concurrent use (Func
// if its function is).
//
// # Zero values and nil pointers
//
// The zero Lamport, HLC, Vector and Manual are ready to use. Through a nil
// pointer, methods that only read see a clock at zero (Current, Compare,
// Get, MaxOffset, Now of a Manual), methods that return an error report
// ErrInvalidConfig (Lamport.Receive, HLC.Update), and methods that record
// an event and return only a timestamp (Tick, Send, TickAt, Receive of a
// Vector, HLC.Now, Manual.Advance and Set, Vector.Reset) need a non-nil
// clock: like writing to a nil map, they panic, because a timestamp made up
// by a nil clock would silently break the clock condition.
//
// # Fault model
//
// Clocks tolerate lost, duplicated and reordered messages: merging is
// idempotent, commutative and associative, so redelivery never moves a clock
// further than the first delivery. Input from other nodes is untrusted:
// Lamport timestamps and vector counters are capped at MaxCounter so they
// cannot wrap; vector encodings are checked (canonical form, bounded
// allocation) and fuzzed; an HLC refuses remote timestamps more than
// MaxOffset ahead of its physical clock, so one runaway clock cannot drag the
// cluster into the future. A physical clock that jumps backwards never makes
// an HLC go backwards. Clocks cannot detect a peer that lies consistently
// within these limits.
//
// # Tests
//
// The property tests replay random executions over a short default run of
// seeds; set DISTKIT_SOAK=1 to run many more. A failure prints the seed to
// replay.
package clock
