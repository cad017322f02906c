package clock_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/distkit/distkit/clock"
)

// Two processes exchange one message: the receive lands after the send.
func ExampleLamport() {
	var p1, p2 clock.Lamport
	p1.Tick()       // a local event at p1: 1
	ts := p1.Send() // p1 sends m, attaching 2
	p2.Tick()       // a local event at p2: 1
	got, err := p2.Receive(ts)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("send", ts, "receive", got)
	// Output: send 2 receive 3
}

// Stamps break ties between equal Lamport times by node, giving a total
// order every node agrees on.
func ExampleStamp_Compare() {
	a := clock.Stamp{Time: 3, Node: "p2"}
	b := clock.Stamp{Time: 3, Node: "p1"}
	fmt.Println(a, "vs", b, "=", a.Compare(b))
	// Output: 3@p2 vs 3@p1 = 1
}

// Vector clocks tell concurrent updates apart from ordered ones.
func ExampleVector_Compare() {
	alice := clock.NewVector()
	alice.Tick("alice") // alice writes
	bob := alice.Copy()
	bob.Tick("bob")     // bob saw alice's write, then wrote
	alice.Tick("alice") // alice writes again, unaware of bob

	fmt.Println(alice, bob, alice.Compare(bob))
	merged := alice.Copy()
	merged.Receive("alice", bob)
	fmt.Println(merged, bob.Compare(merged))
	// Output:
	// {alice:2} {alice:1 bob:1} concurrent
	// {alice:3 bob:1} before
}

// The binary form is compact and round-trips exactly.
func ExampleVector_MarshalBinary() {
	v, _ := clock.VectorOf(map[clock.NodeID]uint64{"n1": 5, "n2": 300})
	data, _ := v.MarshalBinary()
	var w clock.Vector
	if err := w.UnmarshalBinary(data); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(data), "bytes:", &w)
	// Output: 12 bytes: {n1:5 n2:300}
}

// Pruning keeps a clock with many writers bounded, at the cost of exact
// causality for the entries it drops.
func ExampleVector_Prune() {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	v := clock.NewVector()
	v.TickAt("old-client", now.Add(-48*time.Hour))
	v.TickAt("client-a", now.Add(-time.Minute))
	v.TickAt("client-b", now)
	policy := clock.PrunePolicy{SmallSize: 1, BigSize: 10, YoungAge: 20 * time.Second, OldAge: 24 * time.Hour}
	n, err := v.Prune(policy, now)
	fmt.Println(n, v, err)
	// Output: 1 {client-a:1 client-b:1} <nil>
}

// A hybrid logical clock never goes backwards, even when the wall clock
// does, and refuses timestamps from a clock running too far ahead.
func ExampleHLC() {
	wall := clock.NewManual(time.Unix(1_700_000_000, 0))
	h, err := clock.NewHLC(clock.HLCConfig{Source: wall, MaxOffset: 500 * time.Millisecond})
	if err != nil {
		fmt.Println(err)
		return
	}
	a := h.Now()
	wall.Advance(-time.Second) // NTP steps the clock back
	b := h.Now()
	fmt.Println(a, b, a.Less(b))

	future, _ := clock.NewTimestamp(time.Unix(1_700_000_010, 0), 0)
	_, err = h.Update(future)
	fmt.Println(errors.Is(err, clock.ErrOffsetExceeded), h.Current() == b)
	// Output:
	// 1700000000.000000000,0 1700000000.000000000,1 true
	// true true
}

// A timestamp packs into 64 bits that sort like the timestamp.
func ExampleTimestamp_Pack() {
	t, _ := clock.NewTimestamp(time.Unix(0, 1<<20), 7)
	p := t.Pack()
	back, _ := clock.UnpackTimestamp(p)
	fmt.Printf("%#x %v %v\n", p, back, back == t)
	// Output: 0x100007 0.001048576,7 true
}
