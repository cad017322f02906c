package hashring

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
)

func TestRendezvousBadInput(t *testing.T) {
	r, err := NewRendezvous(Node{Name: "a", Weight: 1})
	if err != nil {
		t.Fatal(err)
	}
	empty, _ := NewRendezvous()
	_, newErr := NewRendezvous(Node{Name: "a", Weight: -1}) // 0 means 1; negative is refused
	_, locEmpty := empty.Locate("k")
	_, locBytesEmpty := empty.LocateBytes([]byte("k"))
	_, locNEmpty := empty.LocateN(nil, "k", 1)
	_, negN := r.LocateN(nil, "k", -1)
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"New bad weight", newErr, ErrInvalidWeight},
		{"Add empty name", r.Add("", 1), ErrInvalidNode},
		{"Add NaN", r.Add("b", math.NaN()), ErrInvalidWeight},
		{"Add duplicate", r.Add("a", 2), ErrNodeExists},
		{"Remove missing", r.Remove("zz"), ErrNodeNotFound},
		{"SetWeight missing", r.SetWeight("zz", 1), ErrNodeNotFound},
		{"SetWeight bad", r.SetWeight("a", -1), ErrInvalidWeight},
		{"Locate empty", locEmpty, ErrEmpty},
		{"LocateBytes empty", locBytesEmpty, ErrEmpty},
		{"LocateN empty", locNEmpty, ErrEmpty},
		{"LocateN negative", negN, ErrInvalidCount},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, tt.want) {
				t.Fatalf("got error %v; want %v", tt.err, tt.want)
			}
		})
	}
}

// TestRendezvousMatchesReference compares LocateN with sorting every node by
// score, for equal and unequal weights and for n above the small-array size.
func TestRendezvousMatchesReference(t *testing.T) {
	for _, weighted := range []bool{false, true} {
		var nodes []Node
		for i := range 20 {
			w := 1.0
			if weighted {
				w = float64(1 + i%4)
			}
			nodes = append(nodes, Node{Name: fmt.Sprintf("n%d", i), Weight: w})
		}
		r, err := NewRendezvous(nodes...)
		if err != nil {
			t.Fatal(err)
		}
		s := r.snap.Load()
		for k := range 200 {
			key := fmt.Sprintf("k%d", k)
			h := hashKey(key)
			idx := make([]int, len(s.nodes))
			for i := range idx {
				idx[i] = i
			}
			slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(s.score(b, h), s.score(a, h)) })
			for _, n := range []int{1, 3, 12, 25} {
				var want []string
				for _, i := range idx[:min(n, len(idx))] {
					want = append(want, s.nodes[i].name)
				}
				got, err := r.LocateN(nil, key, n)
				if err != nil || !slices.Equal(got, want) {
					t.Fatalf("weighted=%v LocateN(%q, %d) = %v, %v; want %v", weighted, key, n, got, err, want)
				}
			}
			one, _ := r.Locate(key)
			oneB, _ := r.LocateBytes([]byte(key))
			if one != s.nodes[idx[0]].name || oneB != one {
				t.Fatalf("Locate(%q) = %q, LocateBytes = %q; want %q", key, one, oneB, s.nodes[idx[0]].name)
			}
		}
	}
}

// TestRendezvousWeightsAndMovement checks that a weight-3 node gets about
// three times the keys and that removing a node moves only its keys.
func TestRendezvousWeightsAndMovement(t *testing.T) {
	nodes := equalNodes("node-", 8)
	r, err := NewRendezvous(nodes...)
	if err != nil {
		t.Fatal(err)
	}
	keys := SequentialKeys(100_000)
	if err := r.SetWeight("node-0", 3); err != nil {
		t.Fatal(err)
	}
	d, err := MeasureDistribution(r, names(nodes), keys)
	if err != nil {
		t.Fatal(err)
	}
	ratio := float64(d.Loads["node-0"]) / (float64(d.Keys-d.Loads["node-0"]) / 7)
	if ratio < 2.7 || ratio > 3.3 {
		t.Errorf("weight-3 node holds %.2f× an average node; want about 3", ratio)
	}
	after, _ := NewRendezvous(r.Nodes()...)
	if err := after.Remove("node-5"); err != nil {
		t.Fatal(err)
	}
	m, err := MeasureMovement(r, after, keys)
	if err != nil {
		t.Fatal(err)
	}
	if m.From["node-5"] != m.Moved || m.Moved != d.Loads["node-5"] {
		t.Errorf("removing node-5 moved %v; want exactly its %d keys", m.From, d.Loads["node-5"])
	}
	if got := after.Len(); got != 7 {
		t.Errorf("Len() = %d; want 7", got)
	}
}
