// Package consensustest starts clusters of consensus nodes for tests,
// examples and benchmarks, as net/http/httptest starts servers: one call
// replaces the setup every test of a replicated service would otherwise
// copy (a network, a transport, a config and a state machine per node,
// and their shutdown in the right order).
//
// # Usage
//
//	c := consensustest.Start(t, 3)                 // n1, n2, n3 on memnet, in memory
//	l := c.WaitLeader(ctx)                         // the node a majority follows
//	res, err := c.Client().Propose(ctx, []byte("k=v"))
//	c.KV("n2").WaitApplied(ctx, res.(uint64))      // the default state machine is a KV
//	c.Crash(l.ID())                                // and later c.Restart(l.ID())
//
// Options choose the network (WithNetwork(TCP) for loopback TCP, memnet by
// default), durable storage (WithDataDir: a t.TempDir per node, so a node
// restarts from its log), the state machine (WithStateMachine), Config
// tweaks (WithConfig), memnet faults (WithFaults) and a logger
// (WithLogger). Membership tests grow and shrink the cluster with AddNode
// (start a joiner, add it as a learner, promote it once caught up) and
// RemoveNode; memnet tests cut the network with Partition, Isolate and
// Heal.
//
// # The caller's duties
//
//  1. Pass the test's t: Start registers the shutdown with t.Cleanup, so
//     nodes, transports and the network are closed when the test ends and
//     goleak finds nothing behind.
//  2. Call the methods that fail the test (Start, Stop, Crash, Restart,
//     StartJoiner, WaitLeader, Client, KV) from the test's goroutine only;
//     Leader, AddNode and RemoveNode return errors and may be called from
//     any goroutine.
//  3. Give every blocking call a context with a deadline: a deadline turns
//     a hang into a failure; never assert on how long something took.
//
// # Concurrency
//
// A Cluster is safe for concurrent use. Node returns the node running
// under an ID at the time of the call; Client's proposers look the node up
// at every attempt, so clients keep working across Stop, Restart and
// AddNode.
//
// # Fault model
//
// Stop closes a node cleanly; Crash also loses every message in flight to
// or from it (memnet) or closes its transport (TCP). Either way only what
// the node made durable survives, and only with WithDataDir: an in-memory
// node restarts empty under the same ID, having forgotten its vote and
// the entries it acknowledged. The cluster brings it back up to date, but
// Raft's safety assumes neither is ever lost: use WithDataDir when a test
// is about safety across restarts.
//
// Nodes run with fast timings (5 ms ticks, elections after 50-100 ms of
// silence); on a loaded machine that makes spurious elections likely,
// which the tests this package serves must tolerate.
package consensustest
