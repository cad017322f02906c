package detectorsim_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/distkit/distkit/detector"
	"github.com/distkit/distkit/detector/detectorsim"
	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A Node whose core cannot be built reports why through Err and stays
// inert instead of panicking in the simulator.
func TestNodeBootErrors(t *testing.T) {
	bad := detector.DefaultConfig()
	bad.HeartbeatInterval = 0
	tests := []struct {
		name    string
		cfg     detector.Config
		members []transport.NodeID
		wantErr error
	}{
		{"valid", detector.DefaultConfig(), []transport.NodeID{"n1", "n2"}, nil},
		{"bad config", bad, []transport.NodeID{"n1", "n2"}, detector.ErrInvalidConfig},
		{"duplicate member", detector.DefaultConfig(), []transport.NodeID{"n1", "n2", "n2"}, detector.ErrDuplicateMember},
		{"empty member", detector.DefaultConfig(), []transport.NodeID{"n1", ""}, detector.ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := sim.New(sim.Config{Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			n := detectorsim.New(tt.cfg, tt.members)
			if err := s.AddNode("n1", func() sim.Node { return n }); err != nil {
				t.Fatal(err)
			}
			s.Run(3 * time.Second)
			if got := n.Err(); !errors.Is(got, tt.wantErr) || (got == nil) != (tt.wantErr == nil) {
				t.Errorf("Err() = %v; want %v", got, tt.wantErr)
			}
			if got := n.Core() != nil; got != (tt.wantErr == nil) {
				t.Errorf("Core() != nil is %v; want %v", got, tt.wantErr == nil)
			}
		})
	}
}

// Three nodes; one crashes and the other two declare it failed.
func ExampleNode() {
	ids := []transport.NodeID{"n1", "n2", "n3"}
	s, err := sim.New(sim.Config{Seed: 1, Faults: sim.Faults{Drop: 0.01, MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond}})
	if err != nil {
		panic(err)
	}
	for _, id := range ids {
		err := s.AddNode(id, func() sim.Node {
			n := detectorsim.New(detector.DefaultConfig(), ids)
			n.OnEvent = func(by transport.NodeID, e detector.Event) {
				if e.Kind == detector.EventFailed {
					fmt.Printf("%s: %s %s\n", by, e.Member, e.Kind)
				}
			}
			return n
		})
		if err != nil {
			panic(err)
		}
	}
	s.Run(30 * time.Second) // the detectors learn the heartbeat rhythm
	s.Crash("n3")
	s.Run(10 * time.Second)
	st, _ := s.Node("n1").(*detectorsim.Node).Core().Member("n3", s.Now())
	fmt.Println("n1 sees n3:", st.Status)
	// Output:
	// n1: n3 failed
	// n2: n3 failed
	// n1 sees n3: failed
}
