package consensus

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// TestRandomCrashRestart stops and restarts durable nodes at random, one or
// two at a time, while a client keeps writing; snapshots are frequent so
// restarts go through both log replay and snapshot installation. Every
// acknowledged write must be visible on every node at the end. The seed is
// logged and DISTKIT_SEED replays it (the network and timers still vary);
// DISTKIT_SOAK=1 runs more rounds.
func TestRandomCrashRestart(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("DISTKIT_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (replay with DISTKIT_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, _ := newMemnetCluster(t, true, memnet.Faults{}, func(cfg *Config) {
		cfg.SnapshotThreshold = 8
		cfg.SnapshotRetainEntries = 2
	})
	acked := map[string]string{}
	writes := 0
	writeSome := func(n int) {
		members := map[transport.NodeID]Proposer{}
		for id, node := range c.nodes {
			members[id] = node
		}
		// The nodes are stopped between writes, never with one in flight,
		// and the client only knows the running ones.
		ccfg := DefaultClientConfig()
		cl, err := NewClient(members, ccfg)
		if err != nil {
			t.Fatal(err)
		}
		for range n {
			k, v := fmt.Sprintf("w%d", writes), fmt.Sprint(rng.IntN(1000))
			write(ctx, t, cl, k, v)
			acked[k] = v
			writes++
		}
	}
	writeSome(5)
	for round := range 6 * rounds() {
		down := []transport.NodeID{c.ids[rng.IntN(3)]}
		if rng.IntN(4) == 0 {
			// Two down: no majority, so no writes until one is back.
			down = append(down, c.ids[(slices.Index(c.ids, down[0])+1)%3])
		}
		for _, id := range down {
			c.stop(id)
		}
		if len(down) == 1 {
			writeSome(1 + rng.IntN(12))
		}
		for _, id := range down {
			c.start(id)
		}
		writeSome(1 + rng.IntN(4))
		t.Logf("round %d: restarted %v, %d writes so far", round, down, writes)
	}
	last := write(ctx, t, c.client(), "final", "1")
	acked["final"] = "1"
	for _, id := range c.ids {
		if err := c.sms[id].waitApplied(ctx, last); err != nil {
			t.Fatalf("seed %d: %s: %v", seed, id, err)
		}
		for k, v := range acked {
			if got, _ := c.sms[id].get(k); got != v {
				t.Fatalf("seed %d: %s: acknowledged %s=%s reads %q", seed, id, k, v, got)
			}
		}
	}
}
