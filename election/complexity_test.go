package election_test

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distkit/distkit/election"
	"github.com/distkit/distkit/election/electionsim"
	"github.com/distkit/distkit/transport"
)

// scenario is one way of starting an election, measured on a quiet
// network (1-5 ms latency, no loss).
type scenario struct {
	name string
	node func(election.Config) *electionsim.Node
	// starters returns the nodes that campaign at once; the others wait
	// (a long BootDelay) until an election message reaches them. nil
	// means: elect, then crash the leader and let the detectors notice.
	starters func(ids []transport.NodeID) []transport.NodeID
}

var scenarios = []scenario{
	{"bully, best start (highest node)", electionsim.NewBully, func(ids []transport.NodeID) []transport.NodeID { return ids[len(ids)-1:] }},
	{"bully, worst start (lowest node)", electionsim.NewBully, func(ids []transport.NodeID) []transport.NodeID { return ids[:1] }},
	{"bully, all start at once", electionsim.NewBully, func(ids []transport.NodeID) []transport.NodeID { return ids }},
	{"bully, leader crashes", electionsim.NewBully, nil},
	{"ring, single starter (lowest node)", electionsim.NewRing, func(ids []transport.NodeID) []transport.NodeID { return ids[:1] }},
	{"ring, all start at once", electionsim.NewRing, func(ids []transport.NodeID) []transport.NodeID { return ids }},
	{"ring, leader crashes", electionsim.NewRing, nil},
}

// measure runs one election and returns the election messages sent (ELECTION,
// OK, COORDINATOR, ring messages; not heartbeats) and the simulated time
// from the start (or the crash) to agreement.
func measure(t testing.TB, seed int64, n int, sc scenario) (uint64, time.Duration) {
	t.Helper()
	const boot = 50 * time.Millisecond
	starters := map[transport.NodeID]bool{}
	if sc.starters != nil {
		ids := make([]transport.NodeID, n)
		for i := range ids {
			ids[i] = transport.NodeID(fmt.Sprintf("n%d", i+1))
		}
		for _, id := range sc.starters(ids) {
			starters[id] = true
		}
	}
	c := newCluster(t, seed, n, sc.node, quietNet, func(cfg *election.Config) {
		cfg.BootDelay = boot
		if sc.starters != nil && !starters[cfg.ID] {
			cfg.BootDelay = time.Hour // campaigns only when asked
		}
	})
	live := c.live()
	var start time.Time
	if sc.starters == nil {
		if !c.s.RunUntil(func() bool { _, ok := c.agreed(live); return ok }, convergeBound) {
			t.Fatalf("%s n=%d: no first leader:%s", sc.name, n, c.views())
		}
		c.s.Run(time.Second)
		c.crash(c.ids[n-1])
		live = c.live()
	} else {
		c.s.Run(boot - time.Millisecond)
	}
	before, start := c.electionMessages(), c.s.Now()
	if !c.s.RunUntil(func() bool { _, ok := c.agreed(live); return ok }, convergeBound) {
		t.Fatalf("%s n=%d: no agreement:%s", sc.name, n, c.views())
	}
	elapsed := c.s.Now().Sub(start)
	// Count the messages still in flight when agreement was reached, and
	// their answers: run until 50 ms pass without an election message
	// (ten times the latency bound), for at most a second.
	for quiet, waited := 0, time.Duration(0); quiet < 5 && waited < time.Second; waited += 10 * time.Millisecond {
		sent := c.electionMessages()
		c.s.Run(10 * time.Millisecond)
		if c.electionMessages() == sent {
			quiet++
		} else {
			quiet = 0
		}
	}
	return c.electionMessages() - before, elapsed
}

// TestMessageComplexity measures messages per election for n = 3, 5, 7, 9
// and checks them against the algorithms' analysis: exact where the run is
// deterministic (one starter, one token), an upper bound where timing
// decides how many nodes join in. DISTKIT_ELECTION_TABLE=1 prints the
// table kept in doc.go: medians over 9 seeds of the messages and of the
// simulated time from the start (or the crash) to agreement.
func TestMessageComplexity(t *testing.T) {
	sizes := []int{3, 5, 7, 9}
	exact := map[string]func(n uint64) uint64{
		// The highest node hears no one above it: n-1 COORDINATORs.
		"bully, best start (highest node)": func(n uint64) uint64 { return n - 1 },
		// Chang–Roberts from the lowest node on an ascending ring: n-1
		// hops to the highest, n back round to it, n ELECTED.
		"ring, single starter (lowest node)": func(n uint64) uint64 { return 3*n - 1 },
	}
	// At most every node asks every node above it, each ELECTION gets an
	// OK, and the highest announces: n(n-1)/2 + n(n-1)/2 + (n-1).
	bullyWorst := func(n uint64) uint64 { return n*(n-1) + n - 1 }
	atMost := map[string]func(n uint64) uint64{
		"bully, worst start (lowest node)": bullyWorst,
		"bully, all start at once":         bullyWorst,
		"ring, all start at once":          func(n uint64) uint64 { return n * (n + 1) },
	}
	seeds := 1
	printTable := os.Getenv("DISTKIT_ELECTION_TABLE") == "1"
	if printTable {
		seeds = 9
	}
	var table strings.Builder
	fmt.Fprintf(&table, "%-36s", "")
	for _, n := range sizes {
		fmt.Fprintf(&table, "  %-14s", fmt.Sprintf("n=%d", n))
	}
	table.WriteString("\n")
	for _, sc := range scenarios {
		fmt.Fprintf(&table, "%-36s", sc.name)
		for _, n := range sizes {
			var msgs []uint64
			var took []time.Duration
			for seed := int64(1); seed <= int64(seeds); seed++ {
				m, d := measure(t, seed, n, sc)
				msgs, took = append(msgs, m), append(took, d)
				if f, ok := exact[sc.name]; ok && m != f(uint64(n)) {
					t.Errorf("%s, n=%d, seed %d: %d messages; want %d", sc.name, n, seed, m, f(uint64(n)))
				}
				if f, ok := atMost[sc.name]; ok && m > f(uint64(n)) {
					t.Errorf("%s, n=%d, seed %d: %d messages; want at most %d", sc.name, n, seed, m, f(uint64(n)))
				}
			}
			slices.Sort(msgs)
			slices.Sort(took)
			fmt.Fprintf(&table, "  %-14s", fmt.Sprintf("%d (%v)", msgs[len(msgs)/2], took[len(took)/2].Round(time.Millisecond)))
		}
		table.WriteString("\n")
	}
	if printTable {
		t.Logf("messages per election (simulated time to agreement), median of %d seeds\n%s", seeds, table.String())
	}
}
