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
// highest epoch seen, and which leader used it, refuses a deposed leader's
// late request, and a second leader of the same epoch (Bully and Ring can
// elect one per side of a partition, sometimes with equal epochs).
func ExampleLeader_fencing() {
	var holder election.Leader // the highest epoch seen, and its leader
	write := func(l election.Leader, what string) {
		switch {
		case l.Epoch < holder.Epoch:
			fmt.Printf("refused %q from %s: epoch %d < %d\n", what, l.ID, l.Epoch, holder.Epoch)
		case l.Epoch == holder.Epoch && l.ID != holder.ID:
			fmt.Printf("refused %q from %s: epoch %d belongs to %s\n", what, l.ID, l.Epoch, holder.ID)
		default:
			holder = l
			fmt.Printf("applied %q from %s (epoch %d)\n", what, l.ID, l.Epoch)
		}
	}
	write(election.Leader{ID: "n5", Epoch: 3}, "x=1")
	write(election.Leader{ID: "n4", Epoch: 4}, "x=2")
	write(election.Leader{ID: "n5", Epoch: 3}, "x=3") // n5 was partitioned away and does not know yet
	write(election.Leader{ID: "n2", Epoch: 4}, "x=4") // the other side of a partition elected n2 at epoch 4 too
	// Output:
	// applied "x=1" from n5 (epoch 3)
	// applied "x=2" from n4 (epoch 4)
	// refused "x=3" from n5: epoch 3 < 4
	// refused "x=4" from n2: epoch 4 belongs to n4
}
