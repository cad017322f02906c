package lock_test

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
	"github.com/distkit/distkit/internal/vfs"
	"github.com/distkit/distkit/lock"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// The test in this file runs the real replicated lock service (three
// lock.Servers, their consensus Nodes on DiskStorage and the WAL) and real
// client Sessions inside a testing/synctest bubble over memnet, so time is
// virtual (leases, keepalives and elections run on it) and a run is
// reproducible from its seed. Each server's data directory lives on a
// vfs.CrashFS of its own; a power cut makes the server's k-th next fsync
// fail (the node must stop there) and then crashes its file system: what
// was not fsynced is lost or torn. The server restarts from what survived.

// TestPowerLossLockService cuts the power of lock servers at seeded points
// while three client sessions take turns holding one lock. Whatever the
// servers lose at a power cut, two rules must hold for every grant a
// client was given (Lock returned it):
//
//   - its fencing token is above every token granted before it (the token
//     counter is durable before any grant carrying it is acknowledged);
//   - no other session still trusts its own grant of the lock (Session.Holds)
//     when it is given (the table is durable before a grant is answered,
//     and a restarted service does not forget a holder).
//
// A failure names the seed; DISTKIT_SEED=N replays it and DISTKIT_SOAK=1
// runs 50 seeds.
func TestPowerLossLockService(t *testing.T) {
	bubbletest.Run(t, []uint64{1, 2}, 50, 20*time.Second,
		"DISTKIT_SEED=%d go test -run TestPowerLossLockService ./lock", testPowerLossLockService)
}

// powerService is a three-server lock service whose servers each live on
// a CrashFS.
type powerService struct {
	t       *testing.T
	seed    uint64
	net     *memnet.Network
	stalled *atomic.Bool

	mu      sync.Mutex // guards the maps and starts
	fss     map[transport.NodeID]*vfs.CrashFS
	trs     map[transport.NodeID]transport.Transport
	rpcs    map[transport.NodeID]*transport.RPC
	members map[transport.NodeID]*lock.Server
	starts  int
}

func (p *powerService) start(id transport.NodeID) {
	p.t.Helper()
	mtr, err := p.net.Join(id)
	if err != nil {
		p.t.Fatalf("seed %d: join %s: %v", p.seed, id, err)
	}
	tr := bubbletest.Transport{Transport: mtr, Stalled: p.stalled}
	rpc, err := transport.NewRPC(tr, transport.DefaultRPCConfig())
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.starts++
	fs, starts := p.fss[id], p.starts
	p.mu.Unlock()
	cfg := lock.DefaultServerConfig()
	cfg.Consensus.ID = id
	cfg.Consensus.Peers = servers
	cfg.Consensus.DataDir = "/data/" + string(id)
	cfg.Consensus.FS = fs
	cfg.Consensus.SnapshotThreshold = 16 // restarts go through snapshots too
	cfg.Consensus.SnapshotRetainEntries = 4
	cfg.Consensus.Seed = p.seed*1000 + uint64(starts)
	cfg.TickInterval = 20 * time.Millisecond
	cfg.WaitPoll = 200 * time.Millisecond
	srv, err := lock.NewServer(cfg, tr, rpc)
	if err != nil {
		p.t.Fatalf("seed %d: start %s (file system seed %d): %v", p.seed, id, fs.Seed(), err)
	}
	p.mu.Lock()
	p.trs[id], p.rpcs[id], p.members[id] = tr, rpc, srv
	p.mu.Unlock()
}

// stop stops server id the way a dead process stops: its server, RPC and
// transport go away (what its file system holds is the test's business).
func (p *powerService) stop(id transport.NodeID) {
	p.mu.Lock()
	srv, rpc, tr := p.members[id], p.rpcs[id], p.trs[id]
	delete(p.members, id)
	delete(p.rpcs, id)
	delete(p.trs, id)
	p.mu.Unlock()
	if srv != nil {
		srv.Close()
		rpc.Close()
		tr.Close()
	}
}

// powerCut makes server id's k-th next fsync fail, waits (bounded) for
// its node to stop on it, crashes its file system and restarts the server
// on what survived.
func (p *powerService) powerCut(id transport.NodeID, k int) {
	p.mu.Lock()
	fs, srv := p.fss[id], p.members[id]
	p.mu.Unlock()
	fs.InjectSyncError(k)
	// A server with nothing to write may take a while to reach its k-th
	// fsync; then the power goes wherever it is.
	for i := 0; i < 40 && srv.Node().Status().Err == nil; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	after := fs.Crash()
	p.stop(id)
	p.mu.Lock()
	p.fss[id] = after
	p.mu.Unlock()
	p.start(id)
}

// hasLeader reports whether some running server leads.
func (p *powerService) hasLeader() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, srv := range p.members {
		if srv.Node().Status().Role == raft.Leader {
			return true
		}
	}
	return false
}

// client joins a client endpoint and returns a Remote on it.
func (p *powerService) client(id transport.NodeID) *lock.Remote {
	mtr, err := p.net.Join(id)
	if err != nil {
		p.t.Fatal(err)
	}
	return remoteOn(p.t, bubbletest.Transport{Transport: mtr, Stalled: p.stalled})
}

// grantLedger checks each acknowledged grant of the lock against those
// before it.
type grantLedger struct {
	t         *testing.T
	seed      uint64
	mu        sync.Mutex // guards the fields below
	last      lock.Token
	holders   map[*lock.Session]lock.Grant // grants not yet released
	grants    int
	violation bool
}

// granted records g, just returned to s by Lock.
func (l *grantLedger) granted(s *lock.Session, g lock.Grant) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.grants++
	if g.Token <= l.last {
		l.failLocked("grant %d: token %d is not above the last acknowledged token %d: the token counter went back", l.grants, g.Token, l.last)
	}
	l.last = max(l.last, g.Token)
	for other, og := range l.holders {
		if tok, ok := other.Holds(og.Name); ok && tok == og.Token {
			l.failLocked("grant %d: session %v was given %q (token %d) while session %v still holds it (token %d, its lease bound %v away)",
				l.grants, s.ID(), g.Name, g.Token, other.ID(), og.Token, time.Until(other.Expiry()))
		}
	}
	l.holders[s] = g
}

// released records that s gave its grant up (or lost it).
func (l *grantLedger) released(s *lock.Session) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.holders, s)
}

func (l *grantLedger) failLocked(format string, args ...any) {
	if !l.violation {
		l.t.Errorf("seed %d: "+format, append([]any{l.seed}, args...)...)
	}
	l.violation = true
}

func (l *grantLedger) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.grants
}

func testPowerLossLockService(t *testing.T, seed uint64, stalled *atomic.Bool) {
	rng := rand.New(rand.NewPCG(seed, 0x10c4))
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	p := &powerService{
		t: t, seed: seed, net: net, stalled: stalled,
		fss: map[transport.NodeID]*vfs.CrashFS{}, trs: map[transport.NodeID]transport.Transport{},
		rpcs: map[transport.NodeID]*transport.RPC{}, members: map[transport.NodeID]*lock.Server{},
	}
	for i, id := range servers {
		p.fss[id] = vfs.NewCrashFS(seed*10 + uint64(i))
		p.start(id)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		// Clients first (a client looping in virtual time would keep the
		// bubble from ever ending), then the servers.
		cancel()
		wg.Wait()
		for _, id := range servers {
			p.stop(id)
		}
		net.Close()
	}()
	for i := 0; !p.hasLeader(); i++ {
		if i == 1000 {
			t.Fatalf("seed %d: no leader after 10 s", seed)
		}
		time.Sleep(10 * time.Millisecond)
	}

	ledger := &grantLedger{t: t, seed: seed, holders: map[*lock.Session]lock.Grant{}}
	for c := range 3 {
		rem := p.client(transport.NodeID(fmt.Sprint("c", c)))
		crng := rand.New(rand.NewPCG(seed, uint64(c)))
		wg.Go(func() { lockClient(ctx, rem, crng, ledger) })
	}
	cuts := 0
	for range 8 {
		time.Sleep(time.Duration(50+rng.IntN(250)) * time.Millisecond)
		id := servers[rng.IntN(len(servers))]
		p.powerCut(id, 1+rng.IntN(6))
		cuts++
	}
	time.Sleep(500 * time.Millisecond)
	if ledger.count() == 0 {
		t.Fatalf("seed %d: no grant in the whole run (%d power cuts)", seed, cuts)
	}
	t.Logf("seed %d: %d grants, %d power cuts", seed, ledger.count(), cuts)
}

// lockClient takes turns at the lock "x" until ctx ends: a session (a new
// one when the last was lost), Lock, hold a little, Unlock.
func lockClient(ctx context.Context, svc lock.Service, rng *rand.Rand, ledger *grantLedger) {
	cfg := lock.DefaultSessionConfig()
	cfg.TTL = time.Second
	var s *lock.Session
	defer func() {
		if s != nil {
			ledger.released(s)
			s.Close()
		}
	}()
	for ctx.Err() == nil {
		if s == nil || !s.Valid() {
			if s != nil {
				ledger.released(s)
				s.Close()
				s = nil
			}
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			ns, err := lock.NewSession(sctx, svc, cfg)
			cancel()
			if err != nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			s = ns
		}
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		g, err := s.Lock(lctx, "x")
		cancel()
		if err != nil {
			if errors.Is(err, lock.ErrLeaseLost) {
				ledger.released(s)
			}
			continue
		}
		ledger.granted(s, g)
		time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
		ledger.released(s) // before Unlock: once Unlock is sent, another may be granted
		uctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		s.Unlock(uctx, g)
		cancel()
	}
}
