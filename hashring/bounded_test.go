package hashring

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime/metrics"
	"testing"
	"time"
)

func TestBoundedConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		cfg    BoundedConfig
		wantOK bool
	}{
		{"default", DefaultBoundedConfig(), true},
		{"tight", BoundedConfig{Ring: DefaultConfig(), Balance: 1.01}, true},
		{"one", BoundedConfig{Ring: DefaultConfig(), Balance: 1}, false},
		{"below one", BoundedConfig{Ring: DefaultConfig(), Balance: 0.5}, false},
		{"NaN", BoundedConfig{Ring: DefaultConfig(), Balance: math.NaN()}, false},
		{"Inf", BoundedConfig{Ring: DefaultConfig(), Balance: math.Inf(1)}, false},
		{"bad ring", BoundedConfig{Balance: 1.25}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if got := err == nil; got != tt.wantOK || (err != nil && !errors.Is(err, ErrInvalidConfig)) {
				t.Fatalf("Validate(%+v) = %v; want ok=%v or ErrInvalidConfig", tt.cfg, err, tt.wantOK)
			}
		})
	}
}

func TestBoundedBadInput(t *testing.T) {
	b, err := NewBounded(DefaultBoundedConfig(), Node{Name: "a", Weight: 1})
	if err != nil {
		t.Fatal(err)
	}
	empty, err := NewBounded(DefaultBoundedConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Assign("k"); err != nil {
		t.Fatal(err)
	}
	_, newErr := NewBounded(BoundedConfig{Ring: DefaultConfig(), Balance: 1})
	_, newNodeErr := NewBounded(DefaultBoundedConfig(), Node{Name: "", Weight: 1})
	_, assignEmpty := empty.Assign("k")
	_, locateEmpty := empty.Locate("k")
	_, releaseUnknown := b.Release("nope")
	_, addDup := b.Add("a", 1)
	_, addBad := b.Add("b", math.NaN())
	_, removeMissing := b.Remove("zz")
	_, removeLast := noPanic(func() ([]Move, error) { return b.Remove("a") })
	_, weightMissing := b.SetWeight("zz", 1)
	_, weightBad := b.SetWeight("a", -2)
	_, capMissing := b.Capacity("zz")
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"NewBounded bad balance", newErr, ErrInvalidConfig},
		{"NewBounded bad node", newNodeErr, ErrInvalidNode},
		{"Assign on empty", assignEmpty, ErrEmpty},
		{"Locate on empty", locateEmpty, ErrEmpty},
		{"Release unknown", releaseUnknown, ErrNotAssigned},
		{"Add duplicate", addDup, ErrNodeExists},
		{"Add bad weight", addBad, ErrInvalidWeight},
		{"Remove missing", removeMissing, ErrNodeNotFound},
		{"Remove last with keys", removeLast, ErrEmpty},
		{"SetWeight missing", weightMissing, ErrNodeNotFound},
		{"SetWeight bad", weightBad, ErrInvalidWeight},
		{"Capacity missing", capMissing, ErrNodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, tt.want) {
				t.Fatalf("got error %v; want %v", tt.err, tt.want)
			}
		})
	}
	if got := b.Stats(); got.Keys != 1 || got.Nodes != 1 {
		t.Fatalf("Stats() = %+v after failed calls; want 1 key on 1 node", got)
	}
}

// boundedModel mirrors a Bounded from the moves it reports.
type boundedModel struct {
	owner map[string]string
}

func (m *boundedModel) apply(t *testing.T, moves []Move) {
	t.Helper()
	for _, mv := range moves {
		if m.owner[mv.Key] != mv.From {
			t.Fatalf("move %+v: model has %q on %q", mv, mv.Key, m.owner[mv.Key])
		}
		if mv.To == mv.From {
			t.Fatalf("move %+v goes nowhere", mv)
		}
		m.owner[mv.Key] = mv.To
	}
}

// checkBound verifies the invariant of Bounded: every load ≤ ⌈c·m·w/W⌉,
// loads add up to m, and the reported moves kept the model in sync.
func checkBound(t *testing.T, b *Bounded, model *boundedModel, weights map[string]float64, c float64) {
	t.Helper()
	loads := b.Loads()
	m, total := 0, 0.0
	for _, w := range weights {
		total += w
	}
	for node, l := range loads {
		m += l
		bound := int(math.Ceil(c*float64(len(model.owner))*weights[node]/total - 1e-9))
		if l > bound {
			t.Fatalf("node %q holds %d keys; bound ⌈%v·%d·%v/%v⌉ = %d", node, l, c, len(model.owner), weights[node], total, bound)
		}
	}
	if m != len(model.owner) {
		t.Fatalf("loads add up to %d; want %d assigned keys", m, len(model.owner))
	}
	for key, node := range model.owner {
		if got, _ := b.Locate(key); got != node {
			t.Fatalf("Locate(%q) = %q; moves reported say %q", key, got, node)
		}
	}
}

// Limits of one guarded operation. Real operations take microseconds and
// allocate kilobytes; these only stop a runaway.
const (
	guardHeapGrowth = 512 << 20       // bytes of live heap an operation may add
	guardWallClock  = 2 * time.Minute // a hang guard, not a timing assertion
)

// guard runs fn, one operation of a churn run, on its own goroutine and
// returns its results. If the live heap grows by more than guardHeapGrowth
// meanwhile (a broken placement rule once made rebalance move a key back
// onto the node it left, forever, appending a Move each time: 24 GB), or fn
// has not returned after guardWallClock, the test fails naming the seed and
// step, and the binary stops: the runaway goroutine cannot be stopped
// otherwise.
func guard[T any](t *testing.T, seed, step int, fn func() (T, error)) (T, error) {
	t.Helper()
	var (
		res  T
		err  error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		res, err = fn()
	}()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	heap := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	base := heap()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(guardWallClock)
	for {
		select {
		case <-done:
			return res, err
		case <-tick.C:
			if grown := heap() - min(base, heap()); grown > guardHeapGrowth {
				stopRunaway(t, fmt.Sprintf("seed %d, step %d: the operation grew the heap by %d MB without returning (an endless rebalance?)", seed, step, grown>>20))
			}
		case <-deadline:
			stopRunaway(t, fmt.Sprintf("seed %d, step %d: the operation did not return within %v", seed, step, guardWallClock))
		}
	}
}

// stopRunaway fails the test and ends the test binary, which is the only
// way to stop a goroutine stuck in an endless loop.
func stopRunaway(t *testing.T, msg string) {
	t.Helper()
	t.Error(msg)
	panic("hashring: " + msg)
}

// TestBoundedChurn applies random assigns, releases, node additions,
// removals and reweights, and checks after every step that no node exceeds
// its bound and that the reported moves account for every reassignment.
// DISTKIT_SOAK=1 runs more seeds. Every operation runs under guard, so a
// broken placement rule fails with the seed and step instead of looping
// until the machine runs out of memory.
func TestBoundedChurn(t *testing.T) {
	seeds := 6
	if os.Getenv("DISTKIT_SOAK") == "1" {
		seeds = 200
	}
	for seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(seed), 99))
			c := []float64{1.05, 1.25, 2}[seed%3]
			weighted := seed%2 == 1
			cfg := BoundedConfig{Ring: Config{VirtualNodes: 40}, Balance: c}
			b, err := NewBounded(cfg, Node{Name: "n0", Weight: 1})
			if err != nil {
				t.Fatal(err)
			}
			weights := map[string]float64{"n0": 1}
			model := &boundedModel{owner: map[string]string{}}
			nextNode, nextKey := 1, 0
			for step := range 1500 {
				var moves []Move
				switch op := rng.IntN(100); {
				case op < 55:
					key := fmt.Sprintf("k%d", nextKey)
					nextKey++
					assign := b.Assign
					if rng.IntN(2) == 0 {
						// A skewed load: many ids placed by a few hot keys.
						hot := fmt.Sprintf("hot-%d", rng.IntN(4))
						assign = func(id string) (string, error) { return b.AssignWithKey(id, hot) }
					}
					node, err := guard(t, seed, step, func() (string, error) { return assign(key) })
					if err != nil {
						t.Fatalf("step %d: Assign: %v", step, err)
					}
					model.owner[key] = node
				case op < 85 && len(model.owner) > 0:
					key := fmt.Sprintf("k%d", rng.IntN(nextKey))
					if _, ok := model.owner[key]; !ok {
						continue
					}
					if moves, err = guard(t, seed, step, func() ([]Move, error) { return b.Release(key) }); err != nil {
						t.Fatalf("step %d: Release: %v", step, err)
					}
					delete(model.owner, key)
				case op < 90 || len(weights) < 2:
					name := fmt.Sprintf("n%d", nextNode)
					nextNode++
					w := 1.0
					if weighted {
						w = float64(1 + rng.IntN(3))
					}
					if moves, err = guard(t, seed, step, func() ([]Move, error) { return b.Add(name, w) }); err != nil {
						t.Fatalf("step %d: Add: %v", step, err)
					}
					weights[name] = w
				case op < 96:
					victim := fmt.Sprintf("n%d", rng.IntN(nextNode))
					if _, ok := weights[victim]; !ok {
						continue
					}
					if moves, err = guard(t, seed, step, func() ([]Move, error) { return b.Remove(victim) }); err != nil {
						t.Fatalf("step %d: Remove: %v", step, err)
					}
					delete(weights, victim)
				default:
					target := fmt.Sprintf("n%d", rng.IntN(nextNode))
					if _, ok := weights[target]; !ok || !weighted {
						continue
					}
					w := float64(1 + rng.IntN(4))
					if moves, err = guard(t, seed, step, func() ([]Move, error) { return b.SetWeight(target, w) }); err != nil {
						t.Fatalf("step %d: SetWeight: %v", step, err)
					}
					weights[target] = w
				}
				model.apply(t, moves)
				if step%10 == 0 {
					checkBound(t, b, model, weights, c)
				}
			}
			checkBound(t, b, model, weights, c)
			st := b.Stats()
			t.Logf("c=%v: %d keys on %d nodes, max load %d, %d moves", c, st.Keys, st.Nodes, st.MaxLoad, st.Moves)
		})
	}
}

// TestBoundedEvensSkew assigns a skewed key set (most keys hash near one
// node) and checks the bound holds where the plain ring would overload.
func TestBoundedEvensSkew(t *testing.T) {
	nodes := equalNodes("node-", 10)
	b, err := NewBounded(BoundedConfig{Ring: Config{VirtualNodes: 1}, Balance: 1.25}, nodes...)
	if err != nil {
		t.Fatal(err)
	}
	ring := mustRing(t, Config{VirtualNodes: 1}, nodes...)
	plain := map[string]int{}
	for i := range 2000 {
		key := fmt.Sprintf("key-%d", i)
		if _, err := b.Assign(key); err != nil {
			t.Fatal(err)
		}
		owner, _ := ring.Locate(key)
		plain[owner]++
	}
	plainMax := 0
	for _, l := range plain {
		plainMax = max(plainMax, l)
	}
	st := b.Stats()
	if st.MaxLoad > 250 { // ⌈1.25 · 2000/10⌉
		t.Errorf("bounded max load = %d; want ≤ 250", st.MaxLoad)
	}
	if plainMax <= 250 {
		t.Errorf("plain ring with 1 vnode has max load %d; the test wants a skewed baseline above 250", plainMax)
	}
	t.Logf("1 vnode per node, 2000 keys: plain ring max %d, bounded max %d", plainMax, st.MaxLoad)
}

// TestBoundedReleaseInAnyOrder assigns keys and releases them in a random
// order: every release succeeds without panicking, and after each the loads
// add up to the keys still assigned, each of which keeps its node.
func TestBoundedReleaseInAnyOrder(t *testing.T) {
	for seed := range uint64(5) {
		rng := rand.New(rand.NewPCG(seed, 7))
		b, err := NewBounded(DefaultBoundedConfig(), equalNodes("n", 3)...)
		if err != nil {
			t.Fatal(err)
		}
		owner := map[string]string{}
		var keys []string
		for i := range 40 {
			key := fmt.Sprintf("key-%d", i)
			node, err := b.Assign(key)
			if err != nil {
				t.Fatalf("seed %d: Assign(%q): %v", seed, key, err)
			}
			owner[key] = node
			keys = append(keys, key)
		}
		rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
		for n, key := range keys {
			moves, err := noPanic(func() ([]Move, error) { return b.Release(key) })
			if err != nil {
				t.Fatalf("seed %d: Release(%q) after %d releases: %v", seed, key, n, err)
			}
			delete(owner, key)
			for _, mv := range moves {
				owner[mv.Key] = mv.To
			}
			sum := 0
			for _, l := range b.Loads() {
				sum += l
			}
			if sum != len(owner) {
				t.Fatalf("seed %d: after releasing %q loads add up to %d; want %d keys", seed, key, sum, len(owner))
			}
			for k, want := range owner {
				if got, err := b.Locate(k); err != nil || got != want {
					t.Fatalf("seed %d: after releasing %q, Locate(%q) = %q, %v; want %q", seed, key, k, got, err, want)
				}
			}
		}
	}
}

// noPanic calls fn, turning a panic into an error, so that a broken rule
// fails the test by an assertion that names the call.
func noPanic[T any](fn func() (T, error)) (res T, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return fn()
}

func TestBoundedAssignIsSticky(t *testing.T) {
	b, err := NewBounded(DefaultBoundedConfig(), equalNodes("n", 4)...)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := b.Assign("session-1")
	again, _ := b.Assign("session-1")
	if first != again || b.Stats().Keys != 1 {
		t.Fatalf("Assign twice = %q then %q with %d keys; want the same node and one key", first, again, b.Stats().Keys)
	}
	capacity, err := b.Capacity(first)
	if err != nil || capacity != 1 {
		t.Fatalf("Capacity(%q) = %d, %v; want ⌈1.25·1/4⌉ = 1", first, capacity, err)
	}
}

// TestAssignWithKeyKeepsLocality checks that ids sharing a key share a node
// until it is full, then spill clockwise, never above the bound.
func TestAssignWithKeyKeepsLocality(t *testing.T) {
	nodes := equalNodes("node-", 4)
	b, err := NewBounded(BoundedConfig{Ring: DefaultConfig(), Balance: 1.5}, nodes...)
	if err != nil {
		t.Fatal(err)
	}
	ring := mustRing(t, DefaultConfig(), nodes...)
	home, _ := ring.Locate("video-7")
	for i := range 3 {
		if _, err := b.Assign(fmt.Sprintf("other-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	first, err := b.AssignWithKey("req-0", "video-7")
	if err != nil || first != home {
		t.Fatalf("AssignWithKey(req-0, video-7) = %q, %v; want its ring owner %q", first, err, home)
	}
	for i := 1; i < 40; i++ {
		if _, err := b.AssignWithKey(fmt.Sprintf("req-%d", i), "video-7"); err != nil {
			t.Fatal(err)
		}
	}
	capacity, _ := b.Capacity(home)
	if got := b.Load(home); got != capacity {
		t.Errorf("home node %q holds %d requests; want it filled to its capacity %d", home, got, capacity)
	}
	if st := b.Stats(); st.MaxLoad > capacity {
		t.Errorf("max load %d exceeds capacity %d", st.MaxLoad, capacity)
	}
	if _, err := b.Release("req-0"); err != nil {
		t.Fatal(err)
	}
}
