package hashring_test

import (
	"fmt"

	"github.com/distkit/distkit/hashring"
)

func ExampleRing() {
	ring, err := hashring.NewRing(hashring.DefaultConfig(),
		hashring.Node{Name: "cache-a", Weight: 1},
		hashring.Node{Name: "cache-b", Weight: 1},
		hashring.Node{Name: "cache-c", Weight: 2}, // twice the memory, twice the keys
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	owner, err := ring.Locate("user:42")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("user:42 lives on", owner)
	// Output:
	// user:42 lives on cache-a
}

func ExampleRing_LocateN() {
	ring, err := hashring.NewRing(hashring.DefaultConfig(),
		hashring.Node{Name: "db-1", Weight: 1},
		hashring.Node{Name: "db-2", Weight: 1},
		hashring.Node{Name: "db-3", Weight: 1},
		hashring.Node{Name: "db-4", Weight: 1},
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	replicas := make([]string, 0, 3) // reuse across calls: no allocation
	replicas, err = ring.LocateN(replicas[:0], "order:1001", 3)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("order:1001 replicas:", replicas)
	// Output:
	// order:1001 replicas: [db-3 db-1 db-2]
}

func ExampleBounded() {
	b, err := hashring.NewBounded(hashring.DefaultBoundedConfig(),
		hashring.Node{Name: "ws-1", Weight: 1},
		hashring.Node{Name: "ws-2", Weight: 1},
		hashring.Node{Name: "ws-3", Weight: 1},
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	for i := range 30 {
		if _, err := b.Assign(fmt.Sprintf("session-%d", i)); err != nil {
			fmt.Println(err)
			return
		}
	}
	capacity, _ := b.Capacity("ws-1")
	fmt.Println("capacity per node:", capacity) // ⌈1.25 × 30 / 3⌉
	fmt.Println("most sessions on one node:", b.Stats().MaxLoad)
	moves, _ := b.Release("session-0")
	fmt.Println("moves after a release:", len(moves))
	// Output:
	// capacity per node: 13
	// most sessions on one node: 13
	// moves after a release: 0
}

func ExampleJump() {
	shard, err := hashring.Jump(0xdeadbeef, 7)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("shard", shard)
	// Output:
	// shard 5
}

func ExampleMeasureMovement() {
	nodes := func(n int) []hashring.Node {
		var out []hashring.Node
		for i := range n {
			out = append(out, hashring.Node{Name: fmt.Sprintf("server-%d", i), Weight: 1})
		}
		return out
	}
	ten, _ := hashring.NewRing(hashring.DefaultConfig(), nodes(10)...)
	eleven, _ := hashring.NewRing(hashring.DefaultConfig(), nodes(11)...)
	m, err := hashring.MeasureMovement(ten, eleven, hashring.SequentialKeys(10000))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%.0f%% of keys moved; all to the new server: %v\n", 100*m.Fraction, len(m.To) == 1 && m.To["server-10"] == m.Moved)
	// Output:
	// 9% of keys moved; all to the new server: true
}
