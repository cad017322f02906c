package consensus

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
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
	seeds := []uint64{1}
	if os.Getenv("DISTKIT_SOAK") == "1" {
		seeds = nil
		for s := range uint64(100) {
			seeds = append(seeds, s+1)
		}
	}
	if s := os.Getenv("DISTKIT_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("DISTKIT_SEED=%q: %v", s, err)
		}
		seeds = []uint64{seed}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { testRandomCrashRestart(t, seed) })
			if t.Failed() {
				t.Logf("replay with DISTKIT_SEED=%d go test -run 'TestRandomCrashRestart' ./consensus", seed)
			}
		})
	}
}

// voteTransport records the votes its node grants.
type voteTransport struct {
	transport.Transport
	id transport.NodeID
	rc *ruleChecker
}

func (v *voteTransport) Send(ctx context.Context, to transport.NodeID, service string, payload []byte) error {
	if _, body, err := openEnvelope(payload); err == nil {
		var m raft.Message
		if err := m.Unmarshal(body); err == nil {
			v.rc.recordVote(v.id, &m)
		}
	}
	return v.Transport.Send(ctx, to, service, payload)
}

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
	cfg.fs = fs
	cfg.SnapshotThreshold = 8
	cfg.SnapshotRetainEntries = 2
	cfg.Seed = dc.seed*1000 + uint64(starts)
	kv := newKV()
	n, err := New(cfg, dc.trs[id], kv)
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

func testRandomCrashRestart(t *testing.T, seed uint64) {
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
		dc.trs[id] = &voteTransport{Transport: tr, id: id, rc: rc}
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
