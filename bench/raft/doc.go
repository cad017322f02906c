// Package raft compares distkit's consensus with github.com/hashicorp/raft
// v1.8.0 on the same workload: three nodes in one process, 128-byte
// commands, 64 concurrent proposers to the leader, reporting ops/s and p50
// and p99 commit latency.
//
//	cd bench && go test -run '^$' -bench RaftCompare -benchtime 3s ./raft/
//
// Sub-benchmarks: distkit-mem and hashicorp-mem run over in-memory
// transports and storage; distkit-wal (loopback TCP, distkit's write-ahead
// log) and hashicorp-bolt (its TCP transport and raft-boltdb store) fsync
// every write.
package raft
