package election_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distkit/distkit/election"
	"github.com/distkit/distkit/internal/bubbletest"
	"github.com/distkit/distkit/internal/vfs"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// TestPowerLossEpochs runs five real Bully (and Ring) runtime nodes inside
// a testing/synctest bubble over memnet, so their timers, failure detectors
// and elections run in virtual time and a run is reproducible from its
// seed. Each node keeps its epoch in a FileEpochStore on a vfs.CrashFS of
// its own. At seeded points the test cuts a node's power: its k-th next
// fsync fails (the node must stop there, not go on with an epoch that is
// not durable), then its file system crashes (what was not fsynced is lost
// or torn) and the node restarts on what survived.
//
// The rule checked is the one fencing by epoch relies on: each node leads
// only with epochs above every epoch it led with before, across its
// restarts (the epoch it announces was durable before it announced it,
// and a restarted node resumes from its saved epoch). A failure names the
// seed; DISTKIT_SEED=N replays it, DISTKIT_SOAK=1 runs 50 seeds.
func TestPowerLossEpochs(t *testing.T) {
	for _, rt := range runtimes {
		t.Run(rt.name, func(t *testing.T) {
			bubbletest.Run(t, []uint64{1, 2}, 50, 20*time.Second,
				"DISTKIT_SEED=%d go test -run 'TestPowerLossEpochs/"+rt.name+"' ./election",
				func(t *testing.T, seed uint64, stalled *atomic.Bool) { testPowerLossEpochs(t, rt.new, seed, stalled) })
		})
	}
}

// epochLedger records, per node, the highest epoch it has led with, and
// fails the test when a node leads with an epoch not above it.
type epochLedger struct {
	t         *testing.T
	seed      uint64
	mu        sync.Mutex                      // guards the fields below
	led       map[transport.NodeID]leadership // the last one, by node
	wins      int
	violation bool
}

// leadership is an epoch a node led with, in one of its lives (starts).
type leadership struct {
	epoch uint64
	life  int
}

// leads records that node id, in its life-th start, announced itself
// leader with epoch: within one life the view may be announced again, but
// a later life must lead with a higher epoch.
func (l *epochLedger) leads(id transport.NodeID, epoch uint64, life int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	prev, ok := l.led[id]
	if ok && (epoch < prev.epoch || epoch == prev.epoch && life != prev.life) {
		if !l.violation {
			l.t.Errorf("seed %d: %s leads with epoch %d in its life %d after leading with epoch %d in its life %d: its epoch went back across a power cut", l.seed, id, epoch, life, prev.epoch, prev.life)
		}
		l.violation = true
	}
	if !ok || epoch > prev.epoch {
		l.wins++
		l.led[id] = leadership{epoch, life}
	}
}

// powerElectors is five runtime electors, each with its epoch file on a
// CrashFS of its own.
type powerElectors struct {
	t       *testing.T
	seed    uint64
	net     *memnet.Network
	stalled *atomic.Bool
	newFn   func(transport.Transport, election.Config) (*election.Node, error)
	ledger  *epochLedger
	ids     []transport.NodeID
	ctx     context.Context
	wg      sync.WaitGroup

	mu     sync.Mutex // guards the maps
	fss    map[transport.NodeID]*vfs.CrashFS
	trs    map[transport.NodeID]*memnet.Transport
	nodes  map[transport.NodeID]*election.Node
	stores map[transport.NodeID]*election.FileEpochStore
	lives  map[transport.NodeID]int
}

func (p *powerElectors) start(id transport.NodeID) {
	p.t.Helper()
	p.mu.Lock()
	fs := p.fss[id]
	p.lives[id]++
	life := p.lives[id]
	p.mu.Unlock()
	tr, err := p.net.Join(id)
	if err != nil {
		p.t.Fatalf("seed %d: join %s: %v", p.seed, id, err)
	}
	store, err := election.OpenFileEpochStore("/"+string(id)+".epoch", election.EpochStoreOptions{FS: fs})
	if err != nil {
		p.t.Fatalf("seed %d: open %s's epoch file (file system seed %d): %v", p.seed, id, fs.Seed(), err)
	}
	cfg := election.DefaultConfig()
	cfg.ID, cfg.Members, cfg.Store = id, election.MembersByOrder(p.ids...), store
	cfg.Detector.HeartbeatInterval = 20 * time.Millisecond
	cfg.Detector.ProbeTimeout = 20 * time.Millisecond
	cfg.Detector.CheckInterval = 5 * time.Millisecond
	cfg.ElectionTimeout, cfg.CoordinatorTimeout, cfg.BootDelay = 20*time.Millisecond, 60*time.Millisecond, 50*time.Millisecond
	cfg.RingTimeout = 200 * time.Millisecond
	nd, err := p.newFn(bubbletest.Transport{Transport: tr, Stalled: p.stalled}, cfg)
	if err != nil {
		p.t.Fatalf("seed %d: start %s: %v", p.seed, id, err)
	}
	p.mu.Lock()
	p.trs[id], p.nodes[id], p.stores[id] = tr, nd, store
	p.mu.Unlock()
	views := nd.Observe(p.ctx) // closed when the node closes
	p.wg.Go(func() {
		for l := range views {
			if l.ID == id {
				p.ledger.leads(id, l.Epoch, life)
			}
		}
	})
}

// leader returns the leader the running nodes name with the highest
// epoch ("" if none).
func (p *powerElectors) leader() transport.NodeID {
	p.mu.Lock()
	defer p.mu.Unlock()
	var best election.Leader
	for _, nd := range p.nodes {
		if l := nd.Leader(); l.Known() && l.Epoch >= best.Epoch {
			best = l
		}
	}
	return best.ID
}

// stop stops node id the way a dead process stops.
func (p *powerElectors) stop(id transport.NodeID) {
	p.mu.Lock()
	nd, store, tr := p.nodes[id], p.stores[id], p.trs[id]
	delete(p.nodes, id)
	delete(p.stores, id)
	delete(p.trs, id)
	p.mu.Unlock()
	if nd != nil {
		nd.Close()
		store.Close()
		tr.Close()
	}
}

// powerCut makes node id's k-th next fsync fail, lets it run into it (or
// not: the power goes wherever the node is after a while), crashes its
// file system and restarts the node on what survived.
func (p *powerElectors) powerCut(id transport.NodeID, k int) {
	p.mu.Lock()
	fs := p.fss[id]
	p.mu.Unlock()
	fs.InjectSyncError(k)
	time.Sleep(100 * time.Millisecond)
	after := fs.Crash()
	p.stop(id)
	p.mu.Lock()
	p.fss[id] = after
	p.mu.Unlock()
	p.start(id)
}

// outage cuts the power of every node at once (each fails its first or
// second next fsync, then all file systems crash together) and restarts
// them all on what survived.
func (p *powerElectors) outage(rng *rand.Rand) {
	for _, id := range p.ids {
		p.mu.Lock()
		fs := p.fss[id]
		p.mu.Unlock()
		fs.InjectSyncError(1 + rng.IntN(2))
	}
	time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
	for _, id := range p.ids {
		p.mu.Lock()
		after := p.fss[id].Crash()
		p.fss[id] = after
		p.mu.Unlock()
		p.stop(id)
	}
	for _, id := range p.ids {
		p.start(id)
	}
}

func testPowerLossEpochs(t *testing.T, newFn func(transport.Transport, election.Config) (*election.Node, error), seed uint64, stalled *atomic.Bool) {
	rng := rand.New(rand.NewPCG(seed, 0xe90c))
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := net.SetFaults(lan); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &powerElectors{
		t: t, seed: seed, net: net, stalled: stalled, newFn: newFn, ctx: ctx,
		ledger: &epochLedger{t: t, seed: seed, led: map[transport.NodeID]leadership{}},
		ids:    []transport.NodeID{"n1", "n2", "n3", "n4", "n5"},
		fss:    map[transport.NodeID]*vfs.CrashFS{}, trs: map[transport.NodeID]*memnet.Transport{},
		nodes: map[transport.NodeID]*election.Node{}, stores: map[transport.NodeID]*election.FileEpochStore{},
		lives: map[transport.NodeID]int{},
	}
	defer func() {
		cancel()
		for _, id := range p.ids {
			p.stop(id)
		}
		p.wg.Wait()
		net.Close()
	}()
	for i, id := range p.ids {
		p.fss[id] = vfs.NewCrashFS(seed*10 + uint64(i))
		p.start(id)
	}
	cuts := 0
	for range 10 {
		time.Sleep(time.Duration(100+rng.IntN(400)) * time.Millisecond)
		// Mostly the leader (a power cut there forces an election and a
		// new epoch), sometimes anyone.
		id := p.ids[rng.IntN(len(p.ids))]
		if l := p.leader(); l != "" && rng.IntN(4) != 0 {
			id = l
		}
		switch rng.IntN(3) {
		case 0:
			// The whole site loses power soon after the leader did:
			// nobody may remember more than what was durable.
			p.powerCut(id, 1+rng.IntN(3))
			time.Sleep(time.Duration(rng.IntN(120)) * time.Millisecond)
			p.outage(rng)
		case 1:
			// The disks of all the others fail their next fsync, so the
			// election after the leader's power cut cannot make its new
			// epoch durable anywhere; then the whole site loses power.
			// Whoever announced that epoch anyway would lead with it
			// again after the restart.
			for _, other := range p.ids {
				if other != id {
					p.mu.Lock()
					p.fss[other].InjectSyncError(1)
					p.mu.Unlock()
				}
			}
			p.powerCut(id, 1+rng.IntN(3))
			time.Sleep(time.Duration(150+rng.IntN(150)) * time.Millisecond)
			p.outage(rng)
		default:
			p.powerCut(id, 1+rng.IntN(3))
		}
		cuts++
	}
	time.Sleep(time.Second)
	p.ledger.mu.Lock()
	wins := p.ledger.wins
	p.ledger.mu.Unlock()
	if wins < 3 {
		t.Fatalf("seed %d: only %d leaderships in the whole run (%d power cuts): the test exercised nothing", seed, wins, cuts)
	}
	t.Logf("seed %d: %d leaderships, %d power cuts", seed, wins, cuts)
}
