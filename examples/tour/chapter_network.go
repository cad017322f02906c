package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

func init() {
	register(chapter{order: 10, name: "network", title: "The network: messages flowing, a partition, and healing", run: runNetwork})
}

// runNetwork starts five nodes on the in-memory network, lets them exchange
// heartbeats over a lossy, jittery network, cuts one node off with a
// partition and heals it, narrating what the counters show. Every fault is
// drawn from t.seed, and all sends come from this goroutine, so a seed
// always tells the same story.
func runNetwork(ctx context.Context, t *tour) error {
	cfg := memnet.DefaultConfig()
	cfg.Seed = t.seed
	cfg.Faults = memnet.Faults{Drop: 0.05, MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}
	net, err := memnet.New(cfg)
	if err != nil {
		return err
	}
	defer net.Close()

	ids := []transport.NodeID{"n1", "n2", "n3", "n4", "n5"}
	var mu sync.Mutex // guards heard
	heard := map[transport.NodeID]int{}
	nodes := map[transport.NodeID]*memnet.Transport{}
	for _, id := range ids {
		tr, err := net.Join(id)
		if err != nil {
			return err
		}
		tr.Handle("heartbeat", func(msg transport.Message) {
			mu.Lock()
			heard[msg.To]++
			mu.Unlock()
		})
		nodes[id] = tr
	}
	t.Detail("Five nodes join an in-process network that loses 5%% of messages and")
	t.Detail("delays each by 1-5ms. Every round, each node sends a heartbeat to each other.")

	// round sends one heartbeat on every link, waits until each has been
	// delivered or dropped, and returns how many got through.
	round := func(n int) (int, error) {
		before := net.Stats()
		for _, from := range ids {
			for _, to := range ids {
				if from == to {
					continue
				}
				if err := nodes[from].Send(ctx, to, "heartbeat", fmt.Appendf(nil, "beat %d", n)); err != nil {
					return 0, err
				}
			}
		}
		if err := net.Flush(ctx); err != nil {
			return 0, err
		}
		return int(net.Stats().Delivered - before.Delivered), nil
	}
	rounds := func(first, n int) (int, error) {
		total := 0
		for r := first; r < first+n; r++ {
			got, err := round(r)
			if err != nil {
				return 0, err
			}
			total += got
			select { // pace the rounds like a heartbeat interval
			case <-time.After(20 * time.Millisecond):
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		return total, nil
	}
	linkLine := func(from transport.NodeID) string {
		var parts []string
		for _, to := range ids {
			if to != from {
				ls := net.LinkStats(from, to)
				parts = append(parts, fmt.Sprintf("%s %d/%d", to, ls.Delivered, ls.Sent))
			}
		}
		return strings.Join(parts, ", ")
	}

	// Part 1: a healthy (if lossy) network.
	got, err := rounds(1, 10)
	if err != nil {
		return err
	}
	t.Say("10 rounds, 200 heartbeats: %d delivered, %d lost to the 5%% drop rate", got, 200-got)
	t.Detail("n1's links (delivered/sent): %s", linkLine("n1"))

	// Part 2: n5 is cut off.
	t.Detail("A partition puts n5 alone on one side; n1-n4 stay together on the other.")
	net.Partition([]transport.NodeID{"n5"})
	mu.Lock()
	n5Before := heard["n5"]
	mu.Unlock()
	droppedBefore := net.LinkStats("n1", "n5").Dropped
	got, err = rounds(11, 10)
	if err != nil {
		return err
	}
	mu.Lock()
	n5During := heard["n5"] - n5Before
	mu.Unlock()
	t.Say("10 rounds partitioned: %d of 200 delivered; n5 heard %d heartbeats", got, n5During)
	t.Say("the counters show the cut: link n1->n5 dropped %d of the last 10", net.LinkStats("n1", "n5").Dropped-droppedBefore)
	if n5During != 0 {
		return fmt.Errorf("n5 heard %d heartbeats through a partition", n5During)
	}

	// Part 3: heal.
	t.Detail("The partition heals; the same links carry heartbeats again.")
	net.Heal()
	got, err = rounds(21, 10)
	if err != nil {
		return err
	}
	mu.Lock()
	n5After := heard["n5"] - n5Before - n5During
	mu.Unlock()
	t.Say("10 rounds healed: %d of 200 delivered; n5 heard %d of its 40 again", got, n5After)
	if n5After == 0 {
		return fmt.Errorf("n5 heard nothing after the partition healed")
	}
	st := net.Stats()
	t.Say("in all: sent %d, delivered %d, dropped %d (faults and partition)", st.Sent, st.Delivered, st.Dropped)
	return ctx.Err()
}
