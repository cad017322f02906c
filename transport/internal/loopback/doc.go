// Package loopback is a minimal, fault-free, in-process Transport used by
// distkit's own tests and benchmarks of the layers above the transport (RPC,
// the conformance suite) without depending on memnet or sockets.
//
// Every node has a bounded inbox served by one goroutine, so delivery is
// per-link FIFO (in fact per-receiver FIFO) and Send never blocks.
package loopback
