package consensus

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

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

// TestMemnetFaultyNetwork replicates through message loss, duplication,
// delay and reordering: every acknowledged write reaches every node.
func TestMemnetFaultyNetwork(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _ := newMemnetCluster(t, true, memnet.Faults{Drop: 0.05, Duplicate: 0.05, MaxDelay: 2 * time.Millisecond, Reorder: 0.05}, nil)
	cl := c.client()
	var last uint64
	for i := range 40 {
		last = write(ctx, t, cl, fmt.Sprintf("k%d", i), fmt.Sprint(i))
	}
	for _, id := range c.ids {
		if err := c.sms[id].waitApplied(ctx, last); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		for i := range 40 {
			if v, _ := c.sms[id].get(fmt.Sprintf("k%d", i)); v != fmt.Sprint(i) {
				t.Fatalf("%s: k%d = %q; want %d", id, i, v, i)
			}
		}
	}
}

// TestMemnetPartitionedLeader cuts the leader off from the majority: the
// majority elects a new leader and goes on; the old leader commits nothing
// (check-quorum makes it step down) and, once healed, catches up.
func TestMemnetPartitionedLeader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, net := newMemnetCluster(t, false, memnet.Faults{}, nil)
	cl := c.client()
	acked := map[string]string{}
	writeKeys(ctx, t, cl, acked, "a", "1", 10)
	old := cl.Leader()
	majority := c.others(old)
	net.Partition([]transport.NodeID{old}, majority)

	// The isolated leader cannot commit. Its proposal waits until the new
	// leader's log overwrites its entry after the partition heals, then
	// fails with ErrProposalLost once another entry is applied at its
	// index (or ErrOutcomeUnknown if none is soon, or at once with
	// ErrNotLeader if check-quorum already made it step down); it must not
	// hang.
	isolated := make(chan error, 1)
	go func() {
		_, err := c.nodes[old].Propose(ctx, []byte("lost=1"))
		isolated <- err
	}()

	members := map[transport.NodeID]Proposer{}
	for _, id := range majority {
		members[id] = c.nodes[id]
	}
	mcl, _ := NewClient(members, DefaultClientConfig())
	writeKeys(ctx, t, mcl, acked, "b", "2", 10)
	net.Heal()
	last := write(ctx, t, mcl, "healed", "yes") // commits with the old leader back
	acked["healed"] = "yes"
	select {
	case err := <-isolated:
		if !errors.Is(err, ErrProposalLost) && !errors.Is(err, ErrOutcomeUnknown) && !errors.Is(err, ErrNotLeader) {
			t.Fatalf("the isolated leader's proposal returned %v; want ErrProposalLost, ErrOutcomeUnknown or ErrNotLeader", err)
		}
	case <-ctx.Done():
		t.Fatalf("the isolated leader's proposal never returned")
	}
	for _, id := range c.ids {
		if err := c.sms[id].waitApplied(ctx, last); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		for k, v := range acked {
			if got, _ := c.sms[id].get(k); got != v {
				t.Fatalf("%s: acknowledged %s=%s reads %q", id, k, v, got)
			}
		}
		// The isolated leader's entry (if it appended one) is overwritten
		// by the new leader's log: it can never commit.
		if _, ok := c.sms[id].get("lost"); ok {
			t.Fatalf("%s applied the isolated leader's proposal", id)
		}
	}
	if st := c.nodes[old].Status(); st.Leader == old {
		t.Fatalf("old leader %s still leads after the partition healed: %+v", old, st.Status)
	}
}

// TestOrphanedProposalsExpire: an isolated leader accepts proposals at
// indices the new leader's log never reaches. After the partition heals
// they leave its log; the ones whose index gets another entry fail with
// ErrProposalLost, the others with ErrOutcomeUnknown after two election
// timeouts, and none of them hangs or succeeds.
func TestOrphanedProposalsExpire(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, net := newMemnetCluster(t, false, memnet.Faults{}, nil)
	cl := c.client()
	write(ctx, t, cl, "a", "1")
	old := cl.Leader()
	majority := c.others(old)
	net.Partition([]transport.NodeID{old}, majority)
	const n = 4
	results := make(chan error, n)
	for i := range n {
		go func() {
			_, err := c.nodes[old].Propose(ctx, []byte(fmt.Sprintf("orphan%d=1", i)))
			results <- err
		}()
	}
	members := map[transport.NodeID]Proposer{}
	for _, id := range majority {
		members[id] = c.nodes[id]
	}
	mcl, _ := NewClient(members, DefaultClientConfig())
	write(ctx, t, mcl, "b", "2") // the new leader's log grows by two: its no-op and this
	net.Heal()
	counts := map[error]int{}
	for range n {
		select {
		case err := <-results:
			switch {
			case errors.Is(err, ErrProposalLost):
				counts[ErrProposalLost]++
			case errors.Is(err, ErrOutcomeUnknown):
				counts[ErrOutcomeUnknown]++
			case errors.Is(err, ErrNotLeader):
				counts[ErrNotLeader]++
			default:
				t.Fatalf("an orphaned proposal returned %v", err)
			}
		case <-ctx.Done():
			t.Fatalf("orphaned proposals hang; answered so far: %v", counts)
		}
	}
	t.Logf("outcomes: lost %d, unknown %d, not leader %d", counts[ErrProposalLost], counts[ErrOutcomeUnknown], counts[ErrNotLeader])
	if counts[ErrNotLeader] == 0 && counts[ErrOutcomeUnknown] == 0 {
		t.Fatalf("results %v: want some ErrOutcomeUnknown for indices the new leader never reached", counts)
	}
}
