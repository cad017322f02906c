package consensus

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// The white-box tests of this package (package consensus) share the
// helpers below. They cannot use consensus/consensustest, which imports
// this package: an internal test importing it would be an import cycle.
// Tests that need only the public API live in package consensus_test and
// use consensustest (memnet_test.go, tcp_test.go, node_test.go,
// transfer_test.go, churn_test.go); keep new ones there when they can.

var three = []transport.NodeID{"n1", "n2", "n3"}

// startThree starts the nodes of three on a fresh, fault-free memnet
// network, each with testConfig (then tweak, if not nil) and the state
// machine sm returns for it. The nodes, their transports and the network
// close when the test ends.
func startThree(t testing.TB, tweak func(*Config), sm func(transport.NodeID) StateMachine) map[transport.NodeID]*Node {
	t.Helper()
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { net.Close() })
	nodes := map[transport.NodeID]*Node{}
	for _, id := range three {
		tr, err := net.Join(id)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		cfg := testConfig(id, three)
		if tweak != nil {
			tweak(&cfg)
		}
		n, err := New(cfg, tr, sm(id))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		nodes[id] = n
	}
	return nodes
}

// newCluster starts three nodes on a fault-free memnet network.
func newCluster(t *testing.T, durable bool, tweak func(*Config)) *cluster {
	c, _ := newMemnetCluster(t, durable, memnet.Faults{}, tweak)
	return c
}

// write proposes key=value through cl and returns the applied index.
func write(ctx context.Context, t *testing.T, cl *Client, key, value string) uint64 {
	t.Helper()
	res, err := cl.Propose(ctx, []byte(key+"="+value))
	if err != nil {
		t.Fatalf("Propose(%s=%s) = %v", key, value, err)
	}
	return res.(uint64)
}

// writeKeys writes PREFIXi=value for i in [0, n) through cl, records each
// acknowledged write in acked, and returns the last applied index.
func writeKeys(ctx context.Context, t *testing.T, cl *Client, acked map[string]string, prefix, value string, n int) uint64 {
	t.Helper()
	var last uint64
	for i := range n {
		k := fmt.Sprintf("%s%d", prefix, i)
		last = write(ctx, t, cl, k, value)
		acked[k] = value
	}
	return last
}

// newMemnetCluster starts three nodes on a memnet network with the given
// faults; tweak (if not nil) adjusts each node's Config.
func newMemnetCluster(t *testing.T, durable bool, faults memnet.Faults, tweak func(*Config)) (*cluster, *memnet.Network) {
	return newMemnetClusterOf(t, three, durable, faults, func(cfg *Config) {
		if tweak != nil {
			tweak(cfg)
		}
	})
}

// newMemnetClusterOf starts the nodes ids (each configured with Peers ids,
// then tweak) on a memnet network with the given faults.
func newMemnetClusterOf(t *testing.T, ids []transport.NodeID, durable bool, faults memnet.Faults, tweak func(*Config)) (*cluster, *memnet.Network) {
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := net.SetFaults(faults); err != nil {
		t.Fatal(err)
	}
	c := &cluster{
		t: t, ids: ids,
		nodes: map[transport.NodeID]*Node{}, sms: map[transport.NodeID]*kvSM{},
		trs: map[transport.NodeID]transport.Transport{}, dirs: map[transport.NodeID]string{},
		tr: func(id transport.NodeID) transport.Transport {
			tr, err := net.Join(id)
			if err != nil {
				t.Fatalf("Join(%s) = %v", id, err)
			}
			return tr
		},
	}
	for _, id := range ids {
		if durable {
			c.dirs[id] = t.TempDir()
		}
	}
	c.cfg = func(id transport.NodeID) Config {
		cfg := testConfig(id, ids)
		cfg.DataDir = c.dirs[id]
		tweak(&cfg)
		return cfg
	}
	for _, id := range ids {
		c.start(id)
	}
	t.Cleanup(func() {
		c.closeAll()
		net.Close()
	})
	return c, net
}

// kvSM is a test state machine: commands "key=value" set a key; Apply
// returns the command's index. waitApplied lets tests block on progress
// instead of polling.
type kvSM struct {
	mu      sync.Mutex // guards every field
	data    map[string]string
	applied uint64
	changed chan struct{} // closed (and replaced) whenever applied moves
}

func newKV() *kvSM { return &kvSM{data: map[string]string{}, changed: make(chan struct{})} }

func (s *kvSM) Apply(e Entry) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, v, _ := strings.Cut(string(e.Command), "=")
	s.data[k] = v
	s.applied = e.Index
	close(s.changed)
	s.changed = make(chan struct{})
	return e.Index
}

func (s *kvSM) Snapshot(w io.Writer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.data))
	for k := range s.data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(w, "%d\n", s.applied)
	for _, k := range keys {
		fmt.Fprintf(w, "%s=%s\n", k, s.data[k])
	}
	return nil
}

func (s *kvSM) Restore(r io.Reader) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := bufio.NewScanner(r)
	s.data = map[string]string{}
	if sc.Scan() {
		fmt.Sscan(sc.Text(), &s.applied)
	}
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		s.data[k] = v
	}
	close(s.changed)
	s.changed = make(chan struct{})
	return sc.Err()
}

func (s *kvSM) get(k string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.data[k]
	return v, ok
}

// waitApplied blocks until the state machine has applied index or ctx ends.
func (s *kvSM) waitApplied(ctx context.Context, index uint64) error {
	return waitUntilApplied(ctx, &s.mu, &s.applied, &s.changed, index)
}

// waitUntilApplied blocks until *applied reaches index or ctx ends, for a
// test state machine that guards applied and changed with mu and closes
// (and replaces) changed whenever applied moves.
func waitUntilApplied(ctx context.Context, mu *sync.Mutex, applied *uint64, changed *chan struct{}, index uint64) error {
	for {
		mu.Lock()
		a, c := *applied, *changed
		mu.Unlock()
		if a >= index {
			return nil
		}
		select {
		case <-c:
		case <-ctx.Done():
			return fmt.Errorf("applied %d, waiting for %d: %w", a, index, ctx.Err())
		}
	}
}

// testConfig returns a config with short timeouts for tests.
func testConfig(id transport.NodeID, peers []transport.NodeID) Config {
	cfg := DefaultConfig()
	cfg.ID = id
	cfg.Peers = peers
	cfg.TickInterval = 5 * time.Millisecond
	cfg.ElectionTicks = 10
	return cfg
}

// cluster is a set of nodes on one network, for tests.
type cluster struct {
	t     *testing.T
	ids   []transport.NodeID
	nodes map[transport.NodeID]*Node
	sms   map[transport.NodeID]*kvSM
	trs   map[transport.NodeID]transport.Transport
	dirs  map[transport.NodeID]string
	cfg   func(id transport.NodeID) Config
	tr    func(id transport.NodeID) transport.Transport
}

func (c *cluster) start(id transport.NodeID) {
	c.t.Helper()
	if c.trs[id] == nil {
		c.trs[id] = c.tr(id)
	}
	sm := newKV()
	n, err := New(c.cfg(id), c.trs[id], sm)
	if err != nil {
		c.t.Fatalf("New(%s) = %v", id, err)
	}
	c.nodes[id], c.sms[id] = n, sm
}

func (c *cluster) stop(id transport.NodeID) {
	c.t.Helper()
	if n := c.nodes[id]; n != nil {
		if err := n.Close(); err != nil {
			c.t.Errorf("Close(%s) = %v", id, err)
		}
		delete(c.nodes, id)
	}
}

func (c *cluster) client() *Client {
	c.t.Helper()
	members := map[transport.NodeID]Proposer{}
	for id, n := range c.nodes {
		members[id] = n
	}
	cl, err := NewClient(members, DefaultClientConfig())
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

func (c *cluster) closeAll() {
	for _, id := range c.ids {
		c.stop(id)
	}
	for _, tr := range c.trs {
		tr.Close()
	}
}

// others returns the cluster's nodes other than id, in ID order.
func (c *cluster) others(id transport.NodeID) []transport.NodeID {
	var out []transport.NodeID
	for _, o := range c.ids {
		if o != id {
			out = append(out, o)
		}
	}
	return out
}

// leader returns the node that leads according to a majority's status, by
// proposing through a client (which finds the leader) and asking it.
func (c *cluster) leader(ctx context.Context) transport.NodeID {
	c.t.Helper()
	cl := c.client()
	if _, err := cl.Propose(ctx, []byte("probe=1")); err != nil {
		c.t.Fatalf("no leader: %v", err)
	}
	return cl.Leader()
}
