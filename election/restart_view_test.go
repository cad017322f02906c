package election

import (
	"testing"
	"time"
)

// TestRestartedNodeDoesNotResumeItsOldLeadership: n3 led in epoch 7, lost
// its power and restarted with epoch 7 restored from its store. Before the
// others notice, one of them tells it "n3 leads, epoch 7". That leadership
// ended with n3's previous life; taking it up again would make a second
// leadership in epoch 7 that fencing cannot tell from the first. The core
// must keep "leader unknown" at epoch 7, and when it leads again (after an
// election), lead in a higher epoch.
func TestRestartedNodeDoesNotResumeItsOldLeadership(t *testing.T) {
	old := Leader{ID: "n3", Epoch: 7}
	cases := []struct {
		name string
		new  func(Config, State, uint64, time.Time) (Core, error)
		kind msgKind // a message that carries the stale view
	}{
		{"bully/coordinator", func(c Config, st State, s uint64, n time.Time) (Core, error) { return NewBullyCore(c, st, s, n) }, kindCoordinator},
		{"bully/heartbeat", func(c Config, st State, s uint64, n time.Time) (Core, error) { return NewBullyCore(c, st, s, n) }, kindHeartbeat},
		{"ring/elected", func(c Config, st State, s uint64, n time.Time) (Core, error) { return NewRingCore(c, st, s, n) }, kindRingElected},
		{"ring/heartbeat", func(c Config, st State, s uint64, n time.Time) (Core, error) { return NewRingCore(c, st, s, n) }, kindHeartbeat},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig("n3")
			cfg.BootDelay = 0
			// Short detector timings: the silent peers are soon held
			// Failed, so Ring's token can route around them.
			cfg.Detector.HeartbeatInterval = 20 * time.Millisecond
			cfg.Detector.ProbeTimeout = 20 * time.Millisecond
			cfg.Detector.CheckInterval = 5 * time.Millisecond
			c, err := tc.new(cfg, State{Epoch: old.Epoch}, 1, t0)
			if err != nil {
				t.Fatal(err)
			}
			c.Ready()
			c.Receive(t0, "n1", wire(tc.kind, old)) // a heartbeat's empty inner payload is the detector's business
			if got := c.Ready().Leader; got.ID == "n3" && got.Epoch <= old.Epoch {
				t.Fatalf("after a peer's stale view, Leader() = %+v: the restarted node took up the leadership of its previous life (epoch %d)", got, old.Epoch)
			}
			// Left alone, it elects itself (the highest priority) in a
			// new epoch.
			// Nobody answers: n1 and n2 are silent.
			now, got := t0, Leader{}
			for i := 0; i < 1000 && got.ID != "n3"; i++ {
				now = now.Add(10 * time.Millisecond)
				c.Tick(now)
				got = c.Ready().Leader
			}
			if got.ID != "n3" || got.Epoch <= old.Epoch {
				t.Fatalf("Leader() = %+v; want n3 leading in an epoch above %d", got, old.Epoch)
			}
		})
	}
}
