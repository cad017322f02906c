package electionsim_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/distkit/distkit/election"
	"github.com/distkit/distkit/election/electionsim"
	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Three Ring nodes elect the highest; a partition isolates it, and the
// other side elects its own leader with a higher epoch.
func ExampleNewRing() {
	s, _ := sim.New(sim.Config{Seed: 1, Faults: sim.Faults{MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}})
	ids := []transport.NodeID{"a", "b", "c"}
	for _, id := range ids {
		cfg := election.DefaultConfig()
		cfg.ID, cfg.Members = id, election.MembersByOrder(ids...) // c ranks highest
		_ = s.AddNode(id, func() sim.Node { return electionsim.NewRing(cfg) })
	}
	view := func(id transport.NodeID) election.Leader { return s.Node(id).(*electionsim.Node).Leader() }

	s.Run(time.Second)
	fmt.Println("a:", view("a"), "c:", view("c"))
	s.Partition([]transport.NodeID{"a", "b"}, []transport.NodeID{"c"})
	s.Run(3 * time.Second)
	fmt.Println("a:", view("a"), "c:", view("c"))
	// Output:
	// a: {c 1} c: {c 1}
	// a: {b 2} c: {c 1}
}

func TestBadConfigIsReported(t *testing.T) {
	s, err := sim.New(sim.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg := election.DefaultConfig() // no ID, no Members
	var nd *electionsim.Node
	if err := s.AddNode("a", func() sim.Node { nd = electionsim.NewBully(cfg); return nd }); err != nil {
		t.Fatal(err)
	}
	s.Run(time.Second)
	if nd.Err() == nil || nd.Core() != nil {
		t.Errorf("Err() = %v, Core() = %v; want a config error and no core", nd.Err(), nd.Core())
	}
	if got := nd.Leader(); got.Known() {
		t.Errorf("Leader() = %+v; want none", got)
	}
	if got := nd.Stats(); got != (election.Stats{}) {
		t.Errorf("Stats() = %+v; want zero", got)
	}
}
