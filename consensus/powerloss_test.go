package consensus

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/internal/bubbletest"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// The tests in this file run the real Node (its goroutine, timers, Ready
// handling) inside testing/synctest bubbles over memnet, so time is
// virtual and a run is fast, with two instruments:
//
//   - powerStorage is memory storage whose contents are exactly what Save,
//     ApplySnapshot and CreateSnapshot completed: at a power cut (armed to
//     fire at the k-th storage write or message send) everything later is
//     lost, and the node restarts from what was saved.
//   - ruleChecker looks at every message a node sends and every entry it
//     applies, and fails the test when the message or entry depends on
//     state that is not saved yet: a vote or a term not durable, an
//     acknowledged entry not in the log, an entry applied before it is in
//     the log.

// errPowerLost is what a powerStorage returns once its power is cut.
var errPowerLost = errors.New("test: power lost")

// powerStorage is a Node's storage that can lose power.
type powerStorage struct {
	memStorage
	mu    sync.Mutex // guards armed and dead
	armed int        // operations left before the power fails; <= 0: not armed
	dead  bool
}

func newPowerStorage() *powerStorage {
	return &powerStorage{memStorage: memStorage{MemoryStorage: raft.NewMemoryStorage(), retain: 2}}
}

// op counts one write or send and reports whether power is still on.
func (p *powerStorage) op() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dead {
		return false
	}
	if p.armed > 0 {
		p.armed--
		if p.armed == 0 {
			p.dead = true
			return false
		}
	}
	return true
}

// arm makes the power fail at the k-th next operation (k >= 1).
func (p *powerStorage) arm(k int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed = k
}

func (p *powerStorage) isDead() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dead
}

// restore powers the storage back on with what was saved.
func (p *powerStorage) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dead, p.armed = false, 0
}

func (p *powerStorage) Save(hs raft.HardState, ents []raft.Entry) error {
	if !p.op() {
		return errPowerLost
	}
	return p.memStorage.Save(hs, ents)
}

func (p *powerStorage) ApplySnapshot(snap raft.Snapshot) error {
	if !p.op() {
		return errPowerLost
	}
	return p.memStorage.ApplySnapshot(snap)
}

func (p *powerStorage) CreateSnapshot(i uint64, m raft.Membership, data []byte) (raft.Snapshot, error) {
	if !p.op() {
		return raft.Snapshot{}, errPowerLost
	}
	return p.memStorage.CreateSnapshot(i, m, data)
}

// ruleChecker records the rule violations of every node of a test.
type ruleChecker struct {
	t  *testing.T
	mu sync.Mutex // guards votes and failed
	// votes is the candidate each node granted its vote to, by term.
	votes      map[transport.NodeID]map[uint64]transport.NodeID
	failed     bool
	violations int
}

func newRuleChecker(t *testing.T) *ruleChecker {
	return &ruleChecker{t: t, votes: map[transport.NodeID]map[uint64]transport.NodeID{}}
}

// fail reports a violation. After the first few, the rest are only
// counted, and the checked transports stop delivering (see Send): a broken
// rule may otherwise keep the nodes exchanging messages forever at one
// instant of virtual time.
func (rc *ruleChecker) fail(format string, args ...any) {
	rc.mu.Lock()
	rc.failed = true
	rc.violations++
	n := rc.violations
	rc.mu.Unlock()
	if n <= 5 {
		rc.t.Errorf(format, args...)
	}
}

func (rc *ruleChecker) hasFailed() bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.failed
}

// checkSend checks, as node from sends m, that what m depends on is saved
// in store: its term (and, for a granted vote, the vote) in the hard state,
// the entries it acknowledges in the log.
func (rc *ruleChecker) checkSend(from transport.NodeID, store *powerStorage, m *raft.Message) {
	hs := store.HardState()
	last, _ := store.LastIndex()
	switch m.Type {
	case raft.MsgPreVote, raft.MsgPreVoteResp:
		return // a pre-vote changes nothing durable
	}
	if m.Term > hs.Term {
		rc.fail("%s sent %s in term %d with term %d saved (%+v)", from, m.Type, m.Term, hs.Term, hs)
		return
	}
	switch {
	case m.Type == raft.MsgVote && (hs.Term != m.Term || hs.Vote != from):
		rc.fail("%s asked for votes in term %d with hard state %+v saved: its own vote is not durable", from, m.Term, hs)
	case m.Type == raft.MsgVoteResp && !m.Reject:
		if hs.Term != m.Term || hs.Vote != m.To {
			rc.fail("%s granted its vote to %s in term %d with hard state %+v saved", from, m.To, m.Term, hs)
		}
		rc.recordVote(from, m)
	case m.Type == raft.MsgAppResp && !m.Reject && m.Index > last:
		rc.fail("%s acknowledged entries up to %d in term %d with only %d saved", from, m.Index, m.Term, last)
	}
}

// recordVote records the vote m grants (if it does) and fails if its
// sender already granted its vote to another candidate in that term.
func (rc *ruleChecker) recordVote(from transport.NodeID, m *raft.Message) {
	if m.Type != raft.MsgVoteResp || m.Reject {
		return
	}
	rc.mu.Lock()
	if rc.votes[from] == nil {
		rc.votes[from] = map[uint64]transport.NodeID{}
	}
	prev, ok := rc.votes[from][m.Term]
	rc.votes[from][m.Term] = m.To
	rc.mu.Unlock()
	if ok && prev != m.To {
		rc.fail("%s voted twice in term %d: for %s and for %s", from, m.Term, prev, m.To)
	}
}

// checkApply checks that an entry is in node id's saved log when applied.
func (rc *ruleChecker) checkApply(id transport.NodeID, store *powerStorage, e Entry) {
	if term, err := store.Term(e.Index); err != nil || term != e.Term {
		last, _ := store.LastIndex()
		rc.fail("%s applied entry %d (term %d) before saving it: saved term %d (%v), last saved index %d", id, e.Index, e.Term, term, err, last)
	}
}

// checkedTransport checks every message its node sends, and drops it once
// the node's power is cut.
type checkedTransport struct {
	transport.Transport
	id      transport.NodeID
	store   *powerStorage
	rc      *ruleChecker
	stalled *atomic.Bool // see runBubble
}

func (c *checkedTransport) Send(ctx context.Context, to transport.NodeID, service string, payload []byte) error {
	if !c.store.op() || c.rc.hasFailed() || c.stalled.Load() {
		return nil // the power is off (the message never left), or the test has failed
	}
	if _, body, err := openEnvelope(payload); err == nil {
		var m raft.Message
		if err := m.Unmarshal(body); err == nil {
			c.rc.checkSend(c.id, c.store, &m)
		}
	}
	return c.Transport.Send(ctx, to, service, payload)
}

// checkedSM is a kvSM whose Applies are checked against the saved log.
type checkedSM struct {
	*kvSM
	id    transport.NodeID
	store *powerStorage
	rc    *ruleChecker
}

func (s *checkedSM) Apply(e Entry) any {
	s.rc.checkApply(s.id, s.store, e)
	return s.kvSM.Apply(e)
}

// powerCluster is three nodes with power storage and checked transports on
// a memnet network, inside a synctest bubble.
type powerCluster struct {
	t      *testing.T
	rc     *ruleChecker
	mu     sync.Mutex // guards nodes and sms
	nodes  map[transport.NodeID]*Node
	sms    map[transport.NodeID]*kvSM
	stores map[transport.NodeID]*powerStorage
	trs    map[transport.NodeID]*checkedTransport
	tweak  func(*Config)
	seed   uint64
}

func newPowerCluster(t *testing.T, seed uint64, stalled *atomic.Bool, tweak func(*Config)) *powerCluster {
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	pc := &powerCluster{
		t: t, rc: newRuleChecker(t), seed: seed, tweak: tweak,
		nodes: map[transport.NodeID]*Node{}, sms: map[transport.NodeID]*kvSM{},
		stores: map[transport.NodeID]*powerStorage{}, trs: map[transport.NodeID]*checkedTransport{},
	}
	for _, id := range three {
		tr, err := net.Join(id)
		if err != nil {
			t.Fatal(err)
		}
		pc.stores[id] = newPowerStorage()
		pc.trs[id] = &checkedTransport{Transport: tr, id: id, store: pc.stores[id], rc: pc.rc, stalled: stalled}
		pc.start(id, 0)
	}
	t.Cleanup(func() {
		for _, id := range three {
			pc.stop(id)
		}
		net.Close()
	})
	return pc
}

// start starts node id from what its storage holds; incarnation varies
// its election seed.
func (pc *powerCluster) start(id transport.NodeID, incarnation uint64) {
	pc.t.Helper()
	cfg := testConfig(id, three)
	cfg.Seed = pc.seed*1000 + uint64(id[1])*10 + incarnation
	if pc.tweak != nil {
		pc.tweak(&cfg)
	}
	kv := newKV()
	n, err := newNode(cfg, pc.trs[id], &checkedSM{kvSM: kv, id: id, store: pc.stores[id], rc: pc.rc}, pc.stores[id])
	if err != nil {
		pc.t.Fatalf("seed %d: start %s: %v", pc.seed, id, err)
	}
	pc.mu.Lock()
	pc.nodes[id], pc.sms[id] = n, kv
	pc.mu.Unlock()
}

// stop stops node id (a stop after a power cut returns the storage error).
func (pc *powerCluster) stop(id transport.NodeID) {
	pc.mu.Lock()
	n := pc.nodes[id]
	delete(pc.nodes, id)
	pc.mu.Unlock()
	if n != nil {
		if err := n.Close(); err != nil && !errors.Is(err, errPowerLost) {
			pc.t.Errorf("seed %d: Close(%s) = %v", pc.seed, id, err)
		}
	}
}

func (pc *powerCluster) node(id transport.NodeID) *Node {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.nodes[id]
}

// leader returns a node that says it leads, or nil.
func (pc *powerCluster) leader() *Node {
	return leaderOf(pc.node)
}

// leaderOf returns a running node of three (as node returns them) that
// says it leads, or nil.
func leaderOf(node func(transport.NodeID) *Node) *Node {
	for _, id := range three {
		if n := node(id); n != nil {
			if st := n.Status(); st.Role == raft.Leader && st.Err == nil {
				return n
			}
		}
	}
	return nil
}

// writeUntil proposes unique keys to the leader until ctx ends and returns
// the acknowledged ones.
func (pc *powerCluster) writeUntil(ctx context.Context, prefix string) []string {
	return writeUntil(ctx, pc.leader, prefix)
}

// writeUntil proposes unique keys PREFIXi to the node leader returns
// until ctx ends, and returns the acknowledged ones.
func writeUntil(ctx context.Context, leader func() *Node, prefix string) []string {
	var acked []string
	for i := 0; ctx.Err() == nil; i++ {
		n := leader()
		if n == nil {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		k := fmt.Sprintf("%s%d", prefix, i)
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		_, err := n.Propose(pctx, []byte(k+"=1"))
		cancel()
		if err == nil {
			acked = append(acked, k)
		}
		// Virtual time stands still while any goroutine can run: without
		// a pause the writer would write forever at one instant.
		time.Sleep(4 * time.Millisecond)
	}
	return acked
}

// TestReadyOrder runs a cluster through elections and writes (with
// snapshots) and checks, at every send and every apply, the order the
// Ready duties require: a node's votes, terms and acknowledgements are
// saved before the messages carrying them are sent, and its committed
// entries are in its log before they are applied.
func TestReadyOrder(t *testing.T) {
	runBubble(t, func(t *testing.T, stalled *atomic.Bool) {
		pc := newPowerCluster(t, 1, stalled, func(cfg *Config) {
			cfg.SnapshotThreshold = 16
		})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var acked []string
		for round := range 3 {
			if pc.rc.hasFailed() {
				return
			}
			// Stopping the leader forces elections (votes, new terms) under
			// load.
			wctx, wcancel := context.WithTimeout(ctx, 500*time.Millisecond)
			acked = append(acked, pc.writeUntil(wctx, fmt.Sprintf("r%d-", round))...)
			wcancel()
			if l := pc.leader(); l != nil {
				id := l.ID()
				pc.stop(id)
				pc.start(id, uint64(round+1))
			}
		}
		if len(acked) == 0 {
			t.Fatal("no write acknowledged")
		}
	})
}

// TestPowerLossCrash cuts the power of random nodes at random points (the
// k-th next storage write or message send, k drawn from the seed) while a
// writer keeps writing, and restarts them from what they had saved. No
// acknowledged write is lost, no node votes twice in a term, and the
// ordering rules of TestReadyOrder hold throughout. DISTKIT_SEED replays
// one seed; DISTKIT_SOAK=1 runs many.
func TestPowerLossCrash(t *testing.T) {
	runSeededBubbles(t, "TestPowerLossCrash", []uint64{1, 2}, 200, testPowerLossCrash)
}

// runSeededBubbles runs test once per seed, each in a synctest bubble of
// its own with the realTimeBudget watchdog (internal/bubbletest): the
// default seeds, 1…soak under DISTKIT_SOAK=1, or the one seed DISTKIT_SEED
// names. A failed seed prints the command that replays it.
func runSeededBubbles(t *testing.T, name string, seeds []uint64, soak uint64, test func(t *testing.T, seed uint64, stalled *atomic.Bool)) {
	t.Helper()
	bubbletest.Run(t, seeds, soak, realTimeBudget, "DISTKIT_SEED=%d go test -run '"+name+"' ./consensus", test)
}

func testPowerLossCrash(t *testing.T, seed uint64, stalled *atomic.Bool) {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b9))
	pc := newPowerCluster(t, seed, stalled, func(cfg *Config) {
		cfg.SnapshotThreshold = 8
		cfg.SnapshotRetainEntries = 2
	})
	ctx, cancel := context.WithCancel(context.Background())
	ackedc := make(chan []string, 1)
	go func() { ackedc <- pc.writeUntil(ctx, "w") }()

	crashes := 0
	for range 12 {
		if pc.rc.hasFailed() || stalled.Load() {
			break
		}
		time.Sleep(time.Duration(20+rng.IntN(200)) * time.Millisecond)
		id := three[rng.IntN(3)]
		store := pc.stores[id]
		store.arm(1 + rng.IntN(12))
		// Wait (bounded) for the power to go: a node with nothing to do
		// may take a while to reach its k-th write or send.
		for i := 0; i < 100 && !store.isDead(); i++ {
			time.Sleep(5 * time.Millisecond)
		}
		pc.stop(id) // what was not saved is gone
		store.restore()
		crashes++
		pc.start(id, uint64(crashes))
	}
	// Let the cluster settle and make one last write that every node must
	// reach.
	time.Sleep(500 * time.Millisecond)
	cancel()
	acked := <-ackedc
	if pc.rc.hasFailed() || stalled.Load() {
		return
	}
	fctx, fcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer fcancel()
	final := pc.writeUntilOne(fctx, "final")
	acked = append(acked, final)
	for _, id := range three {
		pc.mu.Lock()
		kv := pc.sms[id]
		pc.mu.Unlock()
		for _, k := range acked {
			if err := waitKey(kv, k); err != nil {
				t.Fatalf("seed %d: %s: acknowledged write %s: %v (%d writes acknowledged, %d crashes)", seed, id, k, err, len(acked), crashes)
			}
		}
	}
	t.Logf("seed %d: %d writes acknowledged, %d power cuts", seed, len(acked), crashes)
}

// writeUntilOne writes key until one attempt is acknowledged.
func (pc *powerCluster) writeUntilOne(ctx context.Context, key string) string {
	if !writeOne(ctx, pc.leader, key) {
		pc.t.Fatalf("seed %d: no leader acknowledged %s", pc.seed, key)
	}
	return key
}

// writeOne writes key through the node leader returns until one attempt
// is acknowledged, and reports whether one was before ctx ended.
func writeOne(ctx context.Context, leader func() *Node, key string) bool {
	for ctx.Err() == nil {
		if n := leader(); n != nil {
			pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			_, err := n.Propose(pctx, []byte(key+"=1"))
			cancel()
			if err == nil {
				return true
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}
