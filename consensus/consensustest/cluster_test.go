package consensustest_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/consensus/consensustest"
	"github.com/distkit/distkit/transport"
)

// write proposes key=value through cl and returns the applied index.
func write(ctx context.Context, t *testing.T, cl *consensus.Client, key, value string) uint64 {
	t.Helper()
	res, err := cl.Propose(ctx, []byte(key+"="+value))
	if err != nil {
		t.Fatalf("Propose(%s=%s) = %v", key, value, err)
	}
	return res.(uint64)
}

// waitAll waits until every running node applied index and holds key=value.
func waitAll(ctx context.Context, t *testing.T, c *consensustest.Cluster, index uint64, key, value string) {
	t.Helper()
	for _, n := range c.Nodes() {
		kv := c.KV(n.ID())
		if err := kv.WaitApplied(ctx, index); err != nil {
			t.Fatalf("%s: %v", n.ID(), err)
		}
		if got, _ := kv.Get(key); got != value {
			t.Fatalf("%s: Get(%q) = %q; want %q", n.ID(), key, got, value)
		}
	}
}

// TestCluster runs the helper's life cycle on each network and storage:
// a leader, writes on every node, a crashed leader replaced and restarted
// (caught up from its data directory, or from nothing in memory), a node
// added and one removed.
func TestCluster(t *testing.T) {
	tests := []struct {
		network consensustest.Network
		durable bool
	}{
		{consensustest.Memnet, false},
		{consensustest.Memnet, true},
		{consensustest.TCP, false},
		{consensustest.TCP, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v/durable=%v", tt.network, tt.durable), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			opts := []consensustest.Option{consensustest.WithNetwork(tt.network)}
			if tt.durable {
				opts = append(opts, consensustest.WithDataDir())
			}
			c := consensustest.Start(t, 3, opts...)
			if got, want := c.IDs(), []transport.NodeID{"n1", "n2", "n3"}; !slices.Equal(got, want) {
				t.Fatalf("IDs() = %v; want %v", got, want)
			}
			if tt.durable != (c.DataDir("n1") != "") {
				t.Fatalf("DataDir(n1) = %q with durable %v", c.DataDir("n1"), tt.durable)
			}
			cl := c.Client("n4")
			write(ctx, t, cl, "a", "1")
			old := c.WaitLeader(ctx).ID()
			c.Crash(old)
			if c.Node(old) != nil {
				t.Fatalf("Node(%s) after Crash is not nil", old)
			}
			last := write(ctx, t, cl, "b", "2")
			if l := c.WaitLeader(ctx); l.ID() == old {
				t.Fatalf("the crashed node %s leads", old)
			}
			c.Restart(old)
			waitAll(ctx, t, c, last, "a", "1")

			if err := c.AddNode(ctx, "n4"); err != nil {
				t.Fatalf("AddNode(n4) = %v", err)
			}
			last = write(ctx, t, cl, "c", "3")
			waitAll(ctx, t, c, last, "b", "2")
			if err := c.RemoveNode(ctx, old); err != nil {
				t.Fatalf("RemoveNode(%s) = %v", old, err)
			}
			last = write(ctx, t, cl, "d", "4")
			waitAll(ctx, t, c, last, "c", "3")
			l := c.WaitLeader(ctx)
			if m, _ := l.Members(); !slices.Equal(m.Voters, sortedWithout([]transport.NodeID{"n1", "n2", "n3", "n4"}, old)) {
				t.Fatalf("members after adding n4 and removing %s = %v", old, m.Voters)
			}
		})
	}
}

func sortedWithout(ids []transport.NodeID, drop transport.NodeID) []transport.NodeID {
	out := slices.DeleteFunc(slices.Clone(ids), func(id transport.NodeID) bool { return id == drop })
	slices.Sort(out)
	return out
}

// TestClusterPartition: the majority side of a memnet partition elects a
// leader that Leader reports (not the isolated old one) and commits; after
// Heal every node holds the writes.
func TestClusterPartition(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := consensustest.Start(t, 3)
	cl := c.Client()
	write(ctx, t, cl, "a", "1")
	old := c.WaitLeader(ctx).ID()
	c.Isolate(old)
	// Leader reports the old leader until the majority elects another.
	l := c.WaitLeader(ctx)
	for l.ID() == old {
		time.Sleep(5 * time.Millisecond)
		l = c.WaitLeader(ctx)
	}
	res, err := l.Propose(ctx, []byte("b=2"))
	if err != nil {
		t.Fatalf("Propose on the majority's leader %s = %v", l.ID(), err)
	}
	last := res.(uint64)
	c.Heal()
	waitAll(ctx, t, c, last, "b", "2")
}

// TestClusterOptions: WithConfig reaches the nodes, WithStateMachine
// builds each node's machine, Stop then Restart of an in-memory node
// starts it empty and it catches up.
func TestClusterOptions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	made := 0
	c := consensustest.Start(t, 3,
		consensustest.WithConfig(func(cfg *consensus.Config) { cfg.SnapshotThreshold = 7 }),
		consensustest.WithStateMachine(func(transport.NodeID) consensus.StateMachine { made++; return consensustest.NewKV() }))
	if got := c.Config("n2").SnapshotThreshold; got != 7 {
		t.Fatalf("Config(n2).SnapshotThreshold = %d; want 7", got)
	}
	if made != 3 {
		t.Fatalf("state machines made = %d; want 3", made)
	}
	cl := c.Client()
	for i := range 20 {
		write(ctx, t, cl, fmt.Sprintf("k%d", i), "v")
	}
	c.Stop("n3")
	c.Restart("n3")
	last := write(ctx, t, cl, "after", "restart")
	waitAll(ctx, t, c, last, "k0", "v")
	if made != 4 {
		t.Fatalf("state machines made = %d; want 4 (one per start)", made)
	}
}
