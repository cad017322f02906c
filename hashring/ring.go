package hashring

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// Node names a node and its weight: a node of weight 2 gets twice the points,
// and so about twice the keys, of a node of weight 1. A zero Weight means 1,
// so Node{Name: "a"} is a node of weight 1 (NodesOf builds such a list from
// names). A negative, infinite or NaN weight is refused with
// ErrInvalidWeight. Add and SetWeight take the weight as an argument and
// refuse 0: to take a node's keys away, Remove it.
type Node struct {
	Name   string
	Weight float64
}

// weight is n's weight with the zero value read as 1.
func (n Node) weight() float64 {
	if n.Weight == 0 {
		return 1
	}
	return n.Weight
}

// NodesOf returns one node of weight 1 per name, in order: the usual way to
// build a ring of equal nodes.
//
//	ring, err := hashring.NewRing(hashring.DefaultConfig(), hashring.NodesOf("a", "b", "c")...)
func NodesOf(names ...string) []Node {
	out := make([]Node, len(names))
	for i, name := range names {
		out[i] = Node{Name: name, Weight: 1}
	}
	return out
}

// errNilRing is what the changing methods of a nil *Ring report; its
// lookups see an empty ring.
var errNilRing = fmt.Errorf("%w: nil *Ring, create it with NewRing or use a zero Ring", ErrInvalidConfig)

// Ring is a consistent-hash ring with virtual nodes and weights.
//
// Lookups (Locate, LocateN and their Bytes forms) are lock-free and
// allocation-free: they read an immutable snapshot through an atomic pointer.
// Changes (Add, AddNodes, Remove, SetWeight) are serialized by a mutex, build
// the next snapshot in O(V) (O(V log V) for AddNodes or after a hash
// collision), and publish it atomically, so a reader sees either the ring
// before or the ring after a change, never a mix. A Ring is safe for
// concurrent use. The zero value is an empty ring with DefaultConfig;
// NewRing sets another configuration.
type Ring struct {
	vnodes int
	hash   pointHasher

	// writeMu serializes writers so each builds on the latest snapshot;
	// readers never take it.
	writeMu sync.Mutex
	snap    atomic.Pointer[snapshot]
}

// NewRing returns a ring configured by cfg holding nodes (which may be
// none).
func NewRing(cfg Config, nodes ...Node) (*Ring, error) {
	return newRing(cfg, xxPointHash, nodes)
}

func newRing(cfg Config, hash pointHasher, nodes []Node) (*Ring, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Ring{vnodes: cfg.VirtualNodes, hash: hash}
	if len(nodes) > 0 {
		if err := r.AddNodes(nodes...); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// emptySnapshot is the ring with no nodes; the zero Ring reads it.
var emptySnapshot = &snapshot{index: []uint32{0}, shift: 64}

// load returns the current snapshot (the empty one for a nil or zero Ring).
func (r *Ring) load() *snapshot {
	if r == nil {
		return emptySnapshot
	}
	if s := r.snap.Load(); s != nil {
		return s
	}
	return emptySnapshot
}

func (r *Ring) virtualNodes() int {
	if r.vnodes == 0 {
		return DefaultVirtualNodes
	}
	return r.vnodes
}

func (r *Ring) pointHash() pointHasher {
	if r.hash == nil {
		return xxPointHash
	}
	return r.hash
}

// Locate returns the node owning key: the node of the point nearest to the
// key's hash (see the package doc). It returns ErrEmpty if the ring has no
// nodes.
func (r *Ring) Locate(key string) (string, error) {
	return r.load().owner(hashKey(key))
}

// LocateBytes is Locate for a []byte key; it gives the same node as
// Locate(string(key)).
func (r *Ring) LocateBytes(key []byte) (string, error) {
	return r.load().owner(xxhash.Sum64(key))
}

// LocateN appends to dst the n distinct nodes nearest to key's hash,
// nearest first, and returns the extended slice: the owner, then the node
// that would own key if the owner were removed, and so on — the usual
// replica placement, in failover order. If the ring has fewer than n
// nodes it appends all of them, so len(result)-len(dst) < n exactly when
// Len() < n. It returns ErrEmpty on an empty ring (unless n is 0) and
// ErrInvalidCount for a negative n. Pass a reused dst[:0] with capacity
// ≥ n to avoid allocating.
func (r *Ring) LocateN(dst []string, key string, n int) ([]string, error) {
	return r.load().appendOwners(dst, hashKey(key), n)
}

// LocateNBytes is LocateN for a []byte key.
func (r *Ring) LocateNBytes(dst []string, key []byte, n int) ([]string, error) {
	return r.load().appendOwners(dst, xxhash.Sum64(key), n)
}

// Len returns the number of nodes.
func (r *Ring) Len() int { return len(r.load().nodes) }

// Points returns the number of points (virtual nodes) on the ring.
func (r *Ring) Points() int { return len(r.load().points) }

// Nodes returns the nodes sorted by name.
func (r *Ring) Nodes() []Node {
	s := r.load()
	out := make([]Node, len(s.nodes))
	for i, m := range s.nodes {
		out[i] = Node{Name: m.name, Weight: m.weight}
	}
	return out
}

// Has reports whether node is on the ring.
func (r *Ring) Has(node string) bool {
	_, ok := r.load().nodeIndex(node)
	return ok
}

// Add puts node on the ring with the given weight. Only keys that now fall
// on the new node's points move, all of them to the new node. It returns
// ErrNodeExists if the node is present, ErrInvalidNode for an empty name and
// ErrInvalidWeight for a weight that is not finite and positive.
func (r *Ring) Add(node string, weight float64) error {
	if r == nil {
		return errNilRing
	}
	if node == "" {
		return fmt.Errorf("%w: empty name", ErrInvalidNode)
	}
	pts, err := pointCount(node, weight, r.virtualNodes())
	if err != nil {
		return err
	}
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	old := r.load()
	at, found := old.nodeIndex(node)
	if found {
		return fmt.Errorf("%w: %q", ErrNodeExists, node)
	}
	nodes := slices.Insert(slices.Clone(old.nodes), at, member{name: node, weight: weight, points: pts})
	oldToNew := make([]int32, len(old.nodes))
	for i := range oldToNew {
		oldToNew[i] = int32(i)
		if i >= at {
			oldToNew[i]++
		}
	}
	s, err := derive(old, nodes, oldToNew, at, r.pointHash())
	if err != nil {
		return err
	}
	r.snap.Store(s)
	return nil
}

// AddNodes adds several nodes in one change: either all are added or, on
// error, none. It costs one O(V log V) rebuild instead of one O(V) merge
// per node, so it is the way to build a large ring.
func (r *Ring) AddNodes(nodes ...Node) error {
	if r == nil {
		return errNilRing
	}
	fresh := make([]member, 0, len(nodes))
	for _, n := range nodes {
		if n.Name == "" {
			return fmt.Errorf("%w: empty name", ErrInvalidNode)
		}
		pts, err := pointCount(n.Name, n.weight(), r.virtualNodes())
		if err != nil {
			return err
		}
		fresh = append(fresh, member{name: n.Name, weight: n.weight(), points: pts})
	}
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	old := r.load()
	all := append(slices.Clone(old.nodes), fresh...)
	slices.SortStableFunc(all, func(a, b member) int { return strings.Compare(a.name, b.name) })
	for i := 1; i < len(all); i++ {
		if all[i].name == all[i-1].name {
			return fmt.Errorf("%w: %q", ErrNodeExists, all[i].name)
		}
	}
	s, err := buildFull(all, r.pointHash())
	if err != nil {
		return err
	}
	r.snap.Store(s)
	return nil
}

// Remove takes node off the ring. Only the keys it owned move; each goes to
// the node of its next-nearest point. It returns ErrNodeNotFound if node is absent.
func (r *Ring) Remove(node string) error {
	if r == nil {
		return errNilRing
	}
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	old := r.load()
	at, found := old.nodeIndex(node)
	if !found {
		return fmt.Errorf("%w: %q", ErrNodeNotFound, node)
	}
	nodes := slices.Delete(slices.Clone(old.nodes), at, at+1)
	oldToNew := make([]int32, len(old.nodes))
	for i := range oldToNew {
		switch {
		case i < at:
			oldToNew[i] = int32(i)
		case i == at:
			oldToNew[i] = -1
		default:
			oldToNew[i] = int32(i - 1)
		}
	}
	s, err := derive(old, nodes, oldToNew, -1, r.pointHash())
	if err != nil {
		return err
	}
	r.snap.Store(s)
	return nil
}

// SetWeight changes the weight of node. Its points are replicas 0..p-1 of
// the same hash sequence, so growing a weight only adds points (keys move
// only to node) and shrinking it only removes points (keys move only away
// from node). It returns ErrNodeNotFound if node is absent and
// ErrInvalidWeight for a bad weight.
func (r *Ring) SetWeight(node string, weight float64) error {
	if r == nil {
		return errNilRing
	}
	pts, err := pointCount(node, weight, r.virtualNodes())
	if err != nil {
		return err
	}
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	old := r.load()
	at, found := old.nodeIndex(node)
	if !found {
		return fmt.Errorf("%w: %q", ErrNodeNotFound, node)
	}
	nodes := slices.Clone(old.nodes)
	nodes[at] = member{name: node, weight: weight, points: pts}
	oldToNew := make([]int32, len(old.nodes))
	for i := range oldToNew {
		oldToNew[i] = int32(i)
	}
	oldToNew[at] = -1 // drop its old points, then place them afresh
	s, err := derive(old, nodes, oldToNew, at, r.pointHash())
	if err != nil {
		return err
	}
	r.snap.Store(s)
	return nil
}

// derive builds the snapshot for nodes from old in O(V): old points are kept
// (renumbered by oldToNew, dropped where it is -1) and the points of
// nodes[fresh] (if fresh ≥ 0) are merged in. If old holds re-probed points or
// the merge meets a collision it falls back to buildFull, so that the result
// is always exactly what buildFull would give for nodes.
func derive(old *snapshot, nodes []member, oldToNew []int32, fresh int, hash pointHasher) (*snapshot, error) {
	if old.displaced {
		return buildFull(nodes, hash)
	}
	total := 0
	for _, m := range nodes {
		total += m.points
	}
	if total > MaxPoints {
		return nil, fmt.Errorf("%w: %d points, limit %d", ErrTooManyPoints, total, MaxPoints)
	}
	var add []point
	if fresh >= 0 {
		m := nodes[fresh]
		add = make([]point, m.points)
		for i := range add {
			add[i] = point{hash: hash(m.name, uint32(i), 0), node: uint32(fresh)}
		}
		slices.SortFunc(add, byPosition)
		for i := 1; i < len(add); i++ {
			if add[i].hash == add[i-1].hash {
				return buildFull(nodes, hash)
			}
		}
	}
	out := make([]point, 0, total)
	j := 0
	for _, p := range old.pos {
		to := oldToNew[p.node]
		if to < 0 {
			continue
		}
		for j < len(add) && add[j].hash < p.hash {
			out = append(out, add[j])
			j++
		}
		if j < len(add) && add[j].hash == p.hash {
			return buildFull(nodes, hash)
		}
		out = append(out, point{hash: p.hash, node: uint32(to)})
	}
	out = append(out, add[j:]...)
	return newSnapshot(nodes, out, false), nil
}
