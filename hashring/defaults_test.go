package hashring_test

import (
	"errors"
	"testing"

	"github.com/distkit/distkit/hashring"
)

// TestZeroWeightMeansOne: Node{Name: "a"} is a node of weight 1 for every
// constructor that takes Nodes, and NodesOf builds the same list.
func TestZeroWeightMeansOne(t *testing.T) {
	implicit := []hashring.Node{{Name: "a"}, {Name: "b"}, {Name: "c"}}
	explicit := hashring.NodesOf("a", "b", "c")
	r1, err := hashring.NewRing(hashring.DefaultConfig(), implicit...)
	if err != nil {
		t.Fatalf("NewRing(Node{Name}...) = %v; want weight 1", err)
	}
	r2, err := hashring.NewRing(hashring.DefaultConfig(), explicit...)
	if err != nil {
		t.Fatalf("NewRing(NodesOf(...)...) = %v", err)
	}
	if r1.Points() != r2.Points() || r1.Points() != 3*hashring.DefaultVirtualNodes {
		t.Errorf("Points() = %d and %d; want %d each", r1.Points(), r2.Points(), 3*hashring.DefaultVirtualNodes)
	}
	for _, n := range r1.Nodes() {
		if n.Weight != 1 {
			t.Errorf("node %q has weight %v; want 1", n.Name, n.Weight)
		}
	}
	for _, key := range []string{"x", "user:42", "", "a"} {
		o1, _ := r1.Locate(key)
		o2, _ := r2.Locate(key)
		if o1 != o2 {
			t.Errorf("Locate(%q) = %q with implicit weights, %q with NodesOf", key, o1, o2)
		}
	}
	if _, err := hashring.NewRendezvous(implicit...); err != nil {
		t.Errorf("NewRendezvous(Node{Name}...) = %v; want weight 1", err)
	}
	b, err := hashring.NewBounded(hashring.DefaultBoundedConfig(), implicit...)
	if err != nil {
		t.Fatalf("NewBounded(Node{Name}...) = %v; want weight 1", err)
	}
	if _, err := b.Assign("k"); err != nil {
		t.Errorf("Bounded.Assign = %v", err)
	}
}

// TestExplicitZeroWeightRefused: Add and SetWeight take the weight as an
// argument; 0 there is a mistake (remove the node instead), and negative
// weights in a Node are refused as before.
func TestExplicitZeroWeightRefused(t *testing.T) {
	r, err := hashring.NewRing(hashring.DefaultConfig(), hashring.NodesOf("a")...)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		err  error
	}{
		{"Add(b, 0)", r.Add("b", 0)},
		{"SetWeight(a, 0)", r.SetWeight("a", 0)},
		{"AddNodes(Node{c, -1})", r.AddNodes(hashring.Node{Name: "c", Weight: -1})},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, hashring.ErrInvalidWeight) {
			t.Errorf("%s = %v; want ErrInvalidWeight", tt.name, tt.err)
		}
	}
}

// TestNilRing: a nil *Ring reads as empty and refuses changes.
func TestNilRing(t *testing.T) {
	var r *hashring.Ring
	if _, err := r.Locate("k"); !errors.Is(err, hashring.ErrEmpty) {
		t.Errorf("nil Ring Locate = %v; want ErrEmpty", err)
	}
	if err := r.Add("a", 1); !errors.Is(err, hashring.ErrInvalidConfig) {
		t.Errorf("nil Ring Add = %v; want ErrInvalidConfig", err)
	}
	var b *hashring.Bounded
	if _, err := b.Assign("k"); !errors.Is(err, hashring.ErrInvalidConfig) {
		t.Errorf("nil Bounded Assign = %v; want ErrInvalidConfig", err)
	}
}
