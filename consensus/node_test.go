package consensus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

var three = []transport.NodeID{"n1", "n2", "n3"}

// rounds is how many times the fault scenarios repeat: once by default,
// many times under DISTKIT_SOAK=1.
func rounds() int {
	if os.Getenv("DISTKIT_SOAK") == "1" {
		return 25
	}
	return 1
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

func TestNodeReplicates(t *testing.T) {
	for _, durable := range []bool{false, true} {
		t.Run(fmt.Sprintf("durable=%v", durable), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c := newCluster(t, durable, nil)
			cl := c.client()
			var last uint64
			for i := range 50 {
				last = write(ctx, t, cl, fmt.Sprintf("k%d", i), fmt.Sprint(i))
			}
			for _, id := range c.ids {
				if err := c.sms[id].waitApplied(ctx, last); err != nil {
					t.Fatalf("%s: %v", id, err)
				}
				for i := range 50 {
					if v, _ := c.sms[id].get(fmt.Sprintf("k%d", i)); v != fmt.Sprint(i) {
						t.Fatalf("%s: k%d = %q; want %d", id, i, v, i)
					}
				}
			}
			st := c.nodes[cl.Leader()].Status()
			if st.Role != raft.Leader || st.Applied < last || len(st.Progress) != 3 {
				t.Fatalf("leader status = %+v; want role leader, applied >= %d, progress for 3", st, last)
			}
		})
	}
}

func TestNodeProposeErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := newCluster(t, false, func(cfg *Config) { cfg.MaxCommandBytes = 16 })
	leader := c.leader(ctx)
	follower := c.others(leader)[0]
	_, err := c.nodes[follower].Propose(ctx, []byte("x=1"))
	var nle *raft.NotLeaderError
	if !errors.As(err, &nle) || !errors.Is(err, ErrNotLeader) || nle.Leader != leader {
		t.Fatalf("Propose on follower err = %v; want a NotLeaderError naming %s", err, leader)
	}
	if !strings.HasPrefix(err.Error(), "consensus: ") {
		t.Fatalf("Propose on follower err = %q; want the package prefix", err)
	}
	if _, err := c.nodes[leader].Propose(ctx, make([]byte, 17)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Propose(17 bytes) err = %v; want ErrTooLarge", err)
	}
	done, stop := context.WithCancel(ctx)
	stop()
	if _, err := c.nodes[leader].Propose(done, []byte("x=1")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Propose with a cancelled context err = %v; want context.Canceled", err)
	}
	n := c.nodes[leader]
	c.stop(leader)
	if _, err := n.Propose(ctx, []byte("x=1")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Propose after Close err = %v; want ErrClosed", err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close = %v; want nil", err)
	}
	if st := n.Status(); st.ID != leader {
		t.Fatalf("Status after Close = %+v; want the final status of %s", st, leader)
	}
}

// TestLeaderFailover kills the leader mid-stream: a new leader is elected
// and no acknowledged write is lost.
func TestLeaderFailover(t *testing.T) {
	for round := range rounds() {
		for _, durable := range []bool{false, true} {
			t.Run(fmt.Sprintf("round=%d/durable=%v", round, durable), func(t *testing.T) {
				testLeaderFailover(t, durable)
			})
		}
	}
}

func testLeaderFailover(t *testing.T, durable bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := newCluster(t, durable, nil)
	cl := c.client()
	acked := map[string]string{}
	for i := range 30 {
		k, v := fmt.Sprintf("a%d", i), fmt.Sprint(i)
		write(ctx, t, cl, k, v)
		acked[k] = v
	}
	old := cl.Leader()
	c.stop(old)
	// The client finds the new leader on its own.
	survivors := map[transport.NodeID]Proposer{}
	for id, n := range c.nodes {
		survivors[id] = n
	}
	cl2, _ := NewClient(survivors, DefaultClientConfig())
	var last uint64
	for i := range 30 {
		k, v := fmt.Sprintf("b%d", i), fmt.Sprint(i)
		last = write(ctx, t, cl2, k, v)
		acked[k] = v
	}
	if cl2.Leader() == old {
		t.Fatalf("new leader is the old one, %s", old)
	}
	for id := range c.nodes {
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

// TestRestartCatchesUp restarts a node from its data directory after the
// others moved on; it catches up from the log, or by snapshot when the log
// it needs was compacted away.
func TestRestartCatchesUp(t *testing.T) {
	tests := []struct {
		name        string
		snapshot    uint64 // SnapshotThreshold
		viaSnapshot bool
	}{
		{"from the log", 0, false},
		{"by snapshot", 20, true},
	}
	for round := range rounds() {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("round=%d/%s", round, tt.name), func(t *testing.T) {
				testRestartCatchesUp(t, tt.snapshot, tt.viaSnapshot)
			})
		}
	}
}

func testRestartCatchesUp(t *testing.T, threshold uint64, viaSnapshot bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := newCluster(t, true, func(cfg *Config) {
		cfg.SnapshotThreshold = threshold
		cfg.SnapshotRetainEntries = 5
	})
	cl := c.client()
	for i := range 20 {
		write(ctx, t, cl, fmt.Sprintf("a%d", i), "1")
	}
	lagger := c.others(cl.Leader())[0]
	lastBefore := c.nodes[lagger].Status().LastIndex
	c.stop(lagger)
	var last uint64
	for i := range 60 {
		last = write(ctx, t, cl, fmt.Sprintf("b%d", i), "2")
	}
	c.start(lagger) // same data directory
	if err := c.sms[lagger].waitApplied(ctx, last); err != nil {
		t.Fatalf("restarted %s: %v", lagger, err)
	}
	for i := range 60 {
		if v, _ := c.sms[lagger].get(fmt.Sprintf("b%d", i)); v != "2" {
			t.Fatalf("restarted %s: b%d = %q; want 2", lagger, i, v)
		}
	}
	snap, _ := c.nodes[lagger].store.Snapshot()
	if got := snap.Meta.Index > lastBefore; got != viaSnapshot {
		t.Fatalf("restarted %s holds snapshot %d, its log ended at %d before: caught up by snapshot = %v; want %v",
			lagger, snap.Meta.Index, lastBefore, got, viaSnapshot)
	}
	if v, _ := c.sms[lagger].get("a0"); v != "1" {
		t.Fatalf("restarted %s: a0 = %q; want 1", lagger, v)
	}
}

// TestWholeClusterRestart stops every node and restarts them all from their
// data directories: every acknowledged write is still there.
func TestWholeClusterRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := newCluster(t, true, func(cfg *Config) { cfg.SnapshotThreshold = 15 })
	cl := c.client()
	for i := range 40 {
		write(ctx, t, cl, fmt.Sprintf("k%d", i), fmt.Sprint(i))
	}
	for _, id := range c.ids {
		c.stop(id)
	}
	for _, id := range c.ids {
		c.start(id)
	}
	last := write(ctx, t, c.client(), "after", "restart")
	for _, id := range c.ids {
		if err := c.sms[id].waitApplied(ctx, last); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		for i := range 40 {
			if v, _ := c.sms[id].get(fmt.Sprintf("k%d", i)); v != fmt.Sprint(i) {
				t.Fatalf("%s after restart: k%d = %q; want %d", id, i, v, i)
			}
		}
	}
}

func TestConfigValidate(t *testing.T) {
	base := func() Config { return testConfig("a", []transport.NodeID{"a", "b"}) }
	tests := []struct {
		name   string
		modify func(*Config)
	}{
		{"empty ID", func(c *Config) { c.ID = "" }},
		{"no peers", func(c *Config) { c.Peers = nil }},
		{"ID not a peer", func(c *Config) { c.ID = "z" }},
		{"duplicate peer", func(c *Config) { c.Peers = []transport.NodeID{"a", "a"} }},
		{"empty peer", func(c *Config) { c.Peers = []transport.NodeID{"a", ""} }},
		{"no service", func(c *Config) { c.Service = "" }},
		{"zero tick", func(c *Config) { c.TickInterval = 0 }},
		{"zero heartbeat", func(c *Config) { c.HeartbeatTicks = 0 }},
		{"election not above heartbeat", func(c *Config) { c.ElectionTicks = c.HeartbeatTicks }},
		{"zero inflight", func(c *Config) { c.MaxInflightMsgs = 0 }},
		{"zero message bytes", func(c *Config) { c.MaxMsgBytes = 0 }},
		{"zero command bytes", func(c *Config) { c.MaxCommandBytes = 0 }},
	}
	good := base()
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate(base) = %v; want nil", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base()
			tt.modify(&cfg)
			if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate() = %v; want ErrInvalidConfig", err)
			}
		})
	}
}

func TestNewRejectsBadArguments(t *testing.T) {
	net, _ := memnet.New(memnet.DefaultConfig())
	defer net.Close()
	tr, _ := net.Join("a")
	other, _ := net.Join("b")
	cfg := testConfig("a", []transport.NodeID{"a"})
	tests := []struct {
		name string
		cfg  Config
		tr   transport.Transport
		sm   StateMachine
	}{
		{"nil transport", cfg, nil, newKV()},
		{"typed nil transport", cfg, (*memnet.Transport)(nil), newKV()},
		{"nil state machine", cfg, tr, nil},
		{"typed nil state machine", cfg, tr, (*kvSM)(nil)},
		{"transport of another node", cfg, other, newKV()},
		{"invalid config", Config{}, tr, newKV()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n, err := New(tt.cfg, tt.tr, tt.sm); !errors.Is(err, ErrInvalidConfig) {
				if n != nil {
					n.Close()
				}
				t.Fatalf("New = %v; want ErrInvalidConfig", err)
			}
		})
	}
}

// TestConfigReachesCore: the core options in Config take effect. With
// MaxUncommittedBytes tiny, a leader cut off from its followers accepts
// one proposal (it cannot commit it) and drops the next as flow control.
func TestConfigReachesCore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, net := newMemnetCluster(t, false, memnet.Faults{}, func(cfg *Config) {
			cfg.MaxUncommittedBytes = 1
			cfg.CheckQuorum = false // the isolated leader stays leader
		})
		ctx := context.Background()
		var leader *Node
		for leader == nil {
			time.Sleep(10 * time.Millisecond)
			leader = leaderOf(func(id transport.NodeID) *Node { return c.nodes[id] })
		}
		net.Isolate(leader.ID())
		first := make(chan error, 1)
		go func() {
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			_, err := leader.Propose(pctx, []byte("x=1"))
			first <- err
		}()
		synctest.Wait()
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if _, err := leader.Propose(pctx, []byte("y=1")); !errors.Is(err, raft.ErrProposalDropped) {
			t.Errorf("second uncommitted Propose = %v; want raft.ErrProposalDropped (MaxUncommittedBytes)", err)
		}
		if err := <-first; !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("first Propose on the isolated leader = %v; want a timeout", err)
		}
		if st := leader.Status(); st.Role != raft.Leader {
			t.Errorf("isolated leader's role = %v with CheckQuorum off; want leader", st.Role)
		}
	})
}
