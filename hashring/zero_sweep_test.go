package hashring_test

import (
	"testing"

	"github.com/distkit/distkit/hashring"
	"github.com/distkit/distkit/internal/zerotest"
)

// TestZeroValuesDoNotPanic calls every exported method on nil pointers and
// zero values of the package's types.
func TestZeroValuesDoNotPanic(t *testing.T) {
	zerotest.Sweep(t,
		(*hashring.Ring)(nil), new(hashring.Ring),
		(*hashring.Bounded)(nil), new(hashring.Bounded),
		(*hashring.Rendezvous)(nil), new(hashring.Rendezvous),
		hashring.JumpNodes(nil),
		hashring.Config{}, hashring.BoundedConfig{},
	)
}
