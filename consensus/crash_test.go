package consensus

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/internal/vfs"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// TestRandomCrashRestart cuts the power of durable nodes (the real
// DiskStorage and WAL on a vfs.CrashFS each) at seeded random points while
// a writer keeps writing, in virtual time (testing/synctest) over memnet.
// A power cut makes the k-th next fsync of the node fail (k drawn from the
// seed; the node must stop, not go on) and then crashes its file system:
// what was not fsynced is lost or torn, directory entries not synced are
// gone. The node restarts from what survived. Snapshots are frequent, so
// restarts go through log replay and snapshot installation. Every restart
// must succeed, every acknowledged write must be on every node at the end,
// and no node may grant its vote to two candidates in one term. A failure
// prints the seed; DISTKIT_SEED replays it, DISTKIT_SOAK=1 runs many.
func TestRandomCrashRestart(t *testing.T) {
	runSeededBubbles(t, "TestRandomCrashRestart", []uint64{1}, 100, testRandomCrashRestart)
}

// realTimeBudget bounds the real time one synctest bubble of these tests
// may take (a seed takes well under a second). Past it the run is taken
// for a livelock (nodes exchanging messages forever at one instant of
// virtual time, which a broken rule can cause): the checked transports
// drop every message from then on, so that the test ends and fails with
// an assertion instead of hanging to the test binary's timeout.
const realTimeBudget = 60 * time.Second

// runBubble runs f in a synctest bubble with a real-time watchdog (see
// realTimeBudget); stalled is set when the budget is exhausted.
func runBubble(t *testing.T, f func(t *testing.T, stalled *atomic.Bool)) {
	var stalled atomic.Bool
	watchdog := time.AfterFunc(realTimeBudget, func() { stalled.Store(true) }) // outside the bubble: real time
	defer watchdog.Stop()
	synctest.Test(t, func(t *testing.T) { f(t, &stalled) })
	if stalled.Load() {
		t.Errorf("the run took more than %v of real time: a livelock (messages exchanged forever at one instant of virtual time)", realTimeBudget)
	}
}

// voteTransport records the votes its node grants, and drops every
// message once stalled is set.
type voteTransport struct {
	transport.Transport
	id      transport.NodeID
	rc      *ruleChecker
	stalled *atomic.Bool
}

func (v *voteTransport) Send(ctx context.Context, to transport.NodeID, service string, payload []byte) error {
	if v.stalled.Load() {
		return nil
	}
	if _, body, err := openEnvelope(payload); err == nil {
		var m raft.Message
		if err := m.Unmarshal(body); err == nil {
			v.rc.recordVote(v.id, &m)
		}
	}
	return v.Transport.Send(ctx, to, service, payload)
}

// closedChan never blocks a receive.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// diskCluster is three durable nodes, each on a CrashFS of its own.
type diskCluster struct {
	t      *testing.T
	seed   uint64
	mu     sync.Mutex // guards nodes, sms and fss
	fss    map[transport.NodeID]*vfs.CrashFS
	nodes  map[transport.NodeID]*Node
	sms    map[transport.NodeID]*kvSM
	trs    map[transport.NodeID]transport.Transport
	starts int
}

func (dc *diskCluster) start(id transport.NodeID) {
	dc.t.Helper()
	dc.mu.Lock()
	fs := dc.fss[id]
	dc.starts++
	starts := dc.starts
	dc.mu.Unlock()
	cfg := testConfig(id, three)
	cfg.DataDir = "/data/" + string(id)
	cfg.FS = fs
	cfg.SnapshotThreshold = 8
	cfg.SnapshotRetainEntries = 2
	cfg.Seed = dc.seed*1000 + uint64(starts)
	kv := newKV()
	var sm StateMachine = kv
	if id != "n2" {
		// n1 and n3 snapshot through views, written in the background,
		// so power cuts also land while a snapshot is being written.
		sm = &viewSM{kvSM: kv, release: closedChan, started: new(atomic.Int32), released: new(atomic.Int32)}
	}
	n, err := New(cfg, dc.trs[id], sm)
	if err != nil {
		dc.t.Fatalf("seed %d: start %s (file system seed %d): %v", dc.seed, id, fs.Seed(), err)
	}
	dc.mu.Lock()
	dc.nodes[id], dc.sms[id] = n, kv
	dc.mu.Unlock()
}

func (dc *diskCluster) node(id transport.NodeID) *Node {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	return dc.nodes[id]
}

// powerCut makes node id's k-th next fsync fail, waits (bounded) for the
// node to stop on it, crashes its file system and restarts it from what
// survived.
func (dc *diskCluster) powerCut(id transport.NodeID, k int) {
	dc.mu.Lock()
	fs, n := dc.fss[id], dc.nodes[id]
	dc.mu.Unlock()
	fs.InjectSyncError(k)
	// A node with nothing to write may take a while to reach its k-th
	// fsync; then the power goes wherever it is.
	for i := 0; i < 40 && n.Status().Err == nil; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	after := fs.Crash()
	n.Close() // the storage error that stopped it, or the crashed file system's
	dc.mu.Lock()
	dc.fss[id] = after
	delete(dc.nodes, id)
	dc.mu.Unlock()
	dc.start(id)
}

func testRandomCrashRestart(t *testing.T, seed uint64, stalled *atomic.Bool) {
	rng := rand.New(rand.NewPCG(seed, 7))
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	rc := newRuleChecker(t)
	dc := &diskCluster{
		t: t, seed: seed,
		fss: map[transport.NodeID]*vfs.CrashFS{}, nodes: map[transport.NodeID]*Node{},
		sms: map[transport.NodeID]*kvSM{}, trs: map[transport.NodeID]transport.Transport{},
	}
	for i, id := range three {
		tr, err := net.Join(id)
		if err != nil {
			t.Fatal(err)
		}
		dc.trs[id] = &voteTransport{Transport: tr, id: id, rc: rc, stalled: stalled}
		dc.fss[id] = vfs.NewCrashFS(seed*10 + uint64(i))
		dc.start(id)
	}
	defer func() {
		for _, id := range three {
			if n := dc.node(id); n != nil {
				n.Close()
			}
		}
		net.Close()
	}()

	ctx, cancel := context.WithCancel(context.Background())
	ackedc := make(chan []string, 1)
	go func() { ackedc <- writeUntil(ctx, func() *Node { return leaderOf(dc.node) }, "w") }()
	cuts := 0
	for range 12 {
		if stalled.Load() {
			break
		}
		time.Sleep(time.Duration(20+rng.IntN(150)) * time.Millisecond)
		id := three[rng.IntN(3)]
		dc.powerCut(id, 1+rng.IntN(6))
		cuts++
		if rng.IntN(4) == 0 {
			// Two down in a row: no majority until the second is back.
			dc.powerCut(three[(int(id[1]-'0'))%3], 1+rng.IntN(6))
			cuts++
		}
	}
	time.Sleep(300 * time.Millisecond)
	cancel()
	acked := <-ackedc
	if stalled.Load() {
		return
	}
	fctx, fcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer fcancel()
	if !writeOne(fctx, func() *Node { return leaderOf(dc.node) }, "final") {
		t.Fatalf("seed %d: no leader after the power cuts", seed)
	}
	acked = append(acked, "final")
	for _, id := range three {
		dc.mu.Lock()
		kv := dc.sms[id]
		dc.mu.Unlock()
		for _, k := range acked {
			if err := waitKey(kv, k); err != nil {
				t.Fatalf("seed %d: %s: acknowledged write %s: %v (%d writes acknowledged, %d power cuts)", seed, id, k, err, len(acked), cuts)
			}
		}
	}
	t.Logf("seed %d: %d writes acknowledged, %d power cuts", seed, len(acked), cuts)
}
