package detector_test

import (
	"testing"

	"github.com/distkit/distkit/detector"
	"github.com/distkit/distkit/internal/zerotest"
)

// TestZeroValuesDoNotPanic calls every exported method on nil pointers and
// zero values of the package's types: each returns an error or a harmless
// zero result, never a panic or a hang.
func TestZeroValuesDoNotPanic(t *testing.T) {
	zerotest.Sweep(t,
		(*detector.FixedTimeout)(nil), new(detector.FixedTimeout),
		(*detector.Membership)(nil), new(detector.Membership),
		(*detector.Monitor)(nil), new(detector.Monitor),
		(*detector.PhiAccrual)(nil), new(detector.PhiAccrual),
		detector.Config{},
		detector.Envelope{},
		detector.Event{},
		detector.EventKind(0),
		detector.MemberState{},
		detector.Status(0),
		detector.TimeoutConfig{},
		detector.PhiConfig{},
	)
}
