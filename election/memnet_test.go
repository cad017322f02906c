package election_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/election"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// runtimes are the Bully and Ring runtime constructors.
var runtimes = []struct {
	name string
	new  func(transport.Transport, election.Config) (*election.Node, error)
}{
	{"bully", election.NewBully},
	{"ring", election.NewRing},
}

// memCluster is five runtime electors on a memnet network.
type memCluster struct {
	t      *testing.T
	net    *memnet.Network
	ids    []transport.NodeID
	trs    map[transport.NodeID]*memnet.Transport
	nodes  map[transport.NodeID]*election.Node
	stores map[transport.NodeID]*election.FileEpochStore // each node's locked epoch file, closed when it is killed
	newFn  func(transport.Transport, election.Config) (*election.Node, error)
	dir    string // each node's epoch file is here, so a revived node resumes
}

func newMemCluster(t *testing.T, n int, newFn func(transport.Transport, election.Config) (*election.Node, error), faults memnet.Faults) *memCluster {
	t.Helper()
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := net.SetFaults(faults); err != nil {
		t.Fatal(err)
	}
	c := &memCluster{t: t, net: net, trs: map[transport.NodeID]*memnet.Transport{}, nodes: map[transport.NodeID]*election.Node{}, stores: map[transport.NodeID]*election.FileEpochStore{}, newFn: newFn, dir: t.TempDir()}
	for i := 1; i <= n; i++ {
		id := transport.NodeID(fmt.Sprintf("n%d", i))
		c.ids = append(c.ids, id)
		tr, err := net.Join(id)
		if err != nil {
			t.Fatal(err)
		}
		c.trs[id] = tr
	}
	for _, id := range c.ids {
		c.start(id)
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			nd.Close()
		}
		for _, st := range c.stores {
			st.Close()
		}
		net.Close()
	})
	return c
}

func (c *memCluster) start(id transport.NodeID) {
	cfg := election.DefaultConfig()
	cfg.ID, cfg.Members = id, election.MembersByOrder(c.ids...)
	cfg.Detector.HeartbeatInterval = 20 * time.Millisecond
	cfg.Detector.ProbeTimeout = 20 * time.Millisecond
	cfg.Detector.CheckInterval = 5 * time.Millisecond
	cfg.ElectionTimeout, cfg.CoordinatorTimeout, cfg.BootDelay = 20*time.Millisecond, 60*time.Millisecond, 50*time.Millisecond
	cfg.RingTimeout = 200 * time.Millisecond
	store, err := election.OpenFileEpochStore(filepath.Join(c.dir, string(id)+".epoch"), election.EpochStoreOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	c.stores[id] = store
	cfg.Store = store
	nd, err := c.newFn(c.trs[id], cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.nodes[id] = nd
}

// kill crashes id: the network loses everything to and from it, then its
// elector stops (its parting resignation is lost with the rest).
func (c *memCluster) kill(id transport.NodeID) {
	if err := c.net.Crash(id); err != nil {
		c.t.Fatal(err)
	}
	c.nodes[id].Close()
	c.stores[id].Close() // the process is gone: so is its lock on the file
	delete(c.nodes, id)
}

func (c *memCluster) revive(id transport.NodeID) {
	if err := c.net.Restart(id); err != nil {
		c.t.Fatal(err)
	}
	c.start(id)
}

// await waits (on each node's Observe channel, no polling) until every
// running node names want with an epoch above after, and returns it.
func (c *memCluster) await(want transport.NodeID, after uint64) election.Leader {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got election.Leader
	for _, id := range c.ids {
		nd := c.nodes[id]
		if nd == nil {
			continue
		}
		ok := false
		for l := range nd.Observe(ctx) {
			if l.ID == want && l.Epoch > after {
				got, ok = l, true
				break
			}
		}
		if !ok {
			c.t.Fatalf("%s never named %s above epoch %d; last view %+v", id, want, after, nd.Leader())
		}
	}
	return got
}

var (
	lan   = memnet.Faults{MinDelay: 100 * time.Microsecond, MaxDelay: time.Millisecond}
	lossy = memnet.Faults{Drop: 0.05, Duplicate: 0.02, MinDelay: 100 * time.Microsecond, MaxDelay: 2 * time.Millisecond}
)

func TestRuntimeFailover(t *testing.T) {
	for _, rt := range runtimes {
		for _, net := range []struct {
			name   string
			faults memnet.Faults
		}{{"lan", lan}, {"lossy", lossy}} {
			// In virtual time (synctest): the failure detectors' and
			// elections' timeouts never fire early because the machine is
			// busy, so the run is the same under any load.
			t.Run(rt.name+"/"+net.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) { runtimeFailover(t, rt.new, net.faults) })
			})
		}
	}
}

func runtimeFailover(t *testing.T, newFn func(transport.Transport, election.Config) (*election.Node, error), faults memnet.Faults) {
	c := newMemCluster(t, 5, newFn, faults)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	won, err := c.nodes["n5"].Campaign(ctx)
	if err != nil || won.ID != "n5" {
		t.Fatalf("n5.Campaign() = %+v, %v; want n5 leading", won, err)
	}
	first := c.await("n5", 0)
	if st := c.nodes["n5"].Stats(); st.Won == 0 || st.ElectionMessages == 0 || st.Heartbeats == 0 {
		t.Errorf("n5.Stats() = %+v; want a won election, election messages and heartbeats", st)
	}

	c.kill("n5")
	second := c.await("n4", first.Epoch)

	c.revive("n5")
	// It boots from its epoch file: the epoch it led, no leader known yet,
	// never the 0 a node without a durable epoch would report.
	if got := c.nodes["n5"].Leader(); got.Known() || got.Epoch < first.Epoch {
		t.Errorf("revived n5.Leader() = %+v; want no leader at epoch >= %d", got, first.Epoch)
	}
	third := c.await("n5", second.Epoch)
	if !(first.Epoch < second.Epoch && second.Epoch < third.Epoch) {
		t.Errorf("epochs %d, %d, %d; want increasing", first.Epoch, second.Epoch, third.Epoch)
	}

	// n5 resigns: n4 takes over; n5 campaigns again and takes back.
	if err := c.nodes["n5"].Resign(ctx); err != nil {
		t.Fatal(err)
	}
	fourth := c.await("n4", third.Epoch)
	won, err = c.nodes["n5"].Campaign(ctx)
	if err != nil || won.ID != "n5" || won.Epoch <= fourth.Epoch {
		t.Fatalf("n5.Campaign() after resigning = %+v, %v; want n5 above epoch %d", won, err, fourth.Epoch)
	}
}

func TestRuntimeCampaignEndsWithContextAndClose(t *testing.T) {
	for _, rt := range runtimes {
		t.Run(rt.name, func(t *testing.T) {
			c := newMemCluster(t, 3, rt.new, lan)
			c.await("n3", 0)
			// n1 can never lead while n3 lives: Campaign waits for ctx.
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if _, err := c.nodes["n1"].Campaign(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("n1.Campaign() error = %v; want context.DeadlineExceeded", err)
			}
			nd := c.nodes["n1"]
			//lint:ignore SA1012 a nil context is the bad input under test
			if _, err := nd.Campaign(nil); !errors.Is(err, election.ErrNilContext) {
				t.Errorf("Campaign(nil) error = %v; want ErrNilContext", err)
			}
			//lint:ignore SA1012 a nil context is the bad input under test
			if err := nd.Resign(nil); !errors.Is(err, election.ErrNilContext) {
				t.Errorf("Resign(nil) error = %v; want ErrNilContext", err)
			}
			//lint:ignore SA1012 a nil context is the bad input under test
			if _, ok := <-nd.Observe(nil); ok {
				t.Errorf("Observe(nil) returned an open channel; want a closed one")
			}
			done := make(chan error, 1)
			go func() {
				_, err := nd.Campaign(context.Background())
				done <- err
			}()
			nd.Close()
			if err := <-done; !errors.Is(err, election.ErrClosed) {
				t.Errorf("Campaign() during Close = %v; want ErrClosed", err)
			}
			if err := nd.Resign(context.Background()); !errors.Is(err, election.ErrClosed) {
				t.Errorf("Resign() after Close = %v; want ErrClosed", err)
			}
			if err := nd.Close(); err != nil {
				t.Errorf("second Close() = %v; want nil", err)
			}
			if _, ok := <-nd.Observe(context.Background()); ok {
				t.Errorf("Observe() after Close returned an open channel")
			}
			delete(c.nodes, "n1")
		})
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	tr, _ := net.Join("a")
	good := election.DefaultConfig()
	good.ID, good.Members = "a", election.MembersByOrder("a", "b")
	tests := []struct {
		name string
		tr   transport.Transport
		mod  func(*election.Config)
	}{
		{"nil transport", nil, func(*election.Config) {}},
		{"transport of another node", tr, func(c *election.Config) { c.ID = "b" }},
		{"empty ID", tr, func(c *election.Config) { c.ID = "" }},
		{"ID not a member", tr, func(c *election.Config) { c.Members = election.MembersByOrder("b", "c") }},
		{"no members", tr, func(c *election.Config) { c.Members = nil }},
		{"duplicate priority", tr, func(c *election.Config) { c.Members = []election.Member{{"a", 1}, {"b", 1}} }},
		{"duplicate ID", tr, func(c *election.Config) { c.Members = []election.Member{{"a", 1}, {"a", 2}} }},
		{"empty member ID", tr, func(c *election.Config) { c.Members = []election.Member{{"a", 1}, {"", 2}} }},
		{"zero election timeout", tr, func(c *election.Config) { c.ElectionTimeout = 0 }},
		{"zero coordinator timeout", tr, func(c *election.Config) { c.CoordinatorTimeout = 0 }},
		{"zero ring timeout", tr, func(c *election.Config) { c.RingTimeout = 0 }},
		{"negative boot delay", tr, func(c *election.Config) { c.BootDelay = -1 }},
		{"empty service", tr, func(c *election.Config) { c.Service = "" }},
		{"bad detector", tr, func(c *election.Config) { c.Detector.HeartbeatInterval = 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.mod(&cfg)
			for _, rt := range runtimes {
				if nd, err := rt.new(tt.tr, cfg); !errors.Is(err, election.ErrInvalidConfig) {
					if nd != nil {
						nd.Close()
					}
					t.Errorf("%s: error = %v; want ErrInvalidConfig", rt.name, err)
				}
			}
		})
	}
	raftTests := []struct {
		name string
		node election.RaftNode
		cfg  election.RaftConfig
	}{
		{"nil node", nil, election.DefaultRaftConfig()},
		{"typed nil node", (*consensus.Node)(nil), election.DefaultRaftConfig()},
		{"node without an ID", noID{}, election.DefaultRaftConfig()},
		{"zero poll interval", noID{}, election.RaftConfig{}},
	}
	for _, tt := range raftTests {
		if el, err := election.NewRaft(tt.node, tt.cfg); !errors.Is(err, election.ErrInvalidConfig) {
			if el != nil {
				el.Close()
			}
			t.Errorf("NewRaft(%s) error = %v; want ErrInvalidConfig", tt.name, err)
		}
	}
}

// noID is a Raft node whose Status names no node.
type noID struct{}

func (noID) Status() consensus.Status { return consensus.Status{} }

// nopSM is a state machine with no state: the Raft elector needs Raft, not
// a replicated service.
type nopSM struct{}

func (nopSM) Apply(consensus.Entry) any { return nil }
func (nopSM) Snapshot(io.Writer) error  { return nil }
func (nopSM) Restore(io.Reader) error   { return nil }

// TestRaftElectorFailover: the Raft leader is reported with its term;
// when it stops, a new leader with a higher term is reported everywhere.
func TestRaftElectorFailover(t *testing.T) {
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	ids := []transport.NodeID{"r1", "r2", "r3"}
	nodes := map[transport.NodeID]*consensus.Node{}
	electors := map[transport.NodeID]*election.RaftElector{}
	for _, id := range ids {
		tr, err := net.Join(id)
		if err != nil {
			t.Fatal(err)
		}
		cfg := consensus.DefaultConfig()
		cfg.ID, cfg.Peers = id, ids
		nd, err := consensus.New(cfg, tr, nopSM{})
		if err != nil {
			t.Fatal(err)
		}
		nodes[id] = nd
		el, err := election.NewRaft(nd, election.DefaultRaftConfig())
		if err != nil {
			t.Fatal(err)
		}
		electors[id] = el
	}
	defer func() {
		for _, id := range ids {
			electors[id].Close()
			nodes[id].Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	first := awaitAny(t, ctx, electors, ids, 0)
	// Resign on the leader transfers leadership (consensus.Node can).
	if err := electors[first.ID].Resign(ctx); err != nil {
		t.Errorf("leader Resign() = %v; want nil (leadership transferred)", err)
	}
	if st := nodes[first.ID].Status(); st.Leader == first.ID || st.Leader == "" {
		t.Errorf("after Resign, %s sees leader %q; want another node", first.ID, st.Leader)
	}
	//lint:ignore SA1012 a nil context is the bad input under test
	if _, err := electors[first.ID].Campaign(nil); !errors.Is(err, election.ErrNilContext) {
		t.Errorf("RaftElector.Campaign(nil) error = %v; want ErrNilContext", err)
	}
	//lint:ignore SA1012 a nil context is the bad input under test
	if err := electors[first.ID].Resign(nil); !errors.Is(err, election.ErrNilContext) {
		t.Errorf("RaftElector.Resign(nil) error = %v; want ErrNilContext", err)
	}
	// Stop the leader: the others elect a new one in a higher term.
	if err := net.Crash(first.ID); err != nil {
		t.Fatal(err)
	}
	var rest []transport.NodeID
	for _, id := range ids {
		if id != first.ID {
			rest = append(rest, id)
		}
	}
	second := awaitAny(t, ctx, electors, rest, first.Epoch)
	if second.ID == first.ID {
		t.Fatalf("leader still %s after it crashed", first.ID)
	}
	won, err := electors[second.ID].Campaign(ctx)
	if err != nil || won != second {
		t.Errorf("Campaign() on the leader = %+v, %v; want %+v", won, err, second)
	}

	// Bring the old leader back, then cut the current leader off: the
	// majority side elects a new leader in a higher term, and the
	// isolated node never reports a leader at that term or above.
	if err := net.Restart(first.ID); err != nil {
		t.Fatal(err)
	}
	third := awaitAny(t, ctx, electors, ids, 0)
	var others []transport.NodeID
	for _, id := range ids {
		if id != third.ID {
			others = append(others, id)
		}
	}
	net.Partition([]transport.NodeID{third.ID}, others)
	fourth := awaitAny(t, ctx, electors, others, third.Epoch) // the majority side elects
	if fourth.ID == third.ID {
		t.Fatalf("isolated %s still elected", third.ID)
	}
	if l := electors[third.ID].Leader(); l.Epoch >= fourth.Epoch && l.Known() {
		t.Errorf("minority node reports %+v at or above the majority's term %d", l, fourth.Epoch)
	}
	net.Heal()
	awaitAny(t, ctx, electors, ids, third.Epoch)
}

// awaitAny waits until every elector in ids reports the same known leader
// with a term above after, reading each elector's Observe channel (no
// polling): the highest view seen becomes the target, and every elector
// must reach it.
func awaitAny(t *testing.T, ctx context.Context, els map[transport.NodeID]*election.RaftElector, ids []transport.NodeID, after uint64) election.Leader {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	chans := map[transport.NodeID]<-chan election.Leader{}
	last := map[transport.NodeID]election.Leader{}
	for _, id := range ids {
		chans[id] = els[id].Observe(ctx)
	}
	var want election.Leader
	for {
		raised := false
		for _, id := range ids {
			for last[id] != want || !want.Known() {
				l, ok := <-chans[id]
				if !ok {
					t.Fatalf("%s: no agreed leader above term %d; views %v, target %+v", id, after, last, want)
				}
				last[id] = l
				if l.Known() && l.Epoch > after && l.Epoch > want.Epoch {
					want, raised = l, true
					break
				}
			}
			if raised {
				break
			}
		}
		if !raised {
			return want
		}
	}
}

// lone returns the transport of id on a network of its own, closed when
// the test ends.
func lone(t *testing.T, id transport.NodeID) transport.Transport {
	t.Helper()
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { net.Close() })
	tr, err := net.Join(id)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// brokenStore loads 0 and fails every Save, like a full or failed disk.
type brokenStore struct{}

var errDiskFull = errors.New("disk full")

func (brokenStore) Load() (uint64, error) { return 0, nil }
func (brokenStore) Save(uint64) error     { return errDiskFull }

// TestRuntimeStopsWhenEpochCannotBeSaved: a node that cannot make its
// epoch durable sends nothing and stops; Campaign and Resign say why.
func TestRuntimeStopsWhenEpochCannotBeSaved(t *testing.T) {
	for _, rt := range runtimes {
		t.Run(rt.name, func(t *testing.T) {
			tr := lone(t, "a")
			cfg := election.DefaultConfig()
			cfg.ID, cfg.Members, cfg.Store, cfg.BootDelay = "a", election.MembersByOrder("a"), brokenStore{}, 0
			nd, err := rt.new(tr, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer nd.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// Alone, it would win epoch 1 at once; saving it fails.
			if l, err := nd.Campaign(ctx); !errors.Is(err, election.ErrStore) || !errors.Is(err, errDiskFull) {
				t.Fatalf("Campaign() = %+v, %v; want ErrStore wrapping the disk error", l, err)
			}
			if got := nd.Leader(); got.Known() {
				t.Errorf("Leader() = %+v; want none: the epoch was never durable", got)
			}
			if err := nd.Resign(ctx); !errors.Is(err, election.ErrStore) {
				t.Errorf("Resign() = %v; want ErrStore", err)
			}
		})
	}
}

// TestNewRejectsCorruptEpochFile: a damaged epoch file stops the start
// with ErrCorruptEpoch instead of starting silently from epoch 0.
func TestNewRejectsCorruptEpochFile(t *testing.T) {
	tr := lone(t, "a")
	path := filepath.Join(t.TempDir(), "epoch")
	if err := os.WriteFile(path, []byte("not an epoch record"), 0o644); err != nil {
		t.Fatal(err)
	}
	store, err := election.NewFileEpochStore(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := election.DefaultConfig()
	cfg.ID, cfg.Members, cfg.Store = "a", election.MembersByOrder("a", "b"), store
	for _, rt := range runtimes {
		if nd, err := rt.new(tr, cfg); !errors.Is(err, election.ErrCorruptEpoch) {
			if nd != nil {
				nd.Close()
			}
			t.Errorf("%s: error = %v; want ErrCorruptEpoch", rt.name, err)
		}
	}
}
