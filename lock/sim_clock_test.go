package lock

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
)

// skewRun runs the contended lock scenario (four clients, pauses longer
// than the TTL, a lossy network) with the server on clock server and every
// client on clock client, and returns the mutual-exclusion check's verdict
// (an error wrapping errOverlap) and how many grants were believed.
func skewRun(t *testing.T, seed int64, server, client sim.Clock) (grants int, err error) {
	t.Helper()
	s, err := sim.New(sim.Config{Seed: seed, MaxEvents: simBudget,
		Faults:  sim.Faults{Drop: 0.05, MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond},
		Clocks:  map[transport.NodeID]sim.Clock{svcID: server},
		MaxTime: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	s.AddNode(svcID, func() sim.Node { return newSimServer(0) })
	res := &simResource{}
	s.AddNode(resID, func() sim.Node { return res })
	var clients []*simClient
	for i := range 4 {
		c := &simClient{auto: true, maxPause: 3 * simTTL, pauseP: 0.3, offset: client.Offset, drift: client.Drift}
		clients = append(clients, c)
		addClient(s, transport.NodeID(fmt.Sprint("c", i)), c)
	}
	s.Run(10 * time.Second)
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	var all []belief
	for _, c := range clients {
		c.endBelief(s.Now())
		all = append(all, c.beliefs...)
	}
	return len(all), beliefsOverlap(all)
}

// TestSimLeaseClockSkew states what the session lease tolerates, on the
// simulator's per-node clocks (sim.Clock):
//
//   - any offset between the client's and the server's clocks: each side
//     measures a duration on its own clock, and the client measures from
//     before its request left, so offsets never enter;
//   - a difference of rates as long as the client's clock runs at least
//     1 − SafetyMargin/TTL as fast as the server's (here margin = TTL/10, so
//     a client clock up to 10% slower than the server's);
//   - beyond that, the client's trust (TTL − margin on a slow clock)
//     outlasts the server's lease (TTL on a fast one) and two clients can
//     believe they hold the lock at once: the simulation's mutual-exclusion
//     check must see it, which shows the check can fail and the bound in
//     the documentation is the real one.
func TestSimLeaseClockSkew(t *testing.T) {
	tests := []struct {
		name           string
		server, client sim.Clock
		safe           bool
	}{
		{"offsets of hours", sim.Clock{Offset: 7 * time.Minute}, sim.Clock{Offset: -time.Hour}, true},
		{"client clock ahead", sim.Clock{Offset: -time.Hour}, sim.Clock{Offset: 3 * time.Hour}, true},
		{"fast client clock", sim.Clock{}, sim.Clock{Drift: 0.3}, true},
		{"rates 7.7% apart, within the 10% margin", sim.Clock{Drift: 0.04}, sim.Clock{Drift: -0.04}, true},
		{"rates 18% apart, beyond the margin", sim.Clock{Drift: 0.1}, sim.Clock{Drift: -0.1}, false},
		{"slow client clock beyond the margin", sim.Clock{}, sim.Clock{Drift: -0.2, Offset: time.Minute}, false},
	}
	const seeds = 8
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if rate := (1 + tt.client.Drift) / (1 + tt.server.Drift); (rate >= 1-float64(simMargin)/float64(simTTL)) != tt.safe {
				t.Fatalf("case mislabelled: client/server rate %.3f against the tolerated %.3f", rate, 1-float64(simMargin)/float64(simTTL))
			}
			if tt.safe {
				grants := 0
				sim.Seeds(t, seeds, func(t *testing.T, seed int64) {
					g, err := skewRun(t, seed, tt.server, tt.client)
					if err != nil {
						t.Fatal(err)
					}
					grants += g
				})
				if grants < 20 {
					t.Errorf("only %d grants over %d seeds: the scenario exercises too little", grants, seeds)
				}
				return
			}
			// Unsafe: some seed among the first few must show two clients
			// believing at once.
			for seed := int64(1); seed <= seeds; seed++ {
				if _, err := skewRun(t, seed, tt.server, tt.client); errors.Is(err, errOverlap) {
					t.Logf("seed %d: %v", seed, err)
					return
				}
			}
			t.Errorf("no seed of %d showed an overlap with the client's clock at %.2f of the server's rate: "+
				"the mutual-exclusion check cannot see a bound that is wrong", seeds, (1+tt.client.Drift)/(1+tt.server.Drift))
		})
	}
}
