package sim_test

import (
	"testing"

	"github.com/distkit/distkit/internal/zerotest"
	"github.com/distkit/distkit/sim"
)

// TestZeroValuesDoNotPanic calls every exported method on nil pointers and
// zero values of the package's types: each returns an error or a harmless
// zero result, never a panic or a hang.
func TestZeroValuesDoNotPanic(t *testing.T) {
	zerotest.Sweep(t,
		(*sim.Sim)(nil), new(sim.Sim),
		(*sim.Disk)(nil), new(sim.Disk),
		sim.Config{},
		sim.Faults{},
	)
}
