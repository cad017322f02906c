package hashring

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// Rendezvous is weighted rendezvous (highest random weight) hashing (Thaler
// & Ravishankar 1998): every node scores every key and the highest score
// owns it. It needs no virtual nodes and balances as well as the key hash
// allows, any node can be removed moving only its own keys, and LocateN gives
// replicas for free, but a lookup costs O(nodes). Weights use the
// logarithmic method (score = weight / -ln(u), u uniform in (0,1)), which
// gives node i a share weight_i / Σweight and moves only the minimum of keys
// when a weight changes.
//
// Like Ring, lookups are lock-free reads of an immutable snapshot and
// changes are serialized; a Rendezvous is safe for concurrent use. The zero
// value is an empty set, ready to use.
type Rendezvous struct {
	// writeMu serializes Add, Remove and SetWeight; readers never take it.
	writeMu sync.Mutex
	snap    atomic.Pointer[rvSnapshot]
}

type rvNode struct {
	name   string
	weight float64
	seed   uint64 // xxhash of the name, mixed with each key hash
}

// rvSnapshot is immutable once published.
type rvSnapshot struct {
	nodes []rvNode // sorted by name
	// equal is true when all weights are equal: scores then reduce to the
	// mixed hash itself and the logarithm is skipped.
	equal bool
}

// NewRendezvous returns a rendezvous set holding nodes (which may be none).
func NewRendezvous(nodes ...Node) (*Rendezvous, error) {
	r := &Rendezvous{}
	for _, n := range nodes {
		if err := r.Add(n.Name, n.weight()); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// mix64 is the MurmurHash3 64-bit finalizer: it turns key-hash ⊕ node-seed
// into a score that is, for practical purposes, independent per node.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// score is node i's score for key hash h. Higher wins; ties go to the node
// with the smaller name (the lower index).
func (s *rvSnapshot) score(i int, h uint64) float64 {
	x := mix64(h ^ s.nodes[i].seed)
	if s.equal {
		return float64(x >> 11) // exact in a float64; same order as u
	}
	u := (float64(x>>11) + 0.5) / (1 << 53) // uniform in (0, 1)
	return s.nodes[i].weight / -math.Log(u)
}

func (s *rvSnapshot) owner(h uint64) (string, error) {
	if len(s.nodes) == 0 {
		return "", ErrEmpty
	}
	best, bestScore := 0, s.score(0, h)
	for i := 1; i < len(s.nodes); i++ {
		if sc := s.score(i, h); sc > bestScore {
			best, bestScore = i, sc
		}
	}
	return s.nodes[best].name, nil
}

type scored struct {
	score float64
	node  int
}

func (s *rvSnapshot) appendOwners(dst []string, h uint64, n int) ([]string, error) {
	if n < 0 {
		return dst, fmt.Errorf("%w: n is %d, want ≥ 0", ErrInvalidCount, n)
	}
	if n == 0 {
		return dst, nil
	}
	if len(s.nodes) == 0 {
		return dst, ErrEmpty
	}
	n = min(n, len(s.nodes))
	var small [8]scored
	top := small[:0]
	if n > len(small) {
		top = make([]scored, 0, n)
	}
	// Keep the n best in descending order (insertion: n is small).
	for i := range s.nodes {
		sc := scored{s.score(i, h), i}
		if len(top) == n && sc.score <= top[n-1].score {
			continue
		}
		if len(top) < n {
			top = append(top, sc)
		} else {
			top[n-1] = sc
		}
		for k := len(top) - 1; k > 0 && top[k].score > top[k-1].score; k-- {
			top[k], top[k-1] = top[k-1], top[k]
		}
	}
	for _, t := range top {
		dst = append(dst, s.nodes[t.node].name)
	}
	return dst, nil
}

var emptyRV = &rvSnapshot{equal: true}

func (r *Rendezvous) load() *rvSnapshot {
	if r == nil {
		return emptyRV
	}
	if s := r.snap.Load(); s != nil {
		return s
	}
	return emptyRV
}

// Locate returns the node with the highest score for key, or ErrEmpty.
func (r *Rendezvous) Locate(key string) (string, error) {
	return r.load().owner(hashKey(key))
}

// LocateBytes is Locate for a []byte key.
func (r *Rendezvous) LocateBytes(key []byte) (string, error) {
	return r.load().owner(xxhash.Sum64(key))
}

// LocateN appends the n highest-scoring nodes for key to dst, best first,
// with the same conventions as Ring.LocateN. It does not allocate for n ≤ 8
// when dst has room.
func (r *Rendezvous) LocateN(dst []string, key string, n int) ([]string, error) {
	return r.load().appendOwners(dst, hashKey(key), n)
}

// Len returns the number of nodes.
func (r *Rendezvous) Len() int { return len(r.load().nodes) }

// Nodes returns the nodes sorted by name.
func (r *Rendezvous) Nodes() []Node {
	s := r.load()
	out := make([]Node, len(s.nodes))
	for i, n := range s.nodes {
		out[i] = Node{Name: n.name, Weight: n.weight}
	}
	return out
}

func validWeight(node string, weight float64) error {
	if math.IsNaN(weight) || math.IsInf(weight, 0) || weight <= 0 {
		return fmt.Errorf("%w: node %q has weight %v, want a finite number > 0", ErrInvalidWeight, node, weight)
	}
	return nil
}

// Add adds node with the given weight. Errors as for Ring.Add.
func (r *Rendezvous) Add(node string, weight float64) error {
	if node == "" {
		return fmt.Errorf("%w: empty name", ErrInvalidNode)
	}
	if err := validWeight(node, weight); err != nil {
		return err
	}
	return r.update(func(nodes []rvNode) ([]rvNode, error) {
		at, found := slices.BinarySearchFunc(nodes, node, cmpRV)
		if found {
			return nil, fmt.Errorf("%w: %q", ErrNodeExists, node)
		}
		return slices.Insert(nodes, at, rvNode{name: node, weight: weight, seed: hashKey(node)}), nil
	})
}

// Remove removes node; only its keys move. Errors as for Ring.Remove.
func (r *Rendezvous) Remove(node string) error {
	return r.update(func(nodes []rvNode) ([]rvNode, error) {
		at, found := slices.BinarySearchFunc(nodes, node, cmpRV)
		if !found {
			return nil, fmt.Errorf("%w: %q", ErrNodeNotFound, node)
		}
		return slices.Delete(nodes, at, at+1), nil
	})
}

// SetWeight changes the weight of node. Errors as for Ring.SetWeight.
func (r *Rendezvous) SetWeight(node string, weight float64) error {
	if err := validWeight(node, weight); err != nil {
		return err
	}
	return r.update(func(nodes []rvNode) ([]rvNode, error) {
		at, found := slices.BinarySearchFunc(nodes, node, cmpRV)
		if !found {
			return nil, fmt.Errorf("%w: %q", ErrNodeNotFound, node)
		}
		nodes[at].weight = weight
		return nodes, nil
	})
}

func cmpRV(n rvNode, name string) int { return strings.Compare(n.name, name) }

// update applies change to a copy of the node list and publishes the result.
func (r *Rendezvous) update(change func([]rvNode) ([]rvNode, error)) error {
	if r == nil {
		return fmt.Errorf("%w: nil *Rendezvous, create it with NewRendezvous or use a zero Rendezvous", ErrInvalidConfig)
	}
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	nodes, err := change(slices.Clone(r.load().nodes))
	if err != nil {
		return err
	}
	s := &rvSnapshot{nodes: nodes, equal: true}
	for _, n := range nodes {
		if cmp.Compare(n.weight, nodes[0].weight) != 0 {
			s.equal = false
		}
	}
	r.snap.Store(s)
	return nil
}
