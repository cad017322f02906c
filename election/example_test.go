package election_test

import (
	"fmt"
	"time"

	"github.com/distkit/distkit/election"
	"github.com/distkit/distkit/election/electionsim"
	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
)

// Five Bully nodes in the simulator: the highest leads; when it crashes
// the next takes over with a higher epoch, and when it comes back it takes
// over again.
func Example() {
	s, _ := sim.New(sim.Config{Seed: 1, Faults: sim.Faults{MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}})
	ids := []transport.NodeID{"n1", "n2", "n3", "n4", "n5"}
	members := election.MembersByOrder(ids...) // n5 has the highest priority
	for _, id := range ids {
		cfg := election.DefaultConfig()
		cfg.ID, cfg.Members = id, members
		_ = s.AddNode(id, func() sim.Node { return electionsim.NewBully(cfg) })
	}
	view := func(id transport.NodeID) election.Leader { return s.Node(id).(*electionsim.Node).Leader() }

	s.Run(2 * time.Second)
	fmt.Printf("n1 sees %s (epoch %d)\n", view("n1").ID, view("n1").Epoch)
	s.Crash("n5")
	s.Run(3 * time.Second)
	fmt.Printf("n5 crashed: n1 sees %s (epoch %d)\n", view("n1").ID, view("n1").Epoch)
	s.Restart("n5")
	s.Run(3 * time.Second)
	fmt.Printf("n5 back: n1 sees %s (epoch %d)\n", view("n1").ID, view("n1").Epoch)
	// Output:
	// n1 sees n5 (epoch 1)
	// n5 crashed: n1 sees n4 (epoch 2)
	// n5 back: n1 sees n5 (epoch 3)
}

// A leader fences its actions with its epoch; a resource that keeps the
// highest epoch seen refuses a deposed leader's late request.
func ExampleLeader_fencing() {
	var highest uint64
	write := func(l election.Leader, what string) {
		if l.Epoch < highest {
			fmt.Printf("refused %q from %s: epoch %d < %d\n", what, l.ID, l.Epoch, highest)
			return
		}
		highest = l.Epoch
		fmt.Printf("applied %q from %s (epoch %d)\n", what, l.ID, l.Epoch)
	}
	old := election.Leader{ID: "n5", Epoch: 3}
	next := election.Leader{ID: "n4", Epoch: 4}
	write(old, "x=1")
	write(next, "x=2")
	write(old, "x=3") // n5 was partitioned away and does not know yet
	// Output:
	// applied "x=1" from n5 (epoch 3)
	// applied "x=2" from n4 (epoch 4)
	// refused "x=3" from n5: epoch 3 < 4
}
