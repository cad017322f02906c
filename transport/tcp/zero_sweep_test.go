package tcp_test

import (
	"testing"

	"github.com/distkit/distkit/internal/zerotest"
	"github.com/distkit/distkit/transport/tcp"
)

// TestZeroValuesDoNotPanic calls every exported method on nil pointers and
// zero values of the package's types: each returns an error or a harmless
// zero result, never a panic or a hang.
func TestZeroValuesDoNotPanic(t *testing.T) {
	zerotest.Sweep(t,
		(*tcp.Transport)(nil), new(tcp.Transport),
		tcp.Config{},
	)
}
