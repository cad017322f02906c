package consensus

import (
	"context"
	"testing"
	"time"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/tcp"
)

// newTCPCluster starts three durable nodes over loopback TCP. A node
// restarted with c.start listens again on its first address.
func newTCPCluster(t *testing.T) *cluster {
	addrs := map[transport.NodeID]string{}
	listen := func(id transport.NodeID, addr string) *tcp.Transport {
		cfg := tcp.DefaultConfig()
		cfg.ID = id
		cfg.MinBackoff = 5 * time.Millisecond
		cfg.MaxBackoff = 50 * time.Millisecond
		if addr != "" {
			cfg.ListenAddr = addr
		}
		tr, err := tcp.Listen(cfg)
		if err != nil {
			t.Fatalf("tcp.Listen(%s) = %v", id, err)
		}
		return tr
	}
	c := &cluster{
		t: t, ids: three,
		nodes: map[transport.NodeID]*Node{}, sms: map[transport.NodeID]*kvSM{},
		trs: map[transport.NodeID]transport.Transport{}, dirs: map[transport.NodeID]string{},
	}
	var first []*tcp.Transport
	for _, id := range three {
		tr := listen(id, "")
		addrs[id] = tr.Addr().String()
		c.trs[id] = tr
		first = append(first, tr)
		c.dirs[id] = t.TempDir()
	}
	for _, tr := range first {
		for _, p := range three {
			if p != tr.ID() {
				if err := tr.AddPeer(p, addrs[p]); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	c.tr = func(id transport.NodeID) transport.Transport {
		tr := listen(id, addrs[id])
		for _, p := range three {
			if p != id {
				tr.AddPeer(p, addrs[p])
			}
		}
		return tr
	}
	c.cfg = func(id transport.NodeID) Config {
		cfg := testConfig(id, three)
		cfg.DataDir = c.dirs[id]
		return cfg
	}
	for _, id := range three {
		c.start(id)
	}
	t.Cleanup(c.closeAll)
	return c
}

// TestTCPFailoverAndRestart runs the fault scenarios over real sockets: the
// leader is killed (node and transport), a new leader takes over without
// losing acknowledged writes, and the old leader restarts from its data
// directory and catches up.
func TestTCPFailoverAndRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := newTCPCluster(t)
	cl := c.client()
	acked := map[string]string{}
	writeKeys(ctx, t, cl, acked, "a", "1", 20)
	old := cl.Leader()
	c.stop(old)
	c.trs[old].Close()
	delete(c.trs, old)

	cl = c.client()
	last := writeKeys(ctx, t, cl, acked, "b", "2", 20)
	if cl.Leader() == old {
		t.Fatalf("new leader is the killed one, %s", old)
	}

	c.start(old) // a new transport on the same address, the same data directory
	for _, id := range c.ids {
		if err := c.sms[id].waitApplied(ctx, last); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		for k, v := range acked {
			if got, _ := c.sms[id].get(k); got != v {
				t.Fatalf("%s: acknowledged %s=%s reads %q", id, k, v, got)
			}
		}
	}
}
