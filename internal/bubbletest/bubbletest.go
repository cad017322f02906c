// Package bubbletest runs seeded tests of real runtimes (goroutines,
// timers, a transport, a fault file system) inside testing/synctest
// bubbles, so that time is virtual and a run is reproducible from its
// seed, and so that a broken rule fails a test instead of hanging it.
//
// Run picks the seeds: the test's defaults, DISTKIT_SEED=N to replay one,
// or DISTKIT_SOAK=1 for many. Each seed runs in a bubble of its own with a
// real-time watchdog: a broken rule can make nodes exchange messages
// forever at one instant of virtual time, which no virtual timeout ends.
// Past the budget the watchdog sets the stalled flag; a Transport that
// wraps every node's transport then drops every message, the run ends, and
// Run fails the seed with a message saying so. A failed seed logs the
// command that replays it.
//
// The package imports testing and is for tests only.
package bubbletest

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/distkit/distkit/transport"
)

// Run runs test once per seed, each in a subtest "seed=N" and a synctest
// bubble of its own. The seeds are defaults; 1..soak with DISTKIT_SOAK=1;
// or the one DISTKIT_SEED names. budget is the real time a seed may take
// before it counts as a livelock (see the package doc). replay is the
// command that replays a seed, with %d for the seed, logged on failure.
func Run(t *testing.T, defaults []uint64, soak uint64, budget time.Duration, replay string, test func(t *testing.T, seed uint64, stalled *atomic.Bool)) {
	t.Helper()
	seeds := defaults
	if os.Getenv("DISTKIT_SOAK") == "1" {
		seeds = nil
		for s := range soak {
			seeds = append(seeds, s+1)
		}
	}
	if s := os.Getenv("DISTKIT_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("DISTKIT_SEED=%q: %v", s, err)
		}
		seeds = []uint64{seed}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			var stalled atomic.Bool
			watchdog := time.AfterFunc(budget, func() { stalled.Store(true) }) // real time: outside the bubble
			defer watchdog.Stop()
			synctest.Test(t, func(t *testing.T) { test(t, seed, &stalled) })
			if stalled.Load() {
				t.Errorf("seed %d: the run took more than %v of real time: a livelock (messages exchanged forever at one instant of virtual time)", seed, budget)
			}
			if t.Failed() {
				t.Logf("replay with "+replay, seed)
			}
		})
	}
}

// Transport is a transport that drops every message once Stalled is set
// (see Run).
type Transport struct {
	transport.Transport
	Stalled *atomic.Bool
}

// Send sends as the wrapped transport does, or drops the message (nil
// error, as a lost message) once Stalled is set.
func (s Transport) Send(ctx context.Context, to transport.NodeID, service string, payload []byte) error {
	if s.Stalled.Load() {
		return nil
	}
	return s.Transport.Send(ctx, to, service, payload)
}
