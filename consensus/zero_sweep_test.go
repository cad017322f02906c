package consensus_test

import (
	"testing"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/internal/zerotest"
)

// TestZeroValuesDoNotPanic calls every exported method on nil pointers and
// zero values of the package's types: each returns an error or a harmless
// zero result, never a panic or a hang.
func TestZeroValuesDoNotPanic(t *testing.T) {
	zerotest.Sweep(t,
		(*consensus.Client)(nil), new(consensus.Client),
		(*consensus.DiskStorage)(nil), new(consensus.DiskStorage),
		(*consensus.Node)(nil), new(consensus.Node),
		consensus.ClientConfig{},
		consensus.Config{},
		consensus.DiskOptions{},
		consensus.Status{},
	)
}
