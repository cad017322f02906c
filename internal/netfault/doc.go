// Package netfault holds the fault model shared by the simulator (package
// sim) and the in-memory network (package transport/memnet): the Faults
// vocabulary, the partition/cut/isolation rules of a network, the seeded
// decision of what happens to one message, and Queue, the delay line that
// holds messages (and the simulator's timers) until they are due. Keeping
// it in one place means a scenario written for one of them means the same
// thing in the other.
//
//	rules.Default = netfault.Faults{Drop: 0.1, MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}
//	rules.Partition([][]transport.NodeID{{"a"}, {"b", "c"}})
//	if !rules.Blocked(from, to) {
//		fate := netfault.Decide(rules.FaultsFor(from, to), linkRNG)
//		// deliver fate.Copies copies, copy i after fate.Delays[i]
//	}
//
// # Concurrency
//
// Nothing here is safe for concurrent use; callers hold their own lock.
//
// # Fault model
//
// Omission and timing faults only: messages are lost, duplicated, delayed
// and reordered, and links are cut by partitions, one-way cuts and
// isolation. Messages are never corrupted or forged. Decisions are drawn
// from a caller-supplied seeded random stream, so a run can be repeated.
package netfault
