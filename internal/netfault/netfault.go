package netfault

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/distkit/distkit/transport"
)

// Faults describes how a network misbehaves on a link. The zero value is a
// perfect network: nothing lost, duplicated or delayed.
type Faults struct {
	Drop               float64       // probability a message is lost
	Duplicate          float64       // probability a message is delivered twice
	MinDelay, MaxDelay time.Duration // latency, uniform in [MinDelay, MaxDelay]
	Reorder            float64       // probability of an extra hold-back delay
	ReorderDelay       time.Duration // bound of that extra delay; 0 means DefaultReorderDelay
}

// DefaultReorderDelay bounds the extra delay of a reordered message when
// neither ReorderDelay nor MaxDelay says how long "later" is.
const DefaultReorderDelay = time.Millisecond

// Validate reports whether f is meaningful: probabilities in [0, 1],
// non-negative delays and MinDelay <= MaxDelay. The error describes the
// problem without a package prefix; callers wrap it with their sentinel.
func (f Faults) Validate() error {
	probs := []struct {
		name string
		p    float64
	}{{"Drop", f.Drop}, {"Duplicate", f.Duplicate}, {"Reorder", f.Reorder}}
	for _, p := range probs {
		// Written as !(in range) so NaN is rejected too.
		if !(p.p >= 0 && p.p <= 1) {
			return fmt.Errorf("%s probability %v is not in [0, 1]", p.name, p.p)
		}
	}
	if f.MinDelay < 0 || f.MaxDelay < 0 || f.ReorderDelay < 0 {
		return fmt.Errorf("negative delay (MinDelay %v, MaxDelay %v, ReorderDelay %v)",
			f.MinDelay, f.MaxDelay, f.ReorderDelay)
	}
	if f.MinDelay > f.MaxDelay {
		return fmt.Errorf("MinDelay %v is greater than MaxDelay %v", f.MinDelay, f.MaxDelay)
	}
	return nil
}

// IsZero reports whether f is a perfect network.
func (f Faults) IsZero() bool { return f == Faults{} }

// Fate is what the network does with one message.
type Fate struct {
	// Copies is how many times the message arrives: 0 (dropped), 1 or 2
	// (duplicated).
	Copies int
	// Delays[i] is the latency of copy i.
	Delays [2]time.Duration
}

// Decide draws the fate of one message on a link with faults f. It draws
// from rng only for the faults that are switched on, so a perfect link
// consumes no randomness and adding a fault to one link does not disturb the
// random choices made for another link that has its own rng.
func Decide(f Faults, rng *rand.Rand) Fate {
	if f.Drop > 0 && rng.Float64() < f.Drop {
		return Fate{}
	}
	fate := Fate{Copies: 1}
	if f.Duplicate > 0 && rng.Float64() < f.Duplicate {
		fate.Copies = 2
	}
	for i := range fate.Copies {
		fate.Delays[i] = delay(f, rng)
	}
	return fate
}

// delay draws one copy's latency: uniform in [MinDelay, MaxDelay], plus,
// with probability Reorder, an extra uniform delay in (0, ReorderDelay] that
// lets later messages overtake it.
func delay(f Faults, rng *rand.Rand) time.Duration {
	d := f.MinDelay
	if span := f.MaxDelay - f.MinDelay; span > 0 {
		d += time.Duration(rng.Int64N(int64(span) + 1))
	}
	if f.Reorder > 0 && rng.Float64() < f.Reorder {
		bound := f.ReorderDelay
		if bound == 0 {
			bound = max(f.MaxDelay, DefaultReorderDelay)
		}
		d += 1 + time.Duration(rng.Int64N(int64(bound)))
	}
	return d
}

// Link is a directed pair of nodes.
type Link struct{ From, To transport.NodeID }

// Rules is a network's fault configuration: the default faults, per-link
// overrides, a partition into groups, one-way cuts and isolated nodes. The
// zero value is a network with no faults and no partition.
type Rules struct {
	Default  Faults
	links    map[Link]Faults               // per-link overrides of Default
	group    map[transport.NodeID]int      // partition group; nil when not partitioned
	cuts     map[Link]struct{}             // one-way cuts
	isolated map[transport.NodeID]struct{} // nodes that can neither send nor receive
}

// SetLinkFaults makes messages from l.From to l.To suffer f instead of the
// default faults.
func (r *Rules) SetLinkFaults(l Link, f Faults) {
	if r.links == nil {
		r.links = make(map[Link]Faults)
	}
	r.links[l] = f
}

// ResetLinkFaults returns link l to the default faults.
func (r *Rules) ResetLinkFaults(l Link) { delete(r.links, l) }

// FaultsFor returns the faults that apply to a message from -> to.
func (r *Rules) FaultsFor(from, to transport.NodeID) Faults {
	if f, ok := r.links[Link{from, to}]; ok {
		return f
	}
	return r.Default
}

// HasLinkFaults reports whether any per-link override is set.
func (r *Rules) HasLinkFaults() bool { return len(r.links) > 0 }

// Partition splits the network into groups; nodes in different groups
// cannot talk. Nodes named in no group form one more group together. It
// replaces any earlier partition and leaves cuts and isolation alone.
func (r *Rules) Partition(groups [][]transport.NodeID) {
	r.group = make(map[transport.NodeID]int)
	for i, g := range groups {
		for _, id := range g {
			r.group[id] = i + 1 // 0 is the implicit group of the unnamed nodes
		}
	}
}

// Cut stops messages from l.From to l.To (one way only).
func (r *Rules) Cut(l Link) {
	if r.cuts == nil {
		r.cuts = make(map[Link]struct{})
	}
	r.cuts[l] = struct{}{}
}

// Isolate cuts node id off from every other node in both directions.
func (r *Rules) Isolate(id transport.NodeID) {
	if r.isolated == nil {
		r.isolated = make(map[transport.NodeID]struct{})
	}
	r.isolated[id] = struct{}{}
}

// Heal removes the partition, every cut and every isolation. Default and
// per-link faults stay.
func (r *Rules) Heal() {
	r.group, r.cuts, r.isolated = nil, nil, nil
}

// Blocked reports whether a partition, cut or isolation stops messages from
// -> to. A node can always reach itself.
func (r *Rules) Blocked(from, to transport.NodeID) bool {
	if from == to {
		return false
	}
	if r.group != nil && r.group[from] != r.group[to] {
		return true
	}
	if _, ok := r.cuts[Link{from, to}]; ok {
		return true
	}
	if _, ok := r.isolated[from]; ok {
		return true
	}
	_, ok := r.isolated[to]
	return ok
}

// Quiet reports whether the rules are a perfect network (no faults, no
// partition, cut or isolation), so callers can take a fast path.
func (r *Rules) Quiet() bool {
	return r.Default.IsZero() && len(r.links) == 0 && r.group == nil && len(r.cuts) == 0 && len(r.isolated) == 0
}

// LinkSeed derives the seed of link from -> to's random stream from the
// network seed, so that the decisions on one link depend only on the seed and
// the order of the messages on that link.
func LinkSeed(seed int64, from, to transport.NodeID) (uint64, uint64) {
	return uint64(seed), hashString(string(from))*31 ^ hashString(string(to))
}

// NodeSeed derives the seed of a node's random stream from the network seed.
func NodeSeed(seed int64, id transport.NodeID, incarnation uint64) (uint64, uint64) {
	return uint64(seed) ^ 0x9e3779b97f4a7c15, hashString(string(id)) + incarnation
}

// hashString is 64-bit FNV-1a: stable across runs and platforms, unlike
// hash/maphash, which is what determinism needs.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
