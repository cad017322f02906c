package hashring

import (
	"fmt"
	"iter"
	"math"
	"strconv"
)

// Locator maps a key to the node that owns it. Ring, Rendezvous, JumpNodes
// and Bounded (which locates without assigning) implement it, so the analysis
// helpers below can compare them.
type Locator interface {
	// Locate returns the owner of key, or an error (ErrEmpty when there are
	// no nodes). It must not retain key.
	Locate(key string) (string, error)
}

var (
	_ Locator = (*Ring)(nil)
	_ Locator = (*Rendezvous)(nil)
	_ Locator = JumpNodes(nil)
	_ Locator = (*Bounded)(nil)
)

// SequentialKeys yields the n keys "key-0", "key-1", …, "key-<n-1>": a
// reproducible key set for measurements.
func SequentialKeys(n int) iter.Seq[string] {
	return func(yield func(string) bool) {
		buf := make([]byte, 0, 24)
		for i := range n {
			buf = strconv.AppendInt(append(buf[:0], "key-"...), int64(i), 10)
			if !yield(string(buf)) {
				return
			}
		}
	}
}

// Distribution describes how keys spread over nodes.
type Distribution struct {
	Keys  int            // keys located
	Nodes int            // nodes counted (len(Loads))
	Loads map[string]int // keys per node, including nodes that got none
	Min   int            // fewest keys on a node
	Max   int            // most keys on a node
	Mean  float64        // Keys / Nodes
	// StdDev is the population standard deviation of keys per node.
	StdDev float64
	// StdDevPercent is StdDev as a percentage of Mean: the usual balance
	// figure (about 100/√vnodes for a ring).
	StdDevPercent float64
	// MaxPercent is Max as a percentage of Mean (peak-to-mean ratio × 100).
	MaxPercent float64
}

// MeasureDistribution locates every key with l and summarizes the load per
// node. nodes lists the nodes expected to own keys, so that a node that gets
// none counts as a zero load; an owner outside nodes is counted too. It
// returns the first Locate error.
func MeasureDistribution(l Locator, nodes []string, keys iter.Seq[string]) (Distribution, error) {
	d := Distribution{Loads: make(map[string]int, len(nodes))}
	for _, n := range nodes {
		d.Loads[n] = 0
	}
	for k := range keys {
		owner, err := l.Locate(k)
		if err != nil {
			return Distribution{}, fmt.Errorf("%w (locating %q)", err, k)
		}
		d.Loads[owner]++
		d.Keys++
	}
	d.Nodes = len(d.Loads)
	if d.Nodes == 0 {
		return d, nil
	}
	d.Mean = float64(d.Keys) / float64(d.Nodes)
	d.Min = math.MaxInt
	var sq float64
	for _, c := range d.Loads {
		d.Min = min(d.Min, c)
		d.Max = max(d.Max, c)
		diff := float64(c) - d.Mean
		sq += diff * diff
	}
	d.StdDev = math.Sqrt(sq / float64(d.Nodes))
	if d.Mean > 0 {
		d.StdDevPercent = 100 * d.StdDev / d.Mean
		d.MaxPercent = 100 * float64(d.Max) / d.Mean
	}
	return d, nil
}

// Movement describes how ownership changed between two placements.
type Movement struct {
	Keys     int            // keys compared
	Moved    int            // keys whose owner differs
	Fraction float64        // Moved / Keys
	From     map[string]int // moved keys by previous owner
	To       map[string]int // moved keys by new owner
}

// MeasureMovement locates every key with before and after and counts the
// keys whose owner changed. It returns the first Locate error.
func MeasureMovement(before, after Locator, keys iter.Seq[string]) (Movement, error) {
	m := Movement{From: map[string]int{}, To: map[string]int{}}
	for k := range keys {
		a, err := before.Locate(k)
		if err != nil {
			return Movement{}, fmt.Errorf("%w (locating %q before the change)", err, k)
		}
		b, err := after.Locate(k)
		if err != nil {
			return Movement{}, fmt.Errorf("%w (locating %q after the change)", err, k)
		}
		m.Keys++
		if a != b {
			m.Moved++
			m.From[a]++
			m.To[b]++
		}
	}
	if m.Keys > 0 {
		m.Fraction = float64(m.Moved) / float64(m.Keys)
	}
	return m, nil
}
