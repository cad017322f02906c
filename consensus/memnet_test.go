package consensus_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/consensus/consensustest"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// TestMemnetFaultyNetwork replicates through message loss, duplication,
// delay and reordering: every acknowledged write reaches every node.
func TestMemnetFaultyNetwork(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := consensustest.Start(t, 3, consensustest.WithDataDir(),
		consensustest.WithFaults(memnet.Faults{Drop: 0.05, Duplicate: 0.05, MaxDelay: 2 * time.Millisecond, Reorder: 0.05}, 1))
	cl := c.Client()
	acked := map[string]string{}
	last := writeKeys(ctx, t, cl, acked, "k", "v", 40)
	checkAcked(ctx, t, c, c.IDs(), last, acked)
}

// checkAcked waits until each of ids applied index and holds every
// acknowledged write.
func checkAcked(ctx context.Context, t *testing.T, c *consensustest.Cluster, ids []transport.NodeID, index uint64, acked map[string]string) {
	t.Helper()
	for _, id := range ids {
		kv := c.KV(id)
		if err := kv.WaitApplied(ctx, index); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		for k, v := range acked {
			if got, _ := kv.Get(k); got != v {
				t.Fatalf("%s: acknowledged %s=%s reads %q", id, k, v, got)
			}
		}
	}
}

// majorityClient returns a client over the nodes ids only.
func majorityClient(t *testing.T, c *consensustest.Cluster, ids []transport.NodeID) *consensus.Client {
	t.Helper()
	members := map[transport.NodeID]consensus.Proposer{}
	for _, id := range ids {
		members[id] = c.Node(id)
	}
	cl, err := consensus.NewClient(members, consensus.DefaultClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// TestMemnetPartitionedLeader cuts the leader off from the majority: the
// majority elects a new leader and goes on; the old leader commits nothing
// (check-quorum makes it step down) and, once healed, catches up.
func TestMemnetPartitionedLeader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := consensustest.Start(t, 3)
	cl := c.Client()
	acked := map[string]string{}
	writeKeys(ctx, t, cl, acked, "a", "1", 10)
	old := cl.Leader()
	majority := c.Others(old)
	c.Partition([]transport.NodeID{old}, majority)

	// The isolated leader cannot commit. Its proposal waits until the new
	// leader's log overwrites its entry after the partition heals, then
	// fails with ErrProposalLost once another entry is applied at its
	// index (or ErrOutcomeUnknown if none is soon, or at once with
	// ErrNotLeader if check-quorum already made it step down); it must not
	// hang.
	isolated := make(chan error, 1)
	oldNode := c.Node(old)
	go func() {
		_, err := oldNode.Propose(ctx, []byte("lost=1"))
		isolated <- err
	}()

	mcl := majorityClient(t, c, majority)
	writeKeys(ctx, t, mcl, acked, "b", "2", 10)
	c.Heal()
	last := write(ctx, t, mcl, "healed", "yes") // commits with the old leader back
	acked["healed"] = "yes"
	select {
	case err := <-isolated:
		if !errors.Is(err, consensus.ErrProposalLost) && !errors.Is(err, consensus.ErrOutcomeUnknown) && !errors.Is(err, consensus.ErrNotLeader) {
			t.Fatalf("the isolated leader's proposal returned %v; want ErrProposalLost, ErrOutcomeUnknown or ErrNotLeader", err)
		}
	case <-ctx.Done():
		t.Fatalf("the isolated leader's proposal never returned")
	}
	checkAcked(ctx, t, c, c.IDs(), last, acked)
	for _, id := range c.IDs() {
		// The isolated leader's entry (if it appended one) is overwritten
		// by the new leader's log: it can never commit.
		if _, ok := c.KV(id).Get("lost"); ok {
			t.Fatalf("%s applied the isolated leader's proposal", id)
		}
	}
	if st := oldNode.Status(); st.Leader == old {
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
	c := consensustest.Start(t, 3)
	cl := c.Client()
	write(ctx, t, cl, "a", "1")
	old := cl.Leader()
	oldNode := c.Node(old)
	majority := c.Others(old)
	c.Partition([]transport.NodeID{old}, majority)
	const n = 4
	results := make(chan error, n)
	for i := range n {
		go func() {
			_, err := oldNode.Propose(ctx, []byte(fmt.Sprintf("orphan%d=1", i)))
			results <- err
		}()
	}
	write(ctx, t, majorityClient(t, c, majority), "b", "2") // the new leader's log grows by two: its no-op and this
	c.Heal()
	counts := map[error]int{}
	for range n {
		select {
		case err := <-results:
			switch {
			case errors.Is(err, consensus.ErrProposalLost):
				counts[consensus.ErrProposalLost]++
			case errors.Is(err, consensus.ErrOutcomeUnknown):
				counts[consensus.ErrOutcomeUnknown]++
			case errors.Is(err, consensus.ErrNotLeader):
				counts[consensus.ErrNotLeader]++
			default:
				t.Fatalf("an orphaned proposal returned %v", err)
			}
		case <-ctx.Done():
			t.Fatalf("orphaned proposals hang; answered so far: %v", counts)
		}
	}
	t.Logf("outcomes: lost %d, unknown %d, not leader %d", counts[consensus.ErrProposalLost], counts[consensus.ErrOutcomeUnknown], counts[consensus.ErrNotLeader])
	if counts[consensus.ErrNotLeader] == 0 && counts[consensus.ErrOutcomeUnknown] == 0 {
		t.Fatalf("results %v: want some ErrOutcomeUnknown for indices the new leader never reached", counts)
	}
}
