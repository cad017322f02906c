package raft_test

import (
	"testing"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/internal/zerotest"
)

// TestZeroValuesDoNotPanic calls every exported method on nil pointers and
// zero values of the package's types: each returns an error or a harmless
// zero result, never a panic or a hang.
func TestZeroValuesDoNotPanic(t *testing.T) {
	zerotest.Sweep(t,
		(*raft.MemoryStorage)(nil), new(raft.MemoryStorage),
		(*raft.RawNode)(nil), new(raft.RawNode),
		raft.Config{},
		raft.Membership{},
		raft.Message{},
		raft.Snapshot{},
		raft.SnapshotMeta{},
		raft.HardState{},
		raft.Entry{},
		raft.NotLeaderError{},
	)
}
