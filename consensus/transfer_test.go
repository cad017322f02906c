package consensus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/consensus/consensustest"
	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// oneWay is the one-way latency of the transfer tests' network.
const oneWay = time.Millisecond

// TestTransferLeadershipTime measures, in virtual time, how long the
// cluster goes without accepting proposals when leadership is handed over
// (thesis §3.10): from TransferLeadership to the new leader acknowledging
// a proposal. The median over 20 transfers must be within two heartbeat
// intervals plus one round trip, plus the commit round trip of the
// proposal itself.
func TestTransferLeadershipTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := consensustest.Start(t, 3, consensustest.WithFaults(memnet.Faults{MinDelay: oneWay, MaxDelay: oneWay}, 1))
		ctx := context.Background()
		cfg := c.Config("n1")
		heartbeat := time.Duration(cfg.HeartbeatTicks) * cfg.TickInterval
		var took []time.Duration
		for i := range 20 {
			l := c.WaitLeader(ctx)
			if _, err := l.Propose(ctx, []byte(fmt.Sprintf("before%d=1", i))); err != nil {
				t.Fatal(err)
			}
			to := c.Others(l.ID())[i%2]
			start := time.Now()
			if err := l.TransferLeadership(ctx, to); err != nil {
				t.Fatalf("transfer %d: TransferLeadership(%s) = %v", i, to, err)
			}
			// Propose on the target until it accepts (it may not know it
			// won yet when the old leader already does).
			for {
				pctx, cancel := context.WithTimeout(ctx, time.Second)
				_, err := c.Node(to).Propose(pctx, []byte(fmt.Sprintf("after%d=1", i)))
				cancel()
				if err == nil {
					break
				}
				if !errors.Is(err, consensus.ErrNotLeader) {
					t.Fatalf("transfer %d: Propose on the new leader %s = %v", i, to, err)
				}
				time.Sleep(100 * time.Microsecond)
			}
			took = append(took, time.Since(start))
		}
		slices.Sort(took)
		median := took[len(took)/2]
		target := 2*heartbeat + 2*oneWay
		t.Logf("transfer to first accepted proposal: median %v, max %v (target %v + the proposal's commit round trip %v; heartbeat %v, one-way %v)",
			median, took[len(took)-1], target, 2*oneWay, heartbeat, oneWay)
		if median > target+2*oneWay {
			t.Errorf("median transfer time %v; want <= %v", median, target+2*oneWay)
		}
	})
}

// TestTransferLeadershipToMostUpToDate: with no target named, leadership
// goes to another voter; errors are clear.
func TestTransferLeadershipErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := consensustest.Start(t, 3)
		ctx := context.Background()
		l := c.WaitLeader(ctx)
		f := c.Node(c.Others(l.ID())[0])
		if err := f.TransferLeadership(ctx, ""); !errors.Is(err, consensus.ErrNotLeader) {
			t.Errorf("TransferLeadership on a follower = %v; want ErrNotLeader", err)
		}
		if err := l.TransferLeadership(ctx, "nobody"); !errors.Is(err, raft.ErrNoTransferTarget) {
			t.Errorf("TransferLeadership(nobody) = %v; want raft.ErrNoTransferTarget", err)
		}
		if err := l.TransferLeadership(ctx, ""); err != nil {
			t.Fatalf("TransferLeadership(\"\") = %v", err)
		}
		nl := c.WaitLeader(ctx)
		if nl == l {
			t.Fatalf("leader still %s after a transfer", l.ID())
		}

		// A target that cannot be reached: the transfer is abandoned
		// after an election timeout and the leader leads on.
		target := c.Others(nl.ID())[0]
		c.Isolate(target)
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		err := nl.TransferLeadership(tctx, target)
		if !errors.Is(err, consensus.ErrTransferAborted) {
			t.Fatalf("TransferLeadership to an isolated node = %v; want ErrTransferAborted", err)
		}
		if _, err := nl.Propose(ctx, []byte("still=1")); err != nil {
			t.Fatalf("Propose after an aborted transfer = %v", err)
		}
		c.Heal()
	})
}

// TestShutdownTransfersLeadership: Shutdown on the leader hands over
// first, so the others have a new leader well within an election timeout
// of the call (a rolling restart costs no election timeout), and every
// acknowledged write survives.
func TestShutdownTransfersLeadership(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := consensustest.Start(t, 3, consensustest.WithDataDir(), consensustest.WithFaults(memnet.Faults{MinDelay: oneWay, MaxDelay: oneWay}, 1))
		ctx := context.Background()
		cfg := c.Config("n1")
		electionTimeout := time.Duration(cfg.ElectionTicks) * cfg.TickInterval
		for round := range 3 {
			l := c.WaitLeader(ctx)
			if _, err := l.Propose(ctx, []byte(fmt.Sprintf("r%d=1", round))); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			id := l.ID()
			if err := l.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown = %v", err)
			}
			c.Stop(id) // closed already: the cluster forgets the node
			var next transport.NodeID
			for _, o := range c.Others(id) {
				li := c.Node(o).Leader()
				if li.Leader != "" && li.Leader != id {
					next = li.Leader
				}
			}
			if next == "" {
				t.Fatalf("round %d: no new leader right after Shutdown of %s", round, id)
			}
			if took := time.Since(start); took >= electionTimeout {
				t.Fatalf("round %d: new leader after %v; want less than an election timeout (%v)", round, took, electionTimeout)
			}
			c.Restart(id) // the rolling restart
			if err := c.KV(id).WaitApplied(ctx, 1); err != nil {
				t.Fatal(err)
			}
		}
		l := c.WaitLeader(ctx)
		last, err := l.Propose(ctx, []byte("end=1"))
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range c.IDs() {
			if err := c.KV(id).WaitApplied(ctx, last.(uint64)); err != nil {
				t.Fatal(err)
			}
			for round := range 3 {
				if v, _ := c.KV(id).Get(fmt.Sprintf("r%d", round)); v != "1" {
					t.Fatalf("%s lost acknowledged write r%d", id, round)
				}
			}
		}
	})
}
