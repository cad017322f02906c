package lock

import (
	"time"

	"github.com/distkit/distkit/clock"
)

// steadyClock is the service side's clock: the reading at its creation plus
// the time elapsed since, as src measures it. Leases are durations on the
// service's clock, and the table keeps its time as wall-clock nanoseconds,
// so with clock.System a step of the wall clock (NTP, an operator) would
// otherwise expire every lease at once, while the clients, whose bounds
// use the monotonic clock, still trust them. time.Time.Sub uses the
// monotonic readings when both times carry one, so the elapsed part cannot
// jump. With a Manual clock it reads exactly like src.
type steadyClock struct {
	src   clock.Source
	start time.Time // src's reading at creation, monotonic part included
	base  time.Time // the same instant, wall clock only
}

func newSteadyClock(src clock.Source) steadyClock {
	start := src.Now()
	return steadyClock{src: src, start: start, base: start.Round(0)}
}

// Now returns the creation-time reading plus the elapsed time.
func (c steadyClock) Now() time.Time { return c.base.Add(c.src.Now().Sub(c.start)) }
