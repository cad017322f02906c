package clock

import (
	"errors"
	"testing"
	"time"
)

func TestPrunePolicyValidate(t *testing.T) {
	tests := []struct {
		name string
		p    PrunePolicy
		want error
	}{
		{"default", DefaultPrunePolicy(), nil},
		{"zero", PrunePolicy{}, nil},
		{"negative small", PrunePolicy{SmallSize: -1}, ErrInvalidConfig},
		{"big below small", PrunePolicy{SmallSize: 5, BigSize: 4}, ErrInvalidConfig},
		{"negative young", PrunePolicy{YoungAge: -time.Second}, ErrInvalidConfig},
		{"old below young", PrunePolicy{YoungAge: time.Hour, OldAge: time.Minute}, ErrInvalidConfig},
	}
	for _, tt := range tests {
		if err := tt.p.Validate(); !errors.Is(err, tt.want) {
			t.Errorf("%s: Validate() = %v; want %v", tt.name, err, tt.want)
		}
	}
}

// TestVectorPrune follows Riak's vclock pruning rules. Entry ages are in
// minutes before now; -1 means the entry was never ticked with TickAt.
func TestVectorPrune(t *testing.T) {
	policy := PrunePolicy{SmallSize: 2, BigSize: 4, YoungAge: 10 * time.Minute, OldAge: 60 * time.Minute}
	tests := []struct {
		name string
		ages []int // one entry per age, nodes "a", "b", … in order
		want string
	}{
		{"at most small: untouched", []int{500, 500}, "{a:1 b:1}"},
		{"old entries pruned down to small", []int{500, 400, 5, 6}, "{c:1 d:1}"},
		{"old but within big: only the old ones go", []int{100, 30, 20, 5}, "{b:1 c:1 d:1}"},
		{"over big: prune oldest until big", []int{50, 40, 30, 20, 15, 12}, "{c:1 d:1 e:1 f:1}"},
		{"over big but young: keep", []int{9, 8, 7, 6, 5, 4}, "{a:1 b:1 c:1 d:1 e:1 f:1}"},
		{"over big: interleaved ages", []int{50, 9, 40, 30, 20, 8}, "{b:1 d:1 e:1 f:1}"},
		{"over big: stop at first young", []int{50, 9, 8, 7, 6, 5}, "{b:1 c:1 d:1 e:1 f:1}"},
		{"unknown age counts as oldest", []int{-1, 5, 6, 7, -1}, "{b:1 c:1 d:1}"},
		{"old entries: never below small", []int{500, 400, 300}, "{b:1 c:1}"},
		{"over big: exactly YoungAge old may go", []int{10, 10, 9, 8, 7, 6}, "{c:1 d:1 e:1 f:1}"},
		{"within big: exactly OldAge old stays", []int{60, 60, 5}, "{a:1 b:1 c:1}"},
	}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := NewVector()
			for i, age := range tt.ages {
				node := NodeID(rune('a' + i))
				if age < 0 {
					v.Tick(node)
				} else {
					v.TickAt(node, now.Add(-time.Duration(age)*time.Minute))
				}
			}
			before := v.Len()
			n, err := v.Prune(policy, now)
			if err != nil {
				t.Fatalf("Prune: %v", err)
			}
			if got := v.String(); got != tt.want || n != before-v.Len() {
				t.Errorf("Prune(ages %v) = %s, removed %d; want %s, removed %d", tt.ages, got, n, tt.want, before-v.Len())
			}
		})
	}
}

func TestVectorPruneRejectsBadPolicy(t *testing.T) {
	v := vec(t, "a", 1, "b", 1)
	if _, err := v.Prune(PrunePolicy{SmallSize: -1}, time.Now()); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Prune with invalid policy: error %v; want ErrInvalidConfig", err)
	}
	if v.Len() != 2 {
		t.Errorf("Prune with invalid policy changed the clock to %v", v)
	}
}

// TestVectorPruneCanHideConcurrency demonstrates the documented hazard:
// after pruning, two concurrent clocks compare as ordered.
func TestVectorPruneCanHideConcurrency(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	v := NewVector()
	v.TickAt("a", now.Add(-time.Hour))
	v.TickAt("b", now.Add(-48*time.Hour))
	v.TickAt("b", now.Add(-48*time.Hour))
	w := vec(t, "a", 2, "b", 1)
	if got := v.Compare(w); got != Concurrent {
		t.Fatalf("before pruning %v.Compare(%v) = %v; want concurrent", v, w, got)
	}
	if _, err := v.Prune(PrunePolicy{SmallSize: 1, BigSize: 1, OldAge: 24 * time.Hour}, now); err != nil {
		t.Fatal(err)
	}
	if got := v.Compare(w); got != Before {
		t.Errorf("after pruning %v.Compare(%v) = %v; want before (the hazard)", v, w, got)
	}
}

func TestAgeAtSaturates(t *testing.T) {
	tests := []struct {
		now, updated int64
		want         time.Duration
	}{
		{10, 3, 7},
		{1 << 62, -(1 << 62) - 5, 1<<63 - 1},
		{-(1 << 62), 1<<62 + 5, -1 << 63},
	}
	for _, tt := range tests {
		if got := ageAt(tt.now, tt.updated); got != tt.want {
			t.Errorf("ageAt(%d, %d) = %d; want %d", tt.now, tt.updated, got, tt.want)
		}
	}
}
