package txn_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
	"github.com/distkit/distkit/txn"
)

// TestReplicatedLeaderChurn runs transactions from several goroutines
// while the coordinator leader is crashed and restarted (from its durable
// consensus storage) again and again, in virtual time. Each transaction
// adds 1 to a key of its own on two participants. Checks: both
// participants agree on every transaction (both applied it or neither),
// a transaction Run reported committed is applied, one it reported
// aborted is not, and at the end nobody is in doubt or holds a lock.
func TestReplicatedLeaderChurn(t *testing.T) {
	bubble(t, func(t *testing.T) {
		dir := t.TempDir()
		parts := []transport.NodeID{"p1", "p2", "p3"}
		c := newRCluster(t, 0, memnet.Faults{Drop: 0.02, Duplicate: 0.02, MaxDelay: 2 * time.Millisecond}, parts...)
		c.replicas = []transport.NodeID{"r1", "r2", "r3"}
		var mu sync.Mutex // guards c.coords while replicas restart
		start := func(i int, id transport.NodeID) {
			rc := consensus.DefaultConfig()
			rc.ID, rc.Peers, rc.Service = id, c.replicas, "txn/raft"
			rc.TickInterval, rc.ElectionTicks, rc.Seed = rcTick, rcElectionTicks, uint64(i+1)
			rc.DataDir, rc.SnapshotThreshold, rc.SnapshotRetainEntries = fmt.Sprintf("%s/%s", dir, id), 20, 5
			rcd, err := txn.NewReplicatedCoordinator(c.trs[id], rc, rcTxnConfig())
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			c.coords[id] = rcd
			mu.Unlock()
		}
		for i, id := range c.replicas {
			tr, err := c.net.Join(id)
			if err != nil {
				t.Fatal(err)
			}
			c.trs[id] = tr
			start(i, id)
		}
		leader := func() *txn.ReplicatedCoordinator {
			mu.Lock()
			defer mu.Unlock()
			for _, id := range c.replicas {
				if rc := c.coords[id]; !c.net.Crashed(id) && rc.Stats().Leading {
					return rc
				}
			}
			return nil
		}

		type res struct {
			key string
			pa  transport.NodeID
			pb  transport.NodeID
			err error
		}
		var rmu sync.Mutex
		var results []res
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for w := range 4 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					l := leader()
					if l == nil {
						time.Sleep(rcTick)
						continue
					}
					key := fmt.Sprintf("w%d-%d", w, i)
					pa, pb := parts[(w+i)%3], parts[(w+i+1)%3]
					ops, _ := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: key, Amount: 1})
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					_, err := l.Run(ctx, txn.Work{Participant: pa, Ops: ops}, txn.Work{Participant: pb, Ops: ops})
					cancel()
					if errors.Is(err, txn.ErrNotLeader) {
						continue
					}
					rmu.Lock()
					results = append(results, res{key, pa, pb, err})
					rmu.Unlock()
					time.Sleep(rcTick)
				}
			})
		}
		for round := range 4 {
			time.Sleep(300 * time.Millisecond)
			for i, id := range c.replicas {
				mu.Lock()
				rc := c.coords[id]
				mu.Unlock()
				if c.net.Crashed(id) || !rc.Stats().Leading {
					continue
				}
				c.net.Crash(id)
				rc.Close()
				time.Sleep(200 * time.Millisecond)
				if err := c.net.Restart(id); err != nil {
					t.Fatal(err)
				}
				start(i, id)
				t.Logf("round %d: leader %s crashed and restarted", round, id)
				break
			}
		}
		close(stop)
		wg.Wait()
		quiesceRC(t, c)
		// A transaction a crashed leader prepared but never committed is
		// unknown to the new leader (no BEGIN is logged: one replicated
		// round per commit), so Quiesce cannot wait for it. Its
		// participants ask after RetryInterval and the leader aborts it
		// through the log, within inDoubtBound; wait that long (virtual
		// time, with room), then check.
		for deadline := time.Now().Add(4 * inDoubtBound); c.inDoubt() > 0 && time.Now().Before(deadline); {
			time.Sleep(rcTick)
		}

		committed, aborted, unknown := 0, 0, 0
		for _, r := range results {
			va, _ := c.stores[r.pa].Get(r.key)
			vb, _ := c.stores[r.pb].Get(r.key)
			switch {
			case va != vb:
				t.Errorf("%s: %s has %d, %s has %d; want the same", r.key, r.pa, va, r.pb, vb)
			case r.err == nil && va != 1:
				t.Errorf("%s: Run() = committed; not applied", r.key)
			case errors.Is(r.err, txn.ErrAborted) && va != 0:
				t.Errorf("%s: Run() = %v; applied", r.key, r.err)
			}
			switch {
			case r.err == nil:
				committed++
			case errors.Is(r.err, txn.ErrAborted):
				aborted++
			default:
				unknown++
			}
		}
		for _, p := range parts {
			if n := c.stores[p].Locked(); n != 0 {
				t.Errorf("%s holds %d locks", p, n)
			}
		}
		if c.inDoubt() != 0 {
			t.Errorf("%d participants in doubt at the end", c.inDoubt())
		}
		t.Logf("%d committed, %d aborted, %d unknown to their caller", committed, aborted, unknown)
		if committed == 0 {
			t.Errorf("nothing committed")
		}
	})
}
