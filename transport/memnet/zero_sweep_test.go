package memnet_test

import (
	"testing"

	"github.com/distkit/distkit/internal/zerotest"
	"github.com/distkit/distkit/transport/memnet"
)

// TestZeroValuesDoNotPanic calls every exported method on nil pointers and
// zero values of the package's types: each returns an error or a harmless
// zero result, never a panic or a hang.
func TestZeroValuesDoNotPanic(t *testing.T) {
	zerotest.Sweep(t,
		(*memnet.Network)(nil), new(memnet.Network),
		(*memnet.Transport)(nil), new(memnet.Transport),
		memnet.Config{},
		memnet.Faults{},
	)
}
