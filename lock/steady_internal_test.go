package lock

import (
	"testing"
	"time"

	"github.com/distkit/distkit/clock"
)

func TestSteadyClockFollowsElapsedTime(t *testing.T) {
	src := clock.NewManual(t0Internal)
	c := newSteadyClock(src)
	steps := []time.Duration{0, time.Second, time.Hour, -30 * time.Minute}
	for _, d := range steps {
		want := src.Advance(d)
		if got := c.Now(); !got.Equal(want) {
			t.Errorf("after Advance(%v): Now() = %v; want %v", d, got, want)
		}
	}
	// With a reading that carries a monotonic clock, the result carries
	// none: the table only ever sees base + elapsed.
	sys := newSteadyClock(clock.System{})
	if got := sys.Now(); got != got.Round(0) {
		t.Errorf("Now() = %v carries a monotonic reading; want the wall-clock form", got)
	}
}
