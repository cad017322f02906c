package hashring_test

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/distkit/distkit/hashring"
)

// benchKeys is a fixed key set so that lookups hash realistic short strings
// rather than the loop counter.
var benchKeys = func() []string {
	keys := make([]string, 1<<16)
	for i := range keys {
		keys[i] = "key-" + strconv.Itoa(i)
	}
	return keys
}()

func benchNodes(n int) []hashring.Node {
	nodes := make([]hashring.Node, n)
	for i := range nodes {
		nodes[i] = hashring.Node{Name: fmt.Sprintf("node-%d", i), Weight: 1}
	}
	return nodes
}

func nodeNames(nodes []hashring.Node) []string {
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.Name
	}
	return names
}

// balanceCache keeps the std-dev measurement per node count: it takes a
// moment and the benchmark function runs several times.
var balanceCache sync.Map

func ringBalance(b *testing.B, r *hashring.Ring, nodes []hashring.Node) float64 {
	if v, ok := balanceCache.Load(len(nodes)); ok {
		return v.(float64)
	}
	d, err := hashring.MeasureDistribution(r, nodeNames(nodes), hashring.SequentialKeys(1_000_000))
	if err != nil {
		b.Fatal(err)
	}
	balanceCache.Store(len(nodes), d.StdDevPercent)
	return d.StdDevPercent
}

func BenchmarkRingLocate(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run("nodes="+strconv.Itoa(n), func(b *testing.B) {
			nodes := benchNodes(n)
			r, err := hashring.NewRing(hashring.DefaultConfig(), nodes...)
			if err != nil {
				b.Fatal(err)
			}
			stddev := ringBalance(b, r, nodes)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := r.Locate(benchKeys[i&(len(benchKeys)-1)]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(stddev, "stddev-%")
		})
	}
}

func BenchmarkRingLocateN(b *testing.B) {
	r, err := hashring.NewRing(hashring.DefaultConfig(), benchNodes(100)...)
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]string, 0, 3)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if dst, err = r.LocateN(dst[:0], benchKeys[i&(len(benchKeys)-1)], 3); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRingAdd(b *testing.B) {
	nodes := benchNodes(100)
	base, err := hashring.NewRing(hashring.DefaultConfig(), nodes...)
	if err != nil {
		b.Fatal(err)
	}
	_ = base
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		// Add to a 100-node ring then take the node off again, so every
		// iteration measures the same change; report the Add half.
		name := "extra-" + strconv.Itoa(i)
		if err := base.Add(name, 1); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := base.Remove(name); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(base.Points()+hashring.DefaultVirtualNodes), "points")
}

func BenchmarkJump(b *testing.B) {
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := hashring.JumpString(benchKeys[i&(len(benchKeys)-1)], 100); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRendezvous(b *testing.B) {
	nodes := benchNodes(100)
	weighted := slices.Clone(nodes)
	for i := range weighted {
		weighted[i].Weight = float64(1 + i%3)
	}
	for _, c := range []struct {
		name  string
		nodes []hashring.Node
	}{{"equal", nodes}, {"weighted", weighted}} {
		b.Run(c.name, func(b *testing.B) {
			r, err := hashring.NewRendezvous(c.nodes...)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := r.Locate(benchKeys[i&(len(benchKeys)-1)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBoundedAssign measures one Assign plus one Release on a
// balancer over 100 nodes holding about 10k live keys.
func BenchmarkBoundedAssign(b *testing.B) {
	bal, err := hashring.NewBounded(hashring.DefaultBoundedConfig(), benchNodes(100)...)
	if err != nil {
		b.Fatal(err)
	}
	const live = 10_000
	for i := range live {
		if _, err := bal.Assign(benchKeys[i]); err != nil {
			b.Fatal(err)
		}
	}
	moves := 0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		// Replace the oldest live key with a new one: the load stays at 10k.
		out, in := benchKeys[i%len(benchKeys)], benchKeys[(i+live)%len(benchKeys)]
		mv, err := bal.Release(out)
		if err != nil {
			b.Fatal(err)
		}
		moves += len(mv)
		if _, err := bal.Assign(in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(moves)/float64(b.N), "moves/op")
}
