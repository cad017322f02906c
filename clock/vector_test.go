package clock

import (
	"errors"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// vec builds a vector from alternating node, counter pairs.
func vec(t testing.TB, pairs ...any) *Vector {
	t.Helper()
	m := map[NodeID]uint64{}
	for i := 0; i < len(pairs); i += 2 {
		m[NodeID(pairs[i].(string))] = uint64(pairs[i+1].(int))
	}
	v, err := VectorOf(m)
	if err != nil {
		t.Fatalf("VectorOf(%v): %v", m, err)
	}
	return v
}

func TestVectorCompare(t *testing.T) {
	tests := []struct {
		name string
		a, b *Vector
		want Ordering
	}{
		{"both empty", vec(t), vec(t), Equal},
		{"nil and empty", nil, vec(t), Equal},
		{"same", vec(t, "a", 1, "b", 2), vec(t, "a", 1, "b", 2), Equal},
		{"empty before any", vec(t), vec(t, "a", 1), Before},
		{"any after empty", vec(t, "a", 1), vec(t), After},
		{"one counter smaller", vec(t, "a", 1, "b", 2), vec(t, "a", 2, "b", 2), Before},
		{"one counter larger", vec(t, "a", 3, "b", 2), vec(t, "a", 2, "b", 2), After},
		{"missing node counts as zero", vec(t, "a", 1), vec(t, "a", 1, "b", 1), Before},
		{"extra node", vec(t, "a", 1, "c", 1), vec(t, "a", 1), After},
		{"crossed counters", vec(t, "a", 2, "b", 1), vec(t, "a", 1, "b", 2), Concurrent},
		{"disjoint nodes", vec(t, "a", 1), vec(t, "b", 1), Concurrent},
		{"larger but missing node", vec(t, "a", 5), vec(t, "a", 1, "b", 1), Concurrent},
		{"interleaved nodes", vec(t, "a", 1, "c", 1, "e", 1), vec(t, "b", 1, "c", 1, "d", 1), Concurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Compare(tt.b); got != tt.want {
				t.Errorf("%v.Compare(%v) = %v; want %v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

func TestVectorOrderingString(t *testing.T) {
	tests := []struct {
		o    Ordering
		want string
	}{
		{Equal, "equal"}, {Before, "before"}, {After, "after"}, {Concurrent, "concurrent"}, {Ordering(9), "Ordering(9)"},
	}
	for _, tt := range tests {
		if got := tt.o.String(); got != tt.want {
			t.Errorf("Ordering(%d).String() = %q; want %q", int8(tt.o), got, tt.want)
		}
	}
}

func TestVectorTickMergeReceive(t *testing.T) {
	v := NewVector()
	if got := v.Tick("b"); got != 1 {
		t.Errorf("Tick(b) = %d; want 1", got)
	}
	v.Tick("b")
	v.Tick("a")
	if got, want := v.String(), "{a:1 b:2}"; got != want {
		t.Errorf("String() = %q; want %q", got, want)
	}
	w := vec(t, "a", 3, "c", 1)
	if got := v.Receive("b", w); got != 3 {
		t.Errorf("Receive(b, %v) = %d; want 3", w, got)
	}
	if got, want := v.String(), "{a:3 b:3 c:1}"; got != want {
		t.Errorf("after Receive String() = %q; want %q", got, want)
	}
	if got := w.String(); got != "{a:3 c:1}" {
		t.Errorf("Receive modified its argument: %q", got)
	}
	v.Merge(nil)
	v.Merge(v)
	if got, want := v.String(), "{a:3 b:3 c:1}"; got != want {
		t.Errorf("after Merge(nil), Merge(self) String() = %q; want %q", got, want)
	}
}

func TestVectorCopyIsIndependent(t *testing.T) {
	v := vec(t, "a", 1)
	c := v.Copy()
	c.Tick("a")
	c.Tick("b")
	if got := v.String(); got != "{a:1}" {
		t.Errorf("original after ticking copy = %q; want {a:1}", got)
	}
	if got := (*Vector)(nil).Copy().Len(); got != 0 {
		t.Errorf("nil.Copy().Len() = %d; want 0", got)
	}
}

func TestVectorOfRejectsHugeCounter(t *testing.T) {
	_, err := VectorOf(map[NodeID]uint64{"a": MaxCounter + 1})
	if !errors.Is(err, ErrTimestampTooLarge) {
		t.Errorf("VectorOf with counter MaxCounter+1: error %v; want ErrTimestampTooLarge", err)
	}
}

// TestVectorOfDropsZeroCounters: a zero counter reads like a missing node,
// so VectorOf leaves it out and the clock equals one built without it.
func TestVectorOfDropsZeroCounters(t *testing.T) {
	v, err := VectorOf(map[NodeID]uint64{"a": 0, "b": 1, "c": 0})
	if err != nil {
		t.Fatalf("VectorOf: %v", err)
	}
	want := vec(t, "b", 1)
	if got := v.Len(); got != 1 {
		t.Errorf("VectorOf({a:0 b:1 c:0}).Len() = %d; want 1", got)
	}
	if got := v.Compare(want); got != Equal {
		t.Errorf("VectorOf({a:0 b:1 c:0}).Compare(%v) = %v; want equal", want, got)
	}
	// The decoder refuses zero counters: an encoding that kept them does
	// not decode.
	data, err := v.MarshalBinary()
	if err != nil {
		t.Fatalf("MarshalBinary: %v", err)
	}
	var back Vector
	if err := back.UnmarshalBinary(data); err != nil {
		t.Errorf("UnmarshalBinary(MarshalBinary(VectorOf({a:0 b:1 c:0}))): %v; want an encoding without zero counters", err)
	}
}

// TestVectorMergeKeepsLatestUpdateTime: Merge keeps, with the larger
// counter, the update time that goes with it, and the later time on a tie,
// so pruning judges an entry by its latest tick (as Riak's vclock merge).
func TestVectorMergeKeepsLatestUpdateTime(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	old, recent := now.Add(-2*time.Hour), now.Add(-time.Minute)
	clockOf := func(times ...time.Time) *Vector {
		v := NewVector()
		for _, at := range times {
			v.TickAt("a", at)
		}
		return v
	}
	tests := []struct {
		name     string
		dst, src []time.Time // TickAt times of node a in each clock
		want     time.Time
	}{
		{"larger counter brings its time", []time.Time{old}, []time.Time{old, recent}, recent},
		{"larger counter keeps its time", []time.Time{old, recent}, []time.Time{old}, recent},
		{"tie: later time of src", []time.Time{old}, []time.Time{recent}, recent},
		{"tie: later time of dst", []time.Time{recent}, []time.Time{old}, recent},
	}
	for _, tt := range tests {
		v, o := clockOf(tt.dst...), clockOf(tt.src...)
		v.Merge(o)
		if got := time.Unix(0, v.entries[0].updated); !got.Equal(tt.want) {
			t.Errorf("%s: merged update time of a = %v; want %v", tt.name, got.UTC(), tt.want)
		}
	}
}

// refVector is the dumb reference: a map with missing keys reading zero.
type refVector map[NodeID]uint64

func (r refVector) compare(o refVector) Ordering {
	less, greater := false, false
	for n, c := range r {
		less = less || c < o[n]
		greater = greater || c > o[n]
	}
	for n, c := range o {
		less = less || r[n] < c
		greater = greater || r[n] > c
	}
	switch {
	case less && greater:
		return Concurrent
	case less:
		return Before
	case greater:
		return After
	}
	return Equal
}

func checkAgainstRef(t *rapid.T, v *Vector, r refVector) {
	nonzero := 0
	for n, c := range r {
		if got := v.Get(n); got != c {
			t.Fatalf("Get(%q) = %d; want %d (vector %v)", n, got, c, v)
		}
		if c > 0 {
			nonzero++
		}
	}
	if v.Len() != nonzero {
		t.Fatalf("Len() = %d; want %d (vector %v)", v.Len(), nonzero, v)
	}
	var prev NodeID
	for i, e := range v.entries {
		if i > 0 && e.node <= prev {
			t.Fatalf("entries not strictly sorted: %v", v)
		}
		prev = e.node
	}
}

// TestVectorAgainstReference checks Tick, Merge, Receive, Compare and Copy
// against a map-based reference over random operation sequences.
func TestVectorAgainstReference(t *testing.T) {
	nodes := rapid.SampledFrom([]NodeID{"", "a", "b", "c", "d", "e", "node-10", "node-2"})
	rapid.Check(t, func(t *rapid.T) {
		const k = 3
		vs := make([]*Vector, k)
		refs := make([]refVector, k)
		for i := range vs {
			vs[i], refs[i] = NewVector(), refVector{}
		}
		which := rapid.IntRange(0, k-1)
		t.Repeat(map[string]func(*rapid.T){
			"tick": func(t *rapid.T) {
				i, n := which.Draw(t, "i"), nodes.Draw(t, "node")
				refs[i][n]++
				if got := vs[i].Tick(n); got != refs[i][n] {
					t.Fatalf("Tick(%q) = %d; want %d", n, got, refs[i][n])
				}
			},
			"merge": func(t *rapid.T) {
				i, j := which.Draw(t, "i"), which.Draw(t, "j")
				for n, c := range refs[j] {
					refs[i][n] = max(refs[i][n], c)
				}
				vs[i].Merge(vs[j])
			},
			"receive": func(t *rapid.T) {
				i, j, n := which.Draw(t, "i"), which.Draw(t, "j"), nodes.Draw(t, "node")
				for m, c := range refs[j] {
					refs[i][m] = max(refs[i][m], c)
				}
				refs[i][n]++
				if got := vs[i].Receive(n, vs[j]); got != refs[i][n] {
					t.Fatalf("Receive(%q) = %d; want %d", n, got, refs[i][n])
				}
			},
			"copy": func(t *rapid.T) {
				i, j := which.Draw(t, "i"), which.Draw(t, "j")
				vs[i] = vs[j].Copy()
				r := refVector{}
				for n, c := range refs[j] {
					r[n] = c
				}
				refs[i] = r
			},
			"": func(t *rapid.T) {
				for i := range vs {
					checkAgainstRef(t, vs[i], refs[i])
					for j := range vs {
						if got, want := vs[i].Compare(vs[j]), refs[i].compare(refs[j]); got != want {
							t.Fatalf("%v.Compare(%v) = %v; want %v", vs[i], vs[j], got, want)
						}
					}
				}
			},
		})
	})
}
