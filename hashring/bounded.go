package hashring

import (
	"fmt"
	"math"
	"sync"
)

// DefaultBalance is the default balance factor c of Bounded: no node holds
// more than ⌈1.25 × its fair share⌉ of the assigned keys.
const DefaultBalance = 1.25

// BoundedConfig configures a Bounded balancer.
type BoundedConfig struct {
	// Ring configures the underlying ring.
	Ring Config
	// Balance is the factor c > 1 of Mirrokni, Thorup & Zadimoghaddam: a
	// node may hold at most ⌈c × m × weight/Σweight⌉ of the m assigned keys
	// (⌈c × m/n⌉ with equal weights). Smaller c balances more tightly and
	// moves more keys on changes: the paper bounds the expected moves per
	// change by O(1/(c-1)²). Must be finite, > 1 and ≤ 100.
	Balance float64
}

// DefaultBoundedConfig returns DefaultConfig() for the ring and
// DefaultBalance.
func DefaultBoundedConfig() BoundedConfig {
	return BoundedConfig{Ring: DefaultConfig(), Balance: DefaultBalance}
}

// Validate reports whether the configuration is usable.
func (c BoundedConfig) Validate() error {
	if err := c.Ring.Validate(); err != nil {
		return err
	}
	if math.IsNaN(c.Balance) || c.Balance <= 1 || c.Balance > 100 {
		return fmt.Errorf("%w: Balance is %v, want a number in (1, 100]", ErrInvalidConfig, c.Balance)
	}
	return nil
}

// Move reports that key was reassigned from one node to another.
type Move struct {
	Key, From, To string
}

// BoundedStats is a snapshot of a Bounded balancer's counters.
type BoundedStats struct {
	Keys    int // keys currently assigned (m)
	Nodes   int // nodes on the ring
	MaxLoad int // most keys on any node
	Moves   int // keys moved by Release, Add, Remove and SetWeight so far
}

// Bounded assigns keys to nodes by consistent hashing with bounded loads
// (Mirrokni, Thorup & Zadimoghaddam, "Consistent Hashing with Bounded
// Loads", 2016).
//
// The bound counts assigned keys, not ring points or partitions. A key is
// whatever the caller balances: a session, a cache entry, an in-flight
// request id (AssignWithKey counts request ids but places them by the
// content key they ask for, keeping cache locality until a node is full). With m keys assigned and balance factor c, node i's capacity
// is ⌈c × m × wᵢ/W⌉ (W the total weight), which is ⌈c × m/n⌉ for equal
// weights. The invariant, true after every call returns:
//
//	load(i) ≤ capacity(i) for every node i.
//
// Assign places a new key on the first node, from the key's owner on the
// ring onwards clockwise, whose load is below its capacity computed with m+1 keys (§2 of the paper:
// walk the ring past full bins). The capacities add up to at least c·m > m,
// so such a node always exists. Assignments are sticky: a key stays where it
// is until it is released or must move, and a call only moves keys when the
// invariant requires it:
//
//   - Release lowers m and so may lower capacities; each node then above its
//     capacity hands its most recently assigned keys to the next node
//     with room, clockwise from each key's owner.
//   - Add raises W; nodes above their new capacity shed keys the same way.
//     Existing keys are not pulled to the new node otherwise: it fills with
//     new assignments and shed keys.
//   - Remove reassigns the removed node's keys as if newly assigned.
//   - SetWeight changes capacities; overloaded nodes shed keys.
//
// Every move is returned to the caller (and counted in Stats) so it can
// migrate the state behind the key. Unlike the ring, whose lookups are
// lock-free, a Bounded balancer serializes all calls with a mutex: every
// assignment changes the loads every other call depends on. Create it with
// NewBounded; the methods of a zero Bounded return ErrInvalidConfig.
type Bounded struct {
	balance float64

	// mu guards every field below, and all writes to ring (which is private
	// to this balancer).
	mu       sync.Mutex
	ring     *Ring
	bins     map[string]*bin
	order    []*bin // bins in the ring snapshot's node order (by name); see reorder
	assigned map[string]slot
	total    float64 // total weight W
	moves    int
}

// bin is one node's assignments.
type bin struct {
	name   string
	weight float64
	keys   []string // in assignment order; shedding takes from the end
}

// slot locates an assigned key: its node, its index in that bin's keys, and
// the hash that places it on the ring.
type slot struct {
	node string
	pos  int
	hash uint64
}

// NewBounded returns a balancer configured by cfg over nodes (which may be
// none).
func NewBounded(cfg BoundedConfig, nodes ...Node) (*Bounded, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r, err := NewRing(cfg.Ring, nodes...)
	if err != nil {
		return nil, err
	}
	b := &Bounded{balance: cfg.Balance, ring: r, bins: map[string]*bin{}, assigned: map[string]slot{}}
	for _, n := range nodes {
		b.bins[n.Name] = &bin{name: n.Name, weight: n.weight()}
		b.total += n.weight()
	}
	b.reorder()
	return b, nil
}

// reorder rebuilds b.order after a membership change, so that
// b.order[i] is the bin of the ring snapshot's node i.
func (b *Bounded) reorder() {
	s := b.ring.load()
	b.order = b.order[:0]
	for _, n := range s.nodes {
		b.order = append(b.order, b.bins[n.name])
	}
}

// errNilBounded is what the methods of a nil *Bounded report.
var errNilBounded = fmt.Errorf("%w: nil *Bounded, create it with NewBounded", ErrInvalidConfig)

// ready reports whether b was built by NewBounded. Callers hold b.mu.
func (b *Bounded) ready() error {
	if b.ring == nil {
		return fmt.Errorf("%w: zero Bounded, create it with NewBounded", ErrInvalidConfig)
	}
	return nil
}

// capacity is ⌈c·m·w/W⌉. The small epsilon keeps a product that should be
// an exact integer (like 1.1 × 10 / 11) from rounding up past it.
func (b *Bounded) capacity(bn *bin, m int) int {
	if m == 0 {
		return 0
	}
	return int(math.Ceil(b.balance*float64(m)*bn.weight/b.total - 1e-9))
}

// place returns the first node, from h's owner on clockwise, whose load is
// below its capacity for m keys. The caller guarantees one exists.
func (b *Bounded) place(h uint64, m int) string {
	s := b.ring.load()
	start := s.locate(h)
	for k := range s.points {
		i := start + k
		if i >= len(s.points) {
			i -= len(s.points)
		}
		bn := b.order[s.points[i].node]
		if len(bn.keys) < b.capacity(bn, m) {
			return bn.name
		}
	}
	// Unreachable while the capacities sum to more than m (c > 1); kept
	// total so a broken invariant cannot panic: fall back to the ring owner.
	return s.nodes[s.points[start].node].name
}

func (b *Bounded) put(key, node string, h uint64) {
	bn := b.bins[node]
	b.assigned[key] = slot{node: node, pos: len(bn.keys), hash: h}
	bn.keys = append(bn.keys, key)
}

// take removes key from its bin and returns its placement hash.
func (b *Bounded) take(key string) uint64 {
	sl := b.assigned[key]
	bn := b.bins[sl.node]
	last := len(bn.keys) - 1
	if sl.pos != last {
		moved := bn.keys[last]
		bn.keys[sl.pos] = moved
		ms := b.assigned[moved]
		ms.pos = sl.pos
		b.assigned[moved] = ms
	}
	bn.keys = bn.keys[:last]
	delete(b.assigned, key)
	return sl.hash
}

// Assign returns the node for key, assigning it if it is new (an already
// assigned key keeps its node). It returns ErrEmpty if there are no nodes.
func (b *Bounded) Assign(key string) (string, error) {
	return b.assign(key, hashKey(key))
}

// AssignWithKey assigns id, placing it as if it were key: the form for
// counting requests or connections (id) to content (key). All ids of one key
// start from the same ring position, so they share a node, and the cache it
// holds, until that node reaches its capacity; then they spill to the next
// nodes clockwise. id is what counts towards loads and what Release takes.
// An already assigned id keeps its node.
func (b *Bounded) AssignWithKey(id, key string) (string, error) {
	return b.assign(id, hashKey(key))
}

func (b *Bounded) assign(id string, h uint64) (string, error) {
	if b == nil {
		return "", errNilBounded
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.ready(); err != nil {
		return "", err
	}
	if sl, ok := b.assigned[id]; ok {
		return sl.node, nil
	}
	if len(b.bins) == 0 {
		return "", ErrEmpty
	}
	node := b.place(h, len(b.assigned)+1)
	b.put(id, node, h)
	return node, nil
}

// Locate returns the node holding key if it is assigned, otherwise the node
// Assign would choose now, without assigning it.
func (b *Bounded) Locate(key string) (string, error) {
	if b == nil {
		return "", errNilBounded
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.ready(); err != nil {
		return "", err
	}
	if sl, ok := b.assigned[key]; ok {
		return sl.node, nil
	}
	if len(b.bins) == 0 {
		return "", ErrEmpty
	}
	return b.place(hashKey(key), len(b.assigned)+1), nil
}

// Release ends key's assignment and returns the keys moved to keep the
// bound. It returns ErrNotAssigned for a key that is not assigned.
func (b *Bounded) Release(key string) ([]Move, error) {
	if b == nil {
		return nil, errNilBounded
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.ready(); err != nil {
		return nil, err
	}
	if _, ok := b.assigned[key]; !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotAssigned, key)
	}
	b.take(key)
	return b.rebalance(nil), nil
}

// Add adds node and returns the keys moved to keep the bound. Errors as for
// Ring.Add.
func (b *Bounded) Add(node string, weight float64) ([]Move, error) {
	if b == nil {
		return nil, errNilBounded
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.ready(); err != nil {
		return nil, err
	}
	if err := b.ring.Add(node, weight); err != nil {
		return nil, err
	}
	b.bins[node] = &bin{name: node, weight: weight}
	b.total += weight
	b.reorder()
	return b.rebalance(nil), nil
}

// Remove removes node, reassigning its keys, and returns every move. It
// returns ErrNodeNotFound for an absent node and refuses (with ErrEmpty) to
// remove the last node while keys are assigned, since they would have
// nowhere to go: release them first.
func (b *Bounded) Remove(node string) ([]Move, error) {
	if b == nil {
		return nil, errNilBounded
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.ready(); err != nil {
		return nil, err
	}
	bn, ok := b.bins[node]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNodeNotFound, node)
	}
	if len(b.bins) == 1 && len(b.assigned) > 0 {
		return nil, fmt.Errorf("%w: removing the last node %q would orphan %d assigned keys", ErrEmpty, node, len(b.assigned))
	}
	if err := b.ring.Remove(node); err != nil {
		return nil, err
	}
	delete(b.bins, node)
	b.reorder()
	b.total -= bn.weight
	if len(b.bins) == 0 {
		b.total = 0 // no float residue on an empty balancer
	}
	m := len(b.assigned)
	var moves []Move
	hashes := make([]uint64, len(bn.keys))
	for i, key := range bn.keys {
		hashes[i] = b.assigned[key].hash
		delete(b.assigned, key)
	}
	for i, key := range bn.keys {
		// The orphans still count in m: they are being re-placed, not released.
		to := b.place(hashes[i], m)
		b.put(key, to, hashes[i])
		moves = append(moves, Move{Key: key, From: node, To: to})
	}
	b.moves += len(moves)
	return b.rebalance(moves), nil
}

// SetWeight changes node's weight and returns the keys moved to keep the
// bound. Errors as for Ring.SetWeight.
func (b *Bounded) SetWeight(node string, weight float64) ([]Move, error) {
	if b == nil {
		return nil, errNilBounded
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.ready(); err != nil {
		return nil, err
	}
	if err := b.ring.SetWeight(node, weight); err != nil {
		return nil, err
	}
	bn := b.bins[node]
	b.total += weight - bn.weight
	bn.weight = weight
	return b.rebalance(nil), nil
}

// rebalance moves keys off every node above its capacity, appending the
// moves to moves. A key goes to the first node, from its owner on
// clockwise, with load below capacity; the source is above capacity so it is skipped, and a
// target never exceeds its capacity, so one pass over the nodes suffices.
func (b *Bounded) rebalance(moves []Move) []Move {
	m := len(b.assigned)
	for _, bn := range b.order {
		for c := b.capacity(bn, m); len(bn.keys) > c; {
			key := bn.keys[len(bn.keys)-1]
			h := b.take(key)
			to := b.place(h, m)
			b.put(key, to, h)
			if to == bn.name {
				// place found no other bin with room, which the capacity
				// bound rules out (the total capacity exceeds m). Stop
				// rather than move the key back and forth forever.
				break
			}
			moves = append(moves, Move{Key: key, From: bn.name, To: to})
			b.moves++
		}
	}
	return moves
}

// Load returns the number of keys assigned to node (0 for an absent node).
func (b *Bounded) Load(node string) int {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if bn, ok := b.bins[node]; ok {
		return len(bn.keys)
	}
	return 0
}

// Capacity returns node's current capacity ⌈c × m × w/W⌉, or
// ErrNodeNotFound.
func (b *Bounded) Capacity(node string) (int, error) {
	if b == nil {
		return 0, errNilBounded
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.ready(); err != nil {
		return 0, err
	}
	bn, ok := b.bins[node]
	if !ok {
		return 0, fmt.Errorf("%w: %q", ErrNodeNotFound, node)
	}
	return b.capacity(bn, len(b.assigned)), nil
}

// Loads returns the number of keys per node, including nodes with none.
func (b *Bounded) Loads() map[string]int {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]int, len(b.bins))
	for name, bn := range b.bins {
		out[name] = len(bn.keys)
	}
	return out
}

// Stats returns the balancer's counters.
func (b *Bounded) Stats() BoundedStats {
	if b == nil {
		return BoundedStats{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	st := BoundedStats{Keys: len(b.assigned), Nodes: len(b.bins), Moves: b.moves}
	for _, bn := range b.bins {
		st.MaxLoad = max(st.MaxLoad, len(bn.keys))
	}
	return st
}
