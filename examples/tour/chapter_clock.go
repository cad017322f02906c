package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/distkit/distkit/clock"
)

func init() {
	register(chapter{order: 20, name: "clock", title: "Clocks: ordering events without a shared clock", run: runClock})
}

func runClock(ctx context.Context, t *tour) error {
	rng := rand.New(rand.NewPCG(uint64(t.seed), 20))

	// Part 1: two replicas take writes for the same key while cut off from
	// each other, then sync. Lamport stamps order the writes; vector clocks
	// notice that neither write saw the other.
	t.Detail("Replicas A and B both hold cart=[book], written at A. They lose contact;")
	t.Detail("a client adds a pen at A while another adds a lamp at B. Then they sync.")
	var lamA, lamB clock.Lamport
	vecA, vecB := clock.NewVector(), clock.NewVector()
	first := lamA.Tick()
	vecA.Tick("A")
	if _, err := lamB.Receive(first); err != nil {
		return err
	}
	vecB.Receive("B", vecA)
	// A few unrelated local events on each side, chosen by the seed, make
	// the Lamport numbers differ from run to run.
	for range rng.IntN(3) {
		lamA.Tick()
		vecA.Tick("A")
	}
	for range rng.IntN(3) {
		lamB.Tick()
		vecB.Tick("B")
	}
	penAt := clock.Stamp{Time: lamA.Tick(), Node: "A"}
	vecA.Tick("A")
	lampAt := clock.Stamp{Time: lamB.Tick(), Node: "B"}
	vecB.Tick("B")
	t.Say("pen written at A: Lamport %v, vector %v", penAt, vecA)
	t.Say("lamp written at B: Lamport %v, vector %v", lampAt, vecB)
	winner := "pen"
	if lampAt.Compare(penAt) > 0 {
		winner = "lamp"
	}
	t.Say("last-writer-wins by Lamport stamp keeps only the %s; the other item is silently lost", winner)
	switch rel := vecA.Compare(vecB); rel {
	case clock.Concurrent:
		t.Say("vector clocks say the writes are %v: keep both as siblings and merge the carts", rel)
	default:
		return fmt.Errorf("vector clocks ordered concurrent writes: %v", rel)
	}
	merged := vecA.Copy()
	merged.Receive("A", vecB)
	t.Detail("After the merge A's clock is %v, which descends from both writes:", merged)
	t.Say("merged clock %v is after A's write (%v) and after B's (%v)", merged, vecA.Compare(merged) == clock.Before, vecB.Compare(merged) == clock.Before)

	if err := ctx.Err(); err != nil {
		return err
	}

	// Part 2: a hybrid logical clock on a node whose wall clock misbehaves.
	t.Detail("A hybrid logical clock (HLC) stamps events with wall time plus a counter;")
	t.Detail("the wall part is rounded down to %v so a timestamp packs into 64 bits.", clock.WallResolution)
	start := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	wall := clock.NewManual(start)
	hlc, err := clock.NewHLC(clock.HLCConfig{Source: wall, MaxOffset: 500 * time.Millisecond})
	if err != nil {
		return err
	}
	before := hlc.Now()
	step := time.Duration(1+rng.IntN(5)) * time.Second
	wall.Advance(-step)
	t.Detail("NTP steps the wall clock back by %v.", step)
	after := hlc.Now()
	t.Say("HLC before the step %s, after it %s: still increasing (%v)", hlcTime(before), hlcTime(after), before.Less(after))

	fast, err := clock.NewTimestamp(wall.Now().Add(10*time.Second), 0)
	if err != nil {
		return err
	}
	t.Detail("A peer whose clock runs 10s fast sends a timestamp; the limit is 500ms.")
	_, err = hlc.Update(fast)
	if !errors.Is(err, clock.ErrOffsetExceeded) {
		return fmt.Errorf("HLC accepted a timestamp 10s ahead: %v", err)
	}
	t.Say("update from the fast peer rejected: %v", err)
	t.Say("the clock is unchanged: %v", hlc.Current() == after)
	t.Say("packed into 64 bits for the wire: %#x", after.Pack())
	return nil
}

// hlcTime shows an HLC timestamp as wall time of day plus logical counter.
func hlcTime(ts clock.Timestamp) string {
	return fmt.Sprintf("%s+%d", ts.Time().UTC().Format("15:04:05.000000"), ts.Logical())
}
