package clock_test

import (
	"testing"

	"github.com/distkit/distkit/clock"
	"github.com/distkit/distkit/internal/zerotest"
)

// TestZeroValuesDoNotPanic calls every exported method on nil pointers and
// zero values of the package's types. The NonNil methods are those doc.go
// says need a non-nil clock (they record an event and return no error).
func TestZeroValuesDoNotPanic(t *testing.T) {
	zerotest.SweepNonNil(t, zerotest.NonNil{
		"(*clock.Lamport).Tick": true, "(*clock.Lamport).Send": true,
		"(*clock.HLC).Now":        true,
		"(*clock.Manual).Advance": true, "(*clock.Manual).Set": true,
		"(*clock.Vector).Tick": true, "(*clock.Vector).TickAt": true,
		"(*clock.Vector).Receive": true, "(*clock.Vector).Reset": true,
	},
		(*clock.HLC)(nil), new(clock.HLC),
		(*clock.Lamport)(nil), new(clock.Lamport),
		(*clock.Manual)(nil), new(clock.Manual),
		(*clock.Vector)(nil), new(clock.Vector),
		clock.System{}, clock.HLCConfig{}, clock.PrunePolicy{}, clock.Stamp{}, clock.Timestamp{},
		&clock.OffsetError{},
	)
}
