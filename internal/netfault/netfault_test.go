package netfault

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/distkit/distkit/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		f    Faults
		ok   bool
	}{
		{"zero", Faults{}, true},
		{"all on", Faults{Drop: 1, Duplicate: 1, Reorder: 1, MinDelay: 1, MaxDelay: 2, ReorderDelay: 3}, true},
		{"drop > 1", Faults{Drop: 1.01}, false},
		{"drop < 0", Faults{Drop: -0.01}, false},
		{"duplicate NaN", Faults{Duplicate: math.NaN()}, false},
		{"reorder +Inf", Faults{Reorder: math.Inf(1)}, false},
		{"negative min", Faults{MinDelay: -1, MaxDelay: 1}, false},
		{"negative reorder delay", Faults{ReorderDelay: -1}, false},
		{"min > max", Faults{MinDelay: 2, MaxDelay: 1}, false},
	}
	for _, tt := range tests {
		if err := tt.f.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v; want ok=%v", tt.name, err, tt.ok)
		}
	}
}

// TestDecideDistribution checks Decide against the probabilities and bounds
// it promises, over many draws.
func TestDecideDistribution(t *testing.T) {
	const n = 20000
	tests := []struct {
		name                 string
		f                    Faults
		wantDrop, wantDup    float64 // expected fractions
		minDelay, maxDelay   time.Duration
		wantSomeExtraOverMax bool
	}{
		{"perfect", Faults{}, 0, 0, 0, 0, false},
		{"drop", Faults{Drop: 0.25}, 0.25, 0, 0, 0, false},
		{"duplicate", Faults{Duplicate: 0.4}, 0, 0.4, 0, 0, false},
		{"delay", Faults{MinDelay: 3, MaxDelay: 9}, 0, 0, 3, 9, false},
		{"reorder", Faults{MinDelay: 3, MaxDelay: 9, Reorder: 0.5, ReorderDelay: 100}, 0, 0, 3, 109, true},
		{"reorder default bound", Faults{Reorder: 1}, 0, 0, 1, DefaultReorderDelay, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			drops, dups, overMax := 0, 0, 0
			for range n {
				fate := Decide(tt.f, rng)
				switch fate.Copies {
				case 0:
					drops++
				case 2:
					dups++
				}
				for i := range fate.Copies {
					d := fate.Delays[i]
					if d < tt.minDelay || d > tt.maxDelay {
						t.Fatalf("delay %v outside [%v, %v]", d, tt.minDelay, tt.maxDelay)
					}
					if d > tt.f.MaxDelay {
						overMax++
					}
				}
			}
			if got := float64(drops) / n; math.Abs(got-tt.wantDrop) > 0.02 {
				t.Errorf("dropped %.3f; want %.3f ± 0.02", got, tt.wantDrop)
			}
			if got := float64(dups) / n; math.Abs(got-tt.wantDup) > 0.02 {
				t.Errorf("duplicated %.3f; want %.3f ± 0.02", got, tt.wantDup)
			}
			if (overMax > 0) != tt.wantSomeExtraOverMax {
				t.Errorf("%d delays beyond MaxDelay; want some: %v", overMax, tt.wantSomeExtraOverMax)
			}
		})
	}
}

// TestPerfectDrawsNothing checks that a perfect link consumes no randomness,
// so switching faults on for one link leaves other streams alone.
func TestPerfectDrawsNothing(t *testing.T) {
	a, b := rand.New(rand.NewPCG(5, 5)), rand.New(rand.NewPCG(5, 5))
	for range 100 {
		Decide(Faults{}, a)
	}
	if x, y := a.Uint64(), b.Uint64(); x != y {
		t.Fatalf("Decide on a perfect link consumed randomness")
	}
}

func TestBlocked(t *testing.T) {
	type id = transport.NodeID
	tests := []struct {
		name  string
		setup func(r *Rules)
		from  id
		to    id
		want  bool
	}{
		{"nothing", func(*Rules) {}, "a", "b", false},
		{"self always", func(r *Rules) { r.Isolate("a") }, "a", "a", false},
		{"across groups", func(r *Rules) { r.Partition([][]id{{"a"}, {"b"}}) }, "a", "b", true},
		{"same group", func(r *Rules) { r.Partition([][]id{{"a", "b"}, {"c"}}) }, "a", "b", false},
		{"unnamed together", func(r *Rules) { r.Partition([][]id{{"a"}}) }, "b", "c", false},
		{"named vs unnamed", func(r *Rules) { r.Partition([][]id{{"a"}}) }, "c", "a", true},
		{"cut forward", func(r *Rules) { r.Cut(Link{"a", "b"}) }, "a", "b", true},
		{"cut is one way", func(r *Rules) { r.Cut(Link{"a", "b"}) }, "b", "a", false},
		{"isolated sender", func(r *Rules) { r.Isolate("a") }, "a", "b", true},
		{"isolated receiver", func(r *Rules) { r.Isolate("b") }, "a", "b", true},
		{"later partition replaces", func(r *Rules) { r.Partition([][]id{{"a"}}); r.Partition([][]id{{"a", "b"}}) }, "a", "b", false},
		{"heal", func(r *Rules) { r.Partition([][]id{{"a"}}); r.Cut(Link{"a", "b"}); r.Isolate("a"); r.Heal() }, "a", "b", false},
	}
	for _, tt := range tests {
		var r Rules
		tt.setup(&r)
		if got := r.Blocked(tt.from, tt.to); got != tt.want {
			t.Errorf("%s: Blocked(%s, %s) = %v; want %v", tt.name, tt.from, tt.to, got, tt.want)
		}
	}
}

func TestFaultsForAndQuiet(t *testing.T) {
	var r Rules
	if !r.Quiet() {
		t.Fatalf("zero Rules not Quiet")
	}
	r.Default = Faults{Drop: 0.1}
	r.SetLinkFaults(Link{"a", "b"}, Faults{Duplicate: 1})
	tests := []struct {
		from, to transport.NodeID
		want     Faults
	}{
		{"a", "b", Faults{Duplicate: 1}},
		{"b", "a", Faults{Drop: 0.1}},
	}
	for _, tt := range tests {
		if got := r.FaultsFor(tt.from, tt.to); got != tt.want {
			t.Errorf("FaultsFor(%s, %s) = %+v; want %+v", tt.from, tt.to, got, tt.want)
		}
	}
	r.ResetLinkFaults(Link{"a", "b"})
	r.Default = Faults{}
	if !r.Quiet() || r.HasLinkFaults() {
		t.Fatalf("Rules not Quiet after resetting every fault")
	}
	r.Cut(Link{"a", "b"})
	if r.Quiet() {
		t.Fatalf("Rules Quiet with a cut")
	}
}

func TestSeedsDiffer(t *testing.T) {
	a1, a2 := LinkSeed(1, "a", "b")
	b1, b2 := LinkSeed(1, "b", "a")
	if a1 == b1 && a2 == b2 {
		t.Fatalf("LinkSeed(a->b) == LinkSeed(b->a); want distinct streams per direction")
	}
	n1, n2 := NodeSeed(1, "a", 1)
	m1, m2 := NodeSeed(1, "a", 2)
	if n1 == m1 && n2 == m2 {
		t.Fatalf("NodeSeed ignores the incarnation")
	}
}
