package consensus_test

import (
	"testing"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/internal/zerotest"
)

// TestObservabilityZeroValues sweeps the types Status and Metrics added
// (see TestZeroValuesDoNotPanic for the others).
func TestObservabilityZeroValues(t *testing.T) {
	zerotest.Sweep(t,
		consensus.Histogram{}, new(consensus.Histogram), // value methods: no nil pointer
		consensus.NopMetrics{}, new(consensus.NopMetrics),
		consensus.DropReason(0), consensus.SnapshotEvent(0),
	)
}
