// Package memnet is an in-process network for tests, examples and the tour:
// many nodes in one process, each with its own transport.Transport, over a
// network whose faults a test scripts while messages flow.
//
//	net, err := memnet.New(memnet.DefaultConfig())
//	if err != nil { ... }
//	defer net.Close()
//	a, _ := net.Join("a")
//	b, _ := net.Join("b")
//	b.Handle("greet", func(msg transport.Message) { ... })
//	_ = a.Send(ctx, "b", "greet", []byte("hello"))
//
//	net.SetFaults(memnet.Faults{Drop: 0.1, MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond})
//	net.Partition([]transport.NodeID{"a"}, []transport.NodeID{"b", "c"})
//	net.Heal()
//	net.Crash("b"); net.Restart("b")
//	st := net.LinkStats("a", "b") // Sent, Delivered, Dropped, Duplicated
//
// # Fault vocabulary
//
// Faults is the same vocabulary as package sim: Drop and Duplicate
// probabilities, a latency uniform in [MinDelay, MaxDelay] (the spread is
// the jitter, and reorders messages), and Reorder, the probability of an
// extra hold-back of up to ReorderDelay. SetFaults sets the default for every
// link and SetLinkFaults overrides one direction of one link. Partition
// splits the nodes into groups that cannot talk, Cut stops one direction of
// one link, Isolate cuts a node off, Heal removes all three. A partition,
// cut or isolation is checked when a message is sent and again when it is
// delivered, so it also loses what is in flight across it. Every change
// takes effect at once, for messages sent from then on.
//
// Crash(id) makes the node vanish from the network: whatever is queued or in
// flight to or from it is lost, and until Restart(id) nothing it sends goes
// out and nothing sent to it arrives, silently, as with a dead process. The
// node's Transport and handlers survive the crash and work again after
// Restart; the protocol code on top decides what state a crash destroyed.
// To replace a node's Transport instead, Close it and Join the same ID again.
//
// Faults are drawn from Config.Seed. Each directed link has its own random
// stream, so the fate of the k-th message on a link depends only on the
// seed, k and the faults in force: a test that sends on each link from one
// goroutine sees the same drops and delays on every run. Delays are real
// time, so for a fully repeatable run, event for event, use package sim.
//
// # Fault model
//
// memnet injects omission and timing faults (loss, duplication, delay,
// reordering, partitions, one-way cuts, isolation) and crash-restart of
// nodes. It never corrupts or forges a message; a decoder's defence against
// that is its fuzz test. Delays are real time, so a run repeats each
// message's fate but not its timing; package sim repeats both.
//
// # Delivery and ordering
//
// Each node has a bounded inbox (Config.QueueSize messages, delayed ones
// included) drained by one delivery goroutine per node, which calls the
// service's Handler. Send never blocks: it returns ErrQueueFull when the
// receiver's inbox is full. With no faults in force (no delay, duplication,
// reordering or drop), messages from one node to another are delivered in
// the order Send accepted them: per-link FIFO, which the transporttest
// conformance suite checks. A node's handlers run one at a time, on its
// delivery goroutine, so a slow handler delays that node's other messages.
// A panicking handler loses its message and is counted; the node goes on.
//
// # Counters
//
// Stats and LinkStats count, per directed link, the messages sent,
// delivered, dropped (faults, partitions, crashes, full queues, closed
// receivers, services with no handler) and duplicated. Once nothing is in
// flight, Sent + Duplicated = Delivered + Dropped.
//
// # Concurrency and lifetime
//
// Make a Network with New and its Transports with Join; their zero values
// are not usable (their methods return errors wrapping ErrInvalidConfig, or
// do nothing). Network and Transport are safe for concurrent use. Transport.Close stops
// that node's delivery goroutine and waits for it; Network.Close closes
// every Transport. A handler must not Close its own Transport. Transport
// implements transport.DoneNotifier, so a transport.RPC on it fails its
// pending calls with ErrClosed as soon as Close begins.
package memnet
