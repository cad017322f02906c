// Package hashring maps keys to nodes so that membership changes move as few
// keys as possible: a consistent-hash ring with virtual nodes and weights,
// consistent hashing with bounded loads, Jump consistent hash and weighted
// rendezvous hashing, plus helpers that measure balance and movement.
//
// # The ring
//
// Every node is hashed (xxhash64 of its name and a replica number) to many
// points on a circle of 2^64 positions. A key is hashed onto the same circle
// and belongs to the nearest point (on a tie, the one counter-clockwise of
// it): each point owns the arc from the midpoint with the point before it
// to the midpoint with the point after it.
//
//	              a#0
//	       c#1 ●   ●   ● b#2
//	     ·                 · ◆ key k: its hash lands here
//	b#0 ●     the ring      ● c#0 ◄── owner of k: the nearest point
//	     ·   of 2^64        ·
//	       a#1 ●   ●   ● c#2
//	              b#1
//
// Adding a node only takes the keys nearer to its new points than to any
// old one, so only about 1/(n+1) of the keys move, all of them to the new
// node; removing a node hands only its own keys to their next-nearest
// points. Replicas (LocateN) are the distinct nodes nearest to the key,
// nearest first: exactly the owners the key gets if the owner fails, then
// the next one, so a replica set already holds the key's data wherever it
// moves.
//
// The classic ring (Chord, most libraries) gives a key to the first point
// clockwise instead, so each point owns the whole gap before it. Nearest
// ownership places the points identically and looks up just as fast (it
// is the same successor search over the arcs' ends), but a node's share
// is then the sum of 2v half-gaps instead of v gaps, which halves the
// variance of the load: the numbers below are 1/√2 of the classic ring's.
//
// # Why virtual nodes, and how many
//
// With one point per node the arcs are wildly uneven (the largest is about
// ln n times the mean). Giving each node v points averages 2v half-arcs, so
// the standard deviation of the load falls as 1/√(2v): about 7% of the
// mean at 100 points, 5.6% at 160 (DefaultVirtualNodes), 2.2% at 1000
// (the classic clockwise ring: 1/√v, so 10%, 7.9% and 3%). These are
// expectations: a particular set of node names lands within about half a
// point of them (with 160 points, node-0 … node-99 give 6.2% by arc
// length, 6.3% over a million keys; the clockwise rule gave 8.5% and
// 8.8%). A node of weight w (a zero Weight in a Node means 1; NodesOf lists
// equal nodes by name) gets round(w·v) points, and always at least
// one, so a small weight still gets its share. More points cost memory
// (32 bytes each, for its position and its arc's end, plus 8 to 16 bytes
// of index) and make changes slower, but not lookups: an index of two to
// four buckets per point maps the top bits of a key's hash either straight
// to the owner (for the majority of buckets, which hold no point) or to the
// one or two points to compare, so Locate reads one or two words instead of
// binary-searching the whole ring, and costs about the same with 10 or 1000
// nodes.
//
// Two vnodes landing on the same position is handled: the point of the
// smaller node name keeps it and the other is re-hashed, so no node ever
// loses a point silently, and the ring depends only on its membership, not
// on the order of changes.
//
// # Usage
//
//	ring, err := hashring.NewRing(hashring.DefaultConfig(),
//		hashring.Node{Name: "cache-a", Weight: 1},
//		hashring.Node{Name: "cache-b", Weight: 2})
//	if err != nil { … }
//	owner, err := ring.Locate("user:42")              // one owner
//	replicas, err := ring.LocateN(buf[:0], "user:42", 3) // owner + the next 2 owners
//	err = ring.Add("cache-c", 1)                       // moves ~1/3 of keys to cache-c
//
// For sticky assignments with a hard cap per node (sessions, connections,
// in-flight requests) use Bounded:
//
//	b, err := hashring.NewBounded(hashring.DefaultBoundedConfig(), nodes...)
//	node, err := b.Assign("session-17")
//	moves, err := b.Release("session-17") // migrate every moved key
//
// Callers of Bounded have two duties:
//
//  1. Release every key that ends (otherwise it counts against the bound
//     forever).
//  2. Apply the []Move returned by Release, Add, Remove and SetWeight: the
//     balancer has already moved those keys to keep the bound.
//
// # Choosing an algorithm
//
//	                   | Ring             | Bounded            | Jump              | Rendezvous
//	-------------------+------------------+--------------------+-------------------+------------------
//	lookup             | O(1) avg, ~25 ns | O(1) avg + mutex   | O(ln n), ~50 ns   | O(n), ~0.4 µs at n=100
//	memory             | 40-48 B × points | ring + O(keys)     | none              | O(n)
//	movement on change | ~1/n, optimal in | only what the      | optimal: exactly  | optimal
//	                   | expectation      | bound requires     | 1/(n+1)           |
//	balance (std-dev)  | ≈ 1/√(2·vnodes)  | max ≤ ⌈c·mean⌉     | ≈ 0 (near perfect)| ≈ key sampling noise
//	weights            | yes (points)     | yes (capacities)   | no                | yes (log method)
//	remove any node    | yes              | yes                | no: last only     | yes
//	replicas (LocateN) | yes, nearest 1st | no                 | no                | yes, by score
//
// Pick Jump for numbered shards that only grow or shrink at the end, the
// ring for named servers that come and go, rendezvous when n is small and
// balance or weights must be exact, and Bounded when no node may exceed a
// hard multiple of its fair share of live keys.
//
// # Bounded loads: the exact semantics
//
// Bounded implements Mirrokni, Thorup & Zadimoghaddam (2016). It counts
// assigned keys — not partitions, as some libraries do — and keeps, after
// every call, load(i) ≤ ⌈c·m·wᵢ/W⌉ for every node, where m is the number of
// keys assigned now, c the balance factor and W the total weight (⌈c·m/n⌉
// with equal weights). A new key goes to the first node, from its owner on
// the ring onwards clockwise, that is below its capacity for m+1 keys.
// Departures and membership changes can lower capacities; the balancer
// then moves the fewest keys needed and reports every move. See Bounded
// for the details.
//
// # Concurrency
//
// Ring and Rendezvous are safe for concurrent use. Lookups are lock-free and
// allocation-free: they load an immutable snapshot through an atomic pointer.
// Changes are serialized by a mutex, build the next snapshot (O(V) merge for
// one node, O(V log V) for AddNodes) and publish it atomically; a lookup sees
// the ring either before or after a change. Bounded is safe for concurrent
// use and serializes every call. Jump and the analysis helpers are pure
// functions. The package starts no goroutines.
//
// # Fault model
//
// The package is in-process and deterministic: a given membership always
// gives the same placement on every machine and every run (xxhash64 is
// fixed and platform-independent), which is what lets independent clients
// agree on owners without talking. It does not detect failures; remove a
// failed node (for example on a detector's verdict) and its keys move to
// their next owners. Bad input returns an error wrapping one of the sentinel
// errors; nothing panics.
//
// # Tests
//
// The bounded-load churn test runs a few seeds by default; set
// DISTKIT_SOAK=1 to run many more.
package hashring
