package lock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/election"
	"github.com/distkit/distkit/lock"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
	"github.com/distkit/distkit/transport/tcp"
)

var servers = []transport.NodeID{"s1", "s2", "s3"}

// replicated is a three-member lock service plus client endpoints, on
// memnet or loopback TCP.
type replicated struct {
	t       testing.TB
	join    func(id transport.NodeID) transport.Transport
	dirs    map[transport.NodeID]string
	trs     map[transport.NodeID]transport.Transport
	rpcs    map[transport.NodeID]*transport.RPC
	members map[transport.NodeID]*lock.Server
}

func newMemnetService(t testing.TB, durable bool) (*replicated, *memnet.Network) {
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	r := newReplicated(t, durable, func(id transport.NodeID) transport.Transport {
		tr, err := net.Join(id)
		if err != nil {
			t.Fatalf("Join(%s) = %v", id, err)
		}
		return tr
	})
	t.Cleanup(func() { net.Close() })
	return r, net
}

func newTCPService(t testing.TB) *replicated {
	addrs := map[transport.NodeID]string{}
	var all []*tcp.Transport
	join := func(id transport.NodeID) transport.Transport {
		cfg := tcp.DefaultConfig()
		cfg.ID = id
		cfg.ListenAddr = "127.0.0.1:0"
		cfg.MinBackoff = 5 * time.Millisecond
		cfg.MaxBackoff = 50 * time.Millisecond
		tr, err := tcp.Listen(cfg)
		if err != nil {
			t.Fatalf("tcp.Listen(%s) = %v", id, err)
		}
		addrs[id] = tr.Addr().String()
		for _, other := range all {
			if err := other.AddPeer(id, addrs[id]); err != nil {
				t.Fatal(err)
			}
			if err := tr.AddPeer(other.ID(), addrs[other.ID()]); err != nil {
				t.Fatal(err)
			}
		}
		all = append(all, tr)
		return tr
	}
	return newReplicated(t, false, join)
}

func newReplicated(t testing.TB, durable bool, join func(transport.NodeID) transport.Transport) *replicated {
	r := &replicated{
		t: t, join: join, dirs: map[transport.NodeID]string{},
		trs: map[transport.NodeID]transport.Transport{}, rpcs: map[transport.NodeID]*transport.RPC{},
		members: map[transport.NodeID]*lock.Server{},
	}
	for _, id := range servers {
		r.trs[id] = join(id)
		if durable {
			r.dirs[id] = t.TempDir()
		}
	}
	for _, id := range servers {
		r.start(id)
	}
	t.Cleanup(r.closeAll)
	r.leader() // so that the first session does not start during an election
	return r
}

func (r *replicated) start(id transport.NodeID) {
	if r.trs[id] == nil {
		r.trs[id] = r.join(id)
	}
	rpc, err := transport.NewRPC(r.trs[id], transport.DefaultRPCConfig())
	if err != nil {
		r.t.Fatal(err)
	}
	cfg := lock.DefaultServerConfig()
	cfg.Consensus.ID = id
	cfg.Consensus.Peers = servers
	cfg.Consensus.DataDir = r.dirs[id]
	cfg.Consensus.Seed = uint64(len(id)) + uint64(id[len(id)-1])
	cfg.TickInterval = 20 * time.Millisecond
	cfg.WaitPoll = 200 * time.Millisecond
	srv, err := lock.NewServer(cfg, r.trs[id], rpc)
	if err != nil {
		r.t.Fatalf("NewServer(%s) = %v", id, err)
	}
	r.rpcs[id], r.members[id] = rpc, srv
}

// kill stops member id as if its process died: server, RPC and transport.
func (r *replicated) kill(id transport.NodeID) {
	if srv := r.members[id]; srv != nil {
		srv.Close()
		r.rpcs[id].Close()
		r.trs[id].Close()
		delete(r.members, id)
		delete(r.rpcs, id)
		delete(r.trs, id)
	}
}

func (r *replicated) closeAll() {
	for _, id := range servers {
		r.kill(id)
	}
}

// leader waits until some live member leads and returns it.
func (r *replicated) leader() transport.NodeID {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		for _, id := range servers {
			if srv := r.members[id]; srv != nil && srv.Node().Status().Role == raft.Leader {
				return id
			}
		}
		select {
		case <-ctx.Done():
			r.t.Fatal("no leader elected")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// client joins a client endpoint and returns a Remote on it.
func (r *replicated) client(id transport.NodeID) *lock.Remote {
	return remoteOn(r.t, r.join(id))
}

// remoteOn returns a Remote of the servers over an RPC endpoint on tr; the
// test's cleanup closes both.
func remoteOn(t testing.TB, tr transport.Transport) *lock.Remote {
	t.Helper()
	rpc, err := transport.NewRPC(tr, transport.DefaultRPCConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		rpc.Close()
		tr.Close()
	})
	cfg := lock.DefaultRemoteConfig()
	cfg.Servers = servers
	cfg.WaitPoll = 200 * time.Millisecond
	rem, err := lock.NewRemote(rpc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rem
}

func TestReplicatedLockSurvivesLeaderCrash(t *testing.T) {
	r, _ := newMemnetService(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a := newSession(t, r.client("ca"), 2*time.Second)
	b := newSession(t, r.client("cb"), 2*time.Second)
	ga, err := a.Lock(ctx, "x")
	if err != nil {
		t.Fatalf("a.Lock = %v", err)
	}
	type result struct {
		g   lock.Grant
		err error
	}
	bc := make(chan result, 1)
	go func() {
		g, err := b.Lock(ctx, "x")
		bc <- result{g, err}
	}()
	r.kill(r.leader())
	r.leader() // a new one
	// a's lease survives the failover: the new leader extended it.
	if _, err := a.Lock(ctx, "y"); err != nil {
		t.Fatalf("a.Lock(y) after failover = %v", err)
	}
	if !a.Valid() {
		t.Fatalf("a lost its lease across the failover: %v", a.Err())
	}
	if err := a.Unlock(ctx, ga); err != nil {
		t.Fatalf("a.Unlock = %v", err)
	}
	res := <-bc
	if res.err != nil || res.g.Token <= ga.Token {
		t.Fatalf("b.Lock = %+v, %v; want a grant with a token above %d", res.g, res.err, ga.Token)
	}
	// A linearizable read through the log sees b.
	resp, err := r.client("reader").Do(ctx, lock.Request{Op: lock.OpHolder, Name: "x"})
	if err != nil || !resp.Granted || resp.Grant.Session != b.ID() || resp.Grant.Token != res.g.Token {
		t.Errorf("Holder(x) = %+v, %v; want b's grant %+v", resp, err, res.g)
	}
}

func TestReplicatedLeaseExpiresWhenTheClientIsCutOff(t *testing.T) {
	r, net := newMemnetService(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a := newSession(t, r.client("ca"), 500*time.Millisecond)
	b := newSession(t, r.client("cb"), 2*time.Second)
	ga, err := a.Lock(ctx, "x")
	if err != nil {
		t.Fatalf("a.Lock = %v", err)
	}
	net.Isolate("ca")
	gb, err := b.Lock(ctx, "x")
	if err != nil {
		t.Fatalf("b.Lock = %v", err)
	}
	// Safety: by the time the service granted b the lock, a's own bound
	// had passed (it lies before the service's expiry of a's lease).
	if a.Valid() {
		t.Errorf("a still trusts its lease while b holds the lock")
	}
	<-a.Done()
	if !errors.Is(a.Err(), lock.ErrLeaseLost) {
		t.Errorf("a.Err = %v; want ErrLeaseLost", a.Err())
	}
	if gb.Token <= ga.Token {
		t.Errorf("b's token %d is not above a's %d", gb.Token, ga.Token)
	}
	net.Heal()
}

func TestReplicatedTokensSurviveRestart(t *testing.T) {
	r, _ := newMemnetService(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a := newSession(t, r.client("ca"), 2*time.Second)
	var last lock.Token
	for range 3 {
		g, err := a.Lock(ctx, "x")
		if err != nil {
			t.Fatalf("Lock = %v", err)
		}
		last = g.Token
		a.Unlock(ctx, g)
	}
	a.Close()
	r.closeAll()
	for _, id := range servers {
		r.start(id)
	}
	b := newSession(t, r.client("cb"), 2*time.Second)
	g, err := b.Lock(ctx, "x")
	if err != nil {
		t.Fatalf("Lock after restart = %v", err)
	}
	if g.Token <= last {
		t.Errorf("token after restart = %d; want above %d", g.Token, last)
	}
}

func TestReplicatedOverTCP(t *testing.T) {
	r := newTCPService(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a := newSession(t, r.client("ca"), 2*time.Second)
	b := newSession(t, r.client("cb"), 2*time.Second)
	ga, err := a.Lock(ctx, "x")
	if err != nil {
		t.Fatalf("a.Lock = %v", err)
	}
	if _, err := b.TryLock(ctx, "x"); !errors.Is(err, lock.ErrLocked) {
		t.Errorf("b.TryLock = %v; want ErrLocked", err)
	}
	if err := a.Unlock(ctx, ga); err != nil {
		t.Fatalf("a.Unlock = %v", err)
	}
	gb, err := b.TryLock(ctx, "x")
	if err != nil || gb.Token <= ga.Token {
		t.Errorf("b.TryLock after unlock = %+v, %v; want a token above %d", gb, err, ga.Token)
	}
}

func TestReplicatedElectorKeepsLeadershipAcrossFailover(t *testing.T) {
	r, _ := newMemnetService(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	elect := func(id transport.NodeID) *lock.Elector {
		cfg := lock.DefaultElectorConfig()
		cfg.ID = id
		cfg.Session.TTL = 2 * time.Second
		e, err := lock.NewElector(r.client(id), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}
	n1, n2 := elect("n1"), elect("n2")
	won, err := n1.Campaign(ctx)
	if err != nil {
		t.Fatalf("n1.Campaign = %v", err)
	}
	r.kill(r.leader())
	r.leader()
	if got := n1.Leader(); got != won {
		t.Errorf("n1.Leader after the lock cluster's failover = %+v; want %+v (the lease was extended)", got, won)
	}
	// A newcomer reads the election lock through the new leader's log.
	n3 := elect("n3")
	seen := waitFor(t, n3.Observe(ctx), "n3 sees a leader", func(v election.Leader) bool { return v.Known() })
	if seen != won {
		t.Errorf("n3 observes %+v after the failover; want %+v", seen, won)
	}
	if err := n1.Resign(ctx); err != nil {
		t.Fatalf("n1.Resign = %v", err)
	}
	next, err := n2.Campaign(ctx)
	if err != nil || next.ID != "n2" || next.Epoch <= won.Epoch {
		t.Errorf("n2.Campaign = %+v, %v; want n2 with an epoch above %d", next, err, won.Epoch)
	}
}

func TestReplicatedConfigValidate(t *testing.T) {
	server := func(edit func(*lock.ServerConfig)) lock.ServerConfig {
		c := lock.DefaultServerConfig()
		edit(&c)
		return c
	}
	remote := func(edit func(*lock.RemoteConfig)) lock.RemoteConfig {
		c := lock.DefaultRemoteConfig()
		c.Servers = servers
		edit(&c)
		return c
	}
	tests := []struct {
		name string
		err  error
	}{
		{"server: empty service", server(func(c *lock.ServerConfig) { c.Service = "" }).Validate()},
		{"server: zero tick", server(func(c *lock.ServerConfig) { c.TickInterval = 0 }).Validate()},
		{"server: zero wait poll", server(func(c *lock.ServerConfig) { c.WaitPoll = 0 }).Validate()},
		{"server: bad table", server(func(c *lock.ServerConfig) { c.Table.MinTTL = 0 }).Validate()},
		{"remote: no servers", remote(func(c *lock.RemoteConfig) { c.Servers = nil }).Validate()},
		{"remote: repeated server", remote(func(c *lock.RemoteConfig) { c.Servers = []transport.NodeID{"a", "a"} }).Validate()},
		{"remote: zero timeout", remote(func(c *lock.RemoteConfig) { c.AttemptTimeout = 0 }).Validate()},
		{"remote: empty service", remote(func(c *lock.RemoteConfig) { c.Service = "" }).Validate()},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, lock.ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v; want ErrInvalidConfig", tt.name, tt.err)
		}
	}
	if _, err := lock.NewServer(lock.DefaultServerConfig(), nil, nil); !errors.Is(err, lock.ErrInvalidConfig) {
		t.Errorf("NewServer(nil transport) = %v; want ErrInvalidConfig", err)
	}
	if _, err := lock.NewRemote(nil, remote(func(*lock.RemoteConfig) {})); !errors.Is(err, lock.ErrInvalidConfig) {
		t.Errorf("NewRemote(nil RPC) = %v; want ErrInvalidConfig", err)
	}
}
