package consensus

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// TestReadSeesAcknowledgedWrites is the acknowledged-writes check of
// Read (thesis §6.4): after a write is acknowledged, Read on any node
// (the leader, a follower, a follower whose link from the leader is slow
// and jittery) returns only once that node's state machine shows the
// write. Run with lease reads too.
func TestReadSeesAcknowledgedWrites(t *testing.T) {
	for _, lease := range []bool{false, true} {
		t.Run(fmt.Sprintf("lease=%v", lease), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, net := newMemnetCluster(t, false, memnet.Faults{}, func(cfg *Config) {
					cfg.LeaseReads, cfg.LeaseDriftTicks = lease, 2
				})
				ctx := context.Background()
				l := waitLeaderNode(ctx, t, c)
				slow := c.others(l.ID())[0]
				// Appends and commit indices reach slow late and out of order.
				if err := net.SetLinkFaults(l.ID(), slow, memnet.Faults{MinDelay: time.Millisecond, MaxDelay: 30 * time.Millisecond}); err != nil {
					t.Fatal(err)
				}
				for i := range 60 {
					k, v := fmt.Sprintf("k%d", i), fmt.Sprint(i)
					if _, err := l.Propose(ctx, []byte(k+"="+v)); err != nil {
						t.Fatalf("Propose(%s) = %v", k, err)
					}
					reader := c.ids[i%len(c.ids)]
					if i%2 == 0 {
						reader = slow
					}
					rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					err := c.nodes[reader].Read(rctx)
					cancel()
					if err != nil {
						t.Fatalf("Read on %s after write %s = %v", reader, k, err)
					}
					if got, _ := c.sms[reader].get(k); got != v {
						t.Fatalf("Read on %s returned before the acknowledged write %s=%s was applied (reads %q)", reader, k, v, got)
					}
				}
			})
		})
	}
}

// TestReadConcurrentReaders: many concurrent readers on every node all
// complete and each sees the writes acknowledged before its call.
func TestReadConcurrentReaders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _ := newMemnetCluster(t, false, memnet.Faults{MaxDelay: 3 * time.Millisecond}, nil)
		ctx := context.Background()
		l := waitLeaderNode(ctx, t, c)
		if _, err := l.Propose(ctx, []byte("x=1")); err != nil {
			t.Fatal(err)
		}
		errs := make(chan error, 3*16)
		for _, id := range c.ids {
			for range 16 {
				go func() {
					rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					defer cancel()
					if err := c.nodes[id].Read(rctx); err != nil {
						errs <- fmt.Errorf("%s: %w", id, err)
						return
					}
					if v, _ := c.sms[id].get("x"); v != "1" {
						errs <- fmt.Errorf("%s: read x = %q after Read; want 1", id, v)
						return
					}
					errs <- nil
				}()
			}
		}
		for range 3 * 16 {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	})
}

// TestReadAcrossLeaderChange: a read issued on a follower while the leader
// is cut off completes once a new leader is elected (the request dropped
// with the old leader is asked again), and sees every acknowledged write.
func TestReadAcrossLeaderChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, net := newMemnetCluster(t, false, memnet.Faults{}, nil)
		ctx := context.Background()
		l := waitLeaderNode(ctx, t, c)
		if _, err := l.Propose(ctx, []byte("x=1")); err != nil {
			t.Fatal(err)
		}
		f := c.others(l.ID())[0]
		net.Isolate(l.ID())
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := c.nodes[f].Read(rctx); err != nil {
			t.Fatalf("Read on %s across a leader change = %v", f, err)
		}
		if v, _ := c.sms[f].get("x"); v != "1" {
			t.Fatalf("x = %q after Read; want 1", v)
		}
		if li := c.nodes[f].Leader(); li.Leader == l.ID() || li.Leader == "" {
			t.Fatalf("leader after Read = %q; want a new one", li.Leader)
		}
	})
}

// TestReadErrors: a Read whose context ends returns the context's error;
// a closed node and a nil context are refused.
func TestReadErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, net := newMemnetCluster(t, false, memnet.Faults{}, nil)
		ctx := context.Background()
		l := waitLeaderNode(ctx, t, c)
		for _, id := range c.others(l.ID()) {
			net.Cut(l.ID(), id)
			net.Cut(id, l.ID())
		}
		rctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		// Check-quorum takes the leader down after an election timeout
		// (50 ms here), so the read either times out or outlives the
		// leadership and times out waiting for a new one.
		if err := l.Read(rctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Read without a quorum = %v; want context.DeadlineExceeded", err)
		}
		//lint:ignore SA1012 a nil context is the bad input under test
		if err := l.Read(nil); !errors.Is(err, ErrNilContext) {
			t.Errorf("Read(nil) = %v; want ErrNilContext", err)
		}
		var zero *Node
		if err := zero.Read(ctx); err == nil {
			t.Errorf("nil Node Read = nil; want an error")
		}
		c.stop(l.ID())
		if err := l.Read(ctx); !errors.Is(err, ErrClosed) && !errors.Is(err, ErrStopped) {
			t.Errorf("Read on a closed node = %v; want ErrClosed", err)
		}
		_ = transport.NodeID("")
	})
}
