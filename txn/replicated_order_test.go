package txn_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
	"github.com/distkit/distkit/txn"
)

// TestReplicatedRunReturnsAfterCommitSent: the leader's Run returns a
// commit only once the COMMIT messages have left, although its waiter
// could learn the outcome earlier, when the COMMIT entry is applied. A
// caller's next transaction on the same keys must never overtake the
// previous one's COMMIT (PREPAREs leave without waiting for the log): the
// participant would find the keys still locked and vote NO. The hook
// holds the proposer back after the COMMIT is applied, so that a Run
// returning at application time would see no COMMIT sent yet.
func TestReplicatedRunReturnsAfterCommitSent(t *testing.T) {
	bubble(t, func(t *testing.T) {
		parts := []transport.NodeID{"p1", "p2", "p3"}
		c := newRCluster(t, 3, memnet.Faults{}, parts...)
		setAccounts(t, c, 100)
		quiesceRC(t, c)
		leader := c.leader()
		var mu sync.Mutex
		sent := 0
		txn.SetStepHook(c.coords[leader], func(step string) {
			switch step {
			case "applied COMMIT":
				time.Sleep(3 * rcTick) // the entry is applied; the proposer is slow to say so
			case "send-commit":
				mu.Lock()
				sent++
				mu.Unlock()
			}
		})
		for i := range 5 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := c.coords[leader].Run(ctx, threeWayWork(t, 1)...)
			cancel()
			if err != nil {
				t.Fatalf("transaction %d: Run() = %v; want committed", i, err)
			}
			mu.Lock()
			n := sent
			mu.Unlock()
			if want := 3 * (i + 1); n < want {
				t.Fatalf("transaction %d: Run returned with %d COMMIT messages sent in all; want %d", i, n, want)
			}
		}
	})
}

// TestReplicatedWithholdsAbortOfCommitted: a question about a committed
// transaction that the leader has just forgotten (every participant
// acknowledged; its END is not applied yet) makes the core presume abort
// and log a RecAbort; the table finds the transaction committed, and the
// driver must not send that ABORT answer. The hook sends the question as
// the END is about to be proposed and holds the END back until the
// RecAbort is applied, so the RecAbort meets the committed transaction.
func TestReplicatedWithholdsAbortOfCommitted(t *testing.T) {
	bubble(t, func(t *testing.T) {
		parts := []transport.NodeID{"p1", "p2", "p3"}
		c := newRCluster(t, 3, memnet.Faults{}, parts...)
		setAccounts(t, c, 100)
		quiesceRC(t, c)
		leader := c.leader()
		id := uuid.New()
		q, err := txn.Message{Type: txn.MsgQuery, Txn: id}.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		asked, abortsSent := false, 0
		abortApplied := make(chan struct{})
		txn.SetStepHook(c.coords[leader], func(step string) {
			switch step {
			case "propose END":
				mu.Lock()
				first := !asked
				asked = true
				mu.Unlock()
				if !first {
					return
				}
				if err := c.trs["p1"].Send(context.Background(), leader, txn.ServiceCoordinator, q); err != nil {
					t.Errorf("send QUERY: %v", err)
					return
				}
				select {
				case <-abortApplied:
				case <-time.After(time.Second):
					t.Error("the RecAbort was not applied while the END waited")
				}
			case "applied ABORT":
				close(abortApplied)
			case "send-abort":
				mu.Lock()
				abortsSent++
				mu.Unlock()
			}
		})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := c.coords[leader].RunID(ctx, id, threeWayWork(t, 10)...); err != nil {
			t.Fatalf("Run() = %v; want committed", err)
		}
		quiesceRC(t, c)
		time.Sleep(10 * rcTick)
		mu.Lock()
		defer mu.Unlock()
		if !asked {
			t.Fatal("no END was proposed")
		}
		if abortsSent != 0 {
			t.Fatalf("%d ABORT answers sent for a committed transaction; want none", abortsSent)
		}
		wantBalance(t, c.stores["p1"], "a", 90)
	})
}
