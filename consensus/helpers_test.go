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
)

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
	for {
		s.mu.Lock()
		applied, changed := s.applied, s.changed
		s.mu.Unlock()
		if applied >= index {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("applied %d, waiting for %d: %w", applied, index, ctx.Err())
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
