package detector_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/distkit/distkit/detector"
	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
)

// TestSimClockSkew gives every node its own clock (sim.Clock): offsets of
// up to an hour either way and rates up to 5% apart. The detector only
// measures intervals between arrivals on the observer's own clock, so
// offsets never enter, and a sender whose clock runs slow just sends its
// heartbeats a little less often, which φ learns as the member's normal
// interval. Over 300 simulated seconds nobody is declared Failed, and a
// crash is still detected by every live node within 10 s.
func TestSimClockSkew(t *testing.T) {
	sim.Seeds(t, 2, func(t *testing.T, seed int64) {
		c := newCluster(t, seed, 8, scenarioConfig(), lossyNet)
		for i, id := range c.ids {
			// Spread over [-1h, +1h] and [-5%, +5%], distinct per node.
			f := float64(i)/float64(len(c.ids)-1)*2 - 1
			c.s.SetClock(id, sim.Clock{Offset: time.Duration(f * float64(time.Hour)), Drift: 0.05 * f})
			c.s.Restart(id) // boot again on the skewed clock
		}
		c.rec.events = nil
		c.s.Run(300 * time.Second)
		for _, e := range c.rec.events {
			if e.Kind == detector.EventFailed {
				t.Fatalf("%s declared %v with no crash (clocks skewed)", e.by, e.Event)
			}
		}
		victim := c.ids[int(seed)%len(c.ids)]
		c.s.Crash(victim)
		c.rec.events = nil
		c.s.Run(10 * time.Second)
		failed := map[transport.NodeID]bool{}
		for _, e := range c.rec.events {
			if e.Member == victim && e.Kind == detector.EventFailed {
				failed[e.by] = true
			}
		}
		if len(failed) != len(c.ids)-1 {
			t.Errorf("%d of %d live nodes declared %s Failed within 10 s of its crash: %v",
				len(failed), len(c.ids)-1, victim, fmt.Sprint(failed))
		}
	})
}
