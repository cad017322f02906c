package raft

import (
	"context"
	"testing"

	"github.com/distkit/distkit/internal/benchload"
)

// proposeFunc commits one command and returns when it is applied.
type proposeFunc func(ctx context.Context, cmd []byte) error

// runProposers commits b.N 128-byte commands from the given number of
// goroutines and reports throughput and latency percentiles, measured the
// same way as distkit's own BenchmarkRaftPropose.
func runProposers(b *testing.B, propose proposeFunc, proposers int) {
	cmd := make([]byte, 128)
	benchload.Run(b, proposers, "ops/s", func(ctx context.Context, _ int) error {
		return propose(ctx, cmd)
	})
}

// BenchmarkRaftCompare runs the same workload on both libraries, side by
// side.
func BenchmarkRaftCompare(b *testing.B) {
	b.Run("distkit-mem", func(b *testing.B) {
		propose, cleanup := distkitCluster(b, false)
		defer cleanup()
		runProposers(b, propose, 64)
	})
	b.Run("hashicorp-mem", func(b *testing.B) {
		propose, cleanup := hashicorpCluster(b, false)
		defer cleanup()
		runProposers(b, propose, 64)
	})
	b.Run("distkit-wal", func(b *testing.B) {
		propose, cleanup := distkitCluster(b, true)
		defer cleanup()
		runProposers(b, propose, 64)
	})
	b.Run("hashicorp-bolt", func(b *testing.B) {
		propose, cleanup := hashicorpCluster(b, true)
		defer cleanup()
		runProposers(b, propose, 64)
	})
}
