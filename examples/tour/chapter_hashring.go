package main

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/distkit/distkit/hashring"
)

func init() {
	register(chapter{order: 30, name: "hashring", title: "Consistent hashing: who owns a key", run: runHashring})
}

func runHashring(ctx context.Context, t *tour) error {
	const keys = 20000
	nodes := make([]hashring.Node, 5)
	for i := range nodes {
		nodes[i] = hashring.Node{Name: fmt.Sprintf("cache-%d", i+1), Weight: 1}
	}
	t.Detail("Five caches go on a ring, each as %d virtual nodes; a key belongs to the", hashring.DefaultVirtualNodes)
	t.Detail("virtual node nearest to the key's hash.")
	ring, err := hashring.NewRing(hashring.DefaultConfig(), nodes...)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(uint64(t.seed), 30))
	key := fmt.Sprintf("user:%d", rng.IntN(10000))
	replicas, err := ring.LocateN(nil, key, 3)
	if err != nil {
		return err
	}
	t.Say("%s is owned by %s; its 3 replicas go to %v", key, replicas[0], replicas)

	before, err := hashring.NewRing(hashring.DefaultConfig(), nodes...)
	if err != nil {
		return err
	}
	t.Detail("Now cache-6 joins. Only keys nearer to its points than to any other should move, all to it.")
	if err := ring.Add("cache-6", 1); err != nil {
		return err
	}
	moved, err := hashring.MeasureMovement(before, ring, hashring.SequentialKeys(keys))
	if err != nil {
		return err
	}
	t.Say("adding cache-6 moved %.1f%% of %d keys (ideal 1/6 = 16.7%%), %d of %d to cache-6",
		100*moved.Fraction, keys, moved.To["cache-6"], moved.Moved)

	if err := ctx.Err(); err != nil {
		return err
	}
	t.Detail("cache-3 fails and is removed: its keys, and only those, go to their next owners.")
	after, err := hashring.NewRing(hashring.DefaultConfig(), ring.Nodes()...)
	if err != nil {
		return err
	}
	if err := after.Remove("cache-3"); err != nil {
		return err
	}
	removed, err := hashring.MeasureMovement(ring, after, hashring.SequentialKeys(keys))
	if err != nil {
		return err
	}
	t.Say("removing cache-3 moved %d keys, %d of them from cache-3", removed.Moved, removed.From["cache-3"])

	t.Detail("Hot keys overload their owner. Bounded loads cap every node at ⌈1.25 × mean⌉:")
	t.Detail("a request goes to its key's owner unless that node is full, then clockwise on.")
	bounded, err := hashring.NewBounded(hashring.DefaultBoundedConfig(), after.Nodes()...)
	if err != nil {
		return err
	}
	zipf := rand.NewZipf(rng, 1.2, 1, 499)
	plain := map[string]int{}
	for i := range keys {
		video := fmt.Sprintf("video-%d", zipf.Uint64())
		owner, err := after.Locate(video)
		if err != nil {
			return err
		}
		plain[owner]++
		if _, err := bounded.AssignWithKey(fmt.Sprintf("req-%d", i), video); err != nil {
			return err
		}
	}
	mean := float64(keys) / float64(after.Len())
	busiest := 0
	for _, l := range plain {
		busiest = max(busiest, l)
	}
	t.Say("Zipf requests: plain ring's busiest node has %.0f%% of the mean, bounded loads' %.0f%%",
		100*float64(busiest)/mean, 100*float64(bounded.Stats().MaxLoad)/mean)
	return nil
}
