// Package sim is a seeded, single-threaded, discrete-event simulator for
// testing distributed protocols: nodes, virtual time, a faulty virtual
// network, crashes and restarts, and disks that lose what was not synced.
//
// A protocol core plugs in as a Node: it receives messages and timer events
// and answers by sending messages and setting timers through its Env. The
// simulator keeps an agenda of events ordered by virtual time, then by the
// order they were scheduled, and runs them one at a time on the caller's
// goroutine. Nothing sleeps, so an hour of a busy five-node protocol takes a
// fraction of a second, and everything random is drawn from the seed, so a
// run can be repeated event for event and a failure replayed.
//
//	s, err := sim.New(sim.Config{Seed: seed, Faults: sim.Faults{
//		Drop: 0.05, MinDelay: time.Millisecond, MaxDelay: 20 * time.Millisecond,
//	}})
//	if err != nil { ... }
//	for _, id := range []transport.NodeID{"a", "b", "c"} {
//		s.AddNode(id, func() sim.Node { return newMyCore(id) })
//	}
//	s.At(time.Second, func() { s.Partition([]transport.NodeID{"a"}) })
//	s.At(3*time.Second, func() { s.Heal() })
//	s.Run(10 * time.Second)
//	checkSafety(t, s) // look at the nodes via s.Node(id)
//
// # Plugging in a core
//
//  1. Wrap the core in a type with Start, Receive and Timer. Start runs at
//     boot and after every restart: read durable state from env.Disk() there,
//     then set the first timers.
//  2. Turn the core's outputs into env.Send and env.SetTimer calls, and
//     persist with env.Disk() (Append or WriteFile, then Sync) before sending
//     anything that depends on the state being durable.
//  3. Give the factory passed to AddNode a fresh instance each time: Restart
//     calls it again and everything not on the Disk is gone.
//  4. Drive clients with Inject (runs code as a node, now) and schedule
//     faults with At; check properties after Run or inside RunUntil.
//  5. Run the property over many seeds with Seeds.
//
// # Determinism rules for nodes
//
// A run is repeatable only if the nodes are. Inside Start, Receive and Timer:
// no goroutines, no time.Now or real timers (use env.Now and env.SetTimer),
// no unseeded randomness (use env.Rand), no I/O, and no output that depends
// on map iteration order (sort keys first). TraceHash checks this: run a
// scenario twice with one seed and compare the hashes.
//
// # Fault vocabulary
//
// Faults is the same vocabulary as transport/memnet: Drop and Duplicate
// probabilities, a latency uniform in [MinDelay, MaxDelay] (the spread is the
// jitter and reorders messages), and Reorder, the probability of an extra
// hold-back of up to ReorderDelay. SetFaults sets the default for every link
// and SetLinkFaults overrides one direction of one link. Partition splits
// the nodes into groups that cannot talk, Cut stops one direction of one
// link, Isolate cuts a node off, and Heal removes all three. A message
// crossing a partition or cut is dropped when sent and also when it would
// be delivered, so a partition loses what is in flight across it.
//
// Crash discards the node's instance, its timers and every message in flight
// to or from it, and rolls its Disk back to the last Sync (with
// Config.TornWrites, a file that was appended to keeps a seeded prefix of
// the unsynced bytes). Restart builds a new instance from the factory.
//
// With zero faults a message is delivered at the instant it is sent, after
// the events already due at that instant, so per-link order is FIFO (so it
// is with any fixed delay, MinDelay = MaxDelay). Virtual time then stands
// still while messages bounce, so two nodes that answer every message with
// a message would keep Run busy forever: give such protocols some latency,
// as DefaultConfig does.
//
// # Fault model
//
// The virtual network loses, duplicates, delays and reorders messages and
// can be partitioned and cut; nodes crash (losing their instance, timers,
// in-flight messages and unsynced disk writes, optionally tearing the last
// append) and restart. With Config.DeliverAfterSenderCrash, messages a node
// sent before crashing still arrive, as packets on the wire do: that is how
// to test "answered, then crashed before the answer's state was durable".
// Messages are never corrupted or forged. Clocks may disagree (below).
//
// # Clocks
//
// By default every node reads the virtual time. Config.Clocks (or
// SetClock) gives a node its own clock, Clock{Offset, Drift}:
//
//	local = virtual + Offset + Drift·(virtual − start)
//
// Env.Now returns it, and Env.SetTimer measures its duration on it (a node
// whose clock runs 1% fast sees its 100 ms timers fire after 99 ms of
// virtual time), as a process's clock and timers do. |Drift| is at most
// MaxDrift. LocalTime and VirtualTime convert between a node's clock and
// the virtual time, so a checker can compare instants that different nodes
// measured. Leases are tested against exactly the skew they claim to
// tolerate this way: lock's TestSimLeaseClockSkew shows a session lease
// safe under any offset and unsafe once the client's clock runs slower
// than the server's by more than its margin.
//
// # Budgets: failing fast
//
// A broken rule must fail a test with a message, not hang it or exhaust
// memory. Every Sim has budgets; when one is spent the simulation stops
// (Step, Run and RunUntil process nothing more, Stopped reports true) and
// Err reports ErrBudget naming the seed, the step (events processed) and
// the virtual time, with the replay command:
//
//   - Config.MaxEvents, events in all (default DefaultMaxEvents, ten
//     million: a few seconds; negative for none). Tests set a budget a few
//     times what their scenario needs.
//   - Config.MaxEventsPerInstant, events at one virtual instant (default
//     DefaultMaxEventsPerInstant): nodes answering each other with zero
//     latency keep virtual time still, which no real network does.
//   - Config.MaxTime, virtual time (default none).
//
// A test must check Err after running (a helper's t.Cleanup is a good
// place), or the stop passes unnoticed.
//
// # Many seeds
//
// Seeds(t, n, fn) runs fn for seeds 1..n and, on the first failure, logs
// "replay with: DISTKIT_SEED=N go test -run '^TestName$'". Environment:
//
//	DISTKIT_SEED=N   run only seed N
//	DISTKIT_SOAK=1   run SoakFactor (50) times as many seeds from a random base
//
// # Concurrency
//
// A Sim, its Disks and the Envs it hands out belong to one goroutine. Nodes
// are never called concurrently. Step, Run and RunUntil must not be called
// from inside an event (a node handler or an At action); such a call does
// nothing and is reported by Err as ErrReentrant. Methods that have no
// error result (Crash, Inject, SetFaults…) record misuse the same way.
package sim
