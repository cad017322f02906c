package hashring

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"

	burak "github.com/buraksezer/consistent"
	"github.com/cespare/xxhash/v2"
	"github.com/distkit/distkit/hashring"
	"github.com/golang/groupcache/consistenthash"
	stathat "stathat.com/c/consistent"
)

const vnodes = 160

var (
	keys      = makeKeys(1 << 16)
	byteKeys  = toBytes(keys)
	nodeSizes = []int{10, 100, 1000}
)

func makeKeys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "key-" + strconv.Itoa(i)
	}
	return out
}

func toBytes(ss []string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

func nodeNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("node-%d", i)
	}
	return out
}

// locator is what every library is reduced to: the owner of a key.
type locator func(i int, key string) string

type library struct {
	name string
	// build returns a locator over the nodes; i indexes keys/byteKeys when
	// the library takes []byte keys, so no conversion is timed.
	build func(nodes []string) (locator, error)
}

type burakMember string

func (m burakMember) String() string { return string(m) }

type xxHasher struct{}

func (xxHasher) Sum64(b []byte) uint64 { return xxhash.Sum64(b) }

var libraries = []library{
	{"distkit", func(nodes []string) (locator, error) {
		ns := make([]hashring.Node, len(nodes))
		for i, n := range nodes {
			ns[i] = hashring.Node{Name: n, Weight: 1}
		}
		r, err := hashring.NewRing(hashring.Config{VirtualNodes: vnodes}, ns...)
		if err != nil {
			return nil, err
		}
		return func(_ int, key string) string {
			owner, _ := r.Locate(key)
			return owner
		}, nil
	}},
	{"buraksezer", func(nodes []string) (locator, error) {
		members := make([]burak.Member, len(nodes))
		for i, n := range nodes {
			members[i] = burakMember(n)
		}
		c := burak.New(members, burak.Config{PartitionCount: 7919, ReplicationFactor: 20, Load: 1.25, Hasher: xxHasher{}})
		return func(i int, key string) string {
			if i >= 0 {
				return c.LocateKey(byteKeys[i]).String()
			}
			return c.LocateKey([]byte(key)).String()
		}, nil
	}},
	{"groupcache", func(nodes []string) (locator, error) {
		m := consistenthash.New(vnodes, nil) // nil: crc32, the default
		m.Add(nodes...)
		return func(_ int, key string) string { return m.Get(key) }, nil
	}},
	{"stathat", func(nodes []string) (locator, error) {
		c := stathat.New()
		c.NumberOfReplicas = vnodes
		c.Set(nodes)
		return func(_ int, key string) string {
			owner, _ := c.Get(key)
			return owner
		}, nil
	}},
}

// balance is the distribution of 1M keys "key-0".."key-999999".
type balance struct{ stdDevPct, maxPct float64 }

var balanceCache sync.Map // "lib/nodes" → balance

func measureBalance(tb testing.TB, lib library, n int) balance {
	id := lib.name + "/" + strconv.Itoa(n)
	if b, ok := balanceCache.Load(id); ok {
		return b.(balance)
	}
	loc, err := lib.build(nodeNames(n))
	if err != nil {
		tb.Fatal(err)
	}
	loads := map[string]int{}
	for _, name := range nodeNames(n) {
		loads[name] = 0
	}
	const total = 1_000_000
	buf := make([]byte, 0, 16)
	for i := range total {
		buf = strconv.AppendInt(append(buf[:0], "key-"...), int64(i), 10)
		loads[loc(-1, string(buf))]++
	}
	if len(loads) != n {
		tb.Fatalf("%s: keys landed on %d nodes; want %d", lib.name, len(loads), n)
	}
	mean := float64(total) / float64(n)
	var sq, top float64
	for _, l := range loads {
		sq += (float64(l) - mean) * (float64(l) - mean)
		top = max(top, float64(l))
	}
	b := balance{stdDevPct: 100 * math.Sqrt(sq/float64(n)) / mean, maxPct: 100 * top / mean}
	balanceCache.Store(id, b)
	return b
}

// BenchmarkCompareLocate times one lookup per library and node count and
// reports the balance of 1M keys as stddev-% and max-% (of the mean).
func BenchmarkCompareLocate(b *testing.B) {
	for _, n := range nodeSizes {
		for _, lib := range libraries {
			b.Run(fmt.Sprintf("nodes=%d/lib=%s", n, lib.name), func(b *testing.B) {
				loc, err := lib.build(nodeNames(n))
				if err != nil {
					b.Fatal(err)
				}
				bal := measureBalance(b, lib, n)
				b.ReportAllocs()
				b.ResetTimer()
				var sink string
				for i := 0; b.Loop(); i++ {
					j := i & (len(keys) - 1)
					sink = loc(j, keys[j])
				}
				_ = sink
				b.ReportMetric(bal.stdDevPct, "stddev-%")
				b.ReportMetric(bal.maxPct, "max-%")
			})
		}
	}
}

// TestBalanceTable prints the balance of every library as a markdown table
// and checks that every key landed on a known node.
func TestBalanceTable(t *testing.T) {
	if testing.Short() {
		t.Skip("measures 12M lookups")
	}
	var sb strings.Builder
	sb.WriteString("\n| nodes | library | std-dev % of mean | max % of mean |\n|---|---|---|---|\n")
	for _, n := range nodeSizes {
		for _, lib := range libraries {
			bal := measureBalance(t, lib, n)
			fmt.Fprintf(&sb, "| %d | %s | %.1f | %.0f |\n", n, lib.name, bal.stdDevPct, bal.maxPct)
		}
	}
	t.Log(sb.String())
}
