package consensus

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distkit/distkit/internal/vfs"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// TestSnapshotStreamNodePowerLoss cuts a follower's power at several
// points of a streamed snapshot install (the k-th fsync of the received
// file or of the data directory: between chunks, at the rename, after the
// install), in virtual time over memnet with every node on a vfs.CrashFS.
// The follower must restart from what survived (an old state or the new
// snapshot, never a partial one: the open verifies the file), and catch up
// to the leader's state.
func TestSnapshotStreamNodePowerLoss(t *testing.T) {
	// 13 chunks, each fsynced (syncs 1-13), then the directory at the
	// rename (14); 16 is never reached: the install completes.
	for _, k := range []int{1, 4, 8, 12, 13, 14, 16} {
		t.Run(fmt.Sprint("sync=", k), func(t *testing.T) {
			runBubble(t, func(t *testing.T, stalled *atomic.Bool) { testStreamPowerLoss(t, k) })
		})
	}
}

func testStreamPowerLoss(t *testing.T, k int) {
	const pad, chunk = 100 << 10, 8 << 10 // 13 chunks
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	var mu sync.Mutex // guards nodes, sms, fss
	nodes := map[transport.NodeID]*Node{}
	sms := map[transport.NodeID]*streamPadSM{}
	fss := map[transport.NodeID]*vfs.CrashFS{}
	trs := map[transport.NodeID]transport.Transport{}
	start := func(id transport.NodeID) {
		t.Helper()
		cfg := testConfig(id, three)
		cfg.DataDir = "/data/" + string(id)
		mu.Lock()
		cfg.FS = fss[id]
		mu.Unlock()
		cfg.SnapshotThreshold, cfg.SnapshotRetainEntries = 20, 2
		cfg.SnapshotChunkBytes = chunk
		sm := newStreamPadSM(pad)
		n, err := New(cfg, trs[id], sm)
		if err != nil {
			t.Fatalf("start %s: %v", id, err)
		}
		mu.Lock()
		nodes[id], sms[id] = n, sm
		mu.Unlock()
	}
	stop := func(id transport.NodeID) {
		mu.Lock()
		n := nodes[id]
		delete(nodes, id)
		mu.Unlock()
		if n != nil {
			n.Close() // may report the power cut
		}
	}
	for i, id := range three {
		tr, err := net.Join(id)
		if err != nil {
			t.Fatal(err)
		}
		trs[id] = tr
		fss[id] = vfs.NewCrashFS(uint64(k*10 + i))
		start(id)
	}
	defer func() {
		for _, id := range three {
			stop(id)
		}
	}()
	leader := func() *Node {
		mu.Lock()
		defer mu.Unlock()
		return leaderOf(func(id transport.NodeID) *Node { return nodes[id] })
	}
	propose := func(prefix string, count int) uint64 {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var last uint64
		for i := 0; i < count; {
			n := leader()
			if n == nil {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			v, err := n.Propose(ctx, fmt.Appendf(nil, "%s%d", prefix, i))
			if ctx.Err() != nil {
				t.Fatalf("propose: %v", err)
			}
			if err == nil {
				last = v.(uint64)
				i++
			}
		}
		return last
	}
	propose("a", 3)
	victim := three[0]
	if l := leader(); l != nil && l.ID() == victim {
		victim = three[1]
	}
	stop(victim)
	propose("b", 30) // the others snapshot at 20 and compact
	dir := "/data/" + string(victim)
	var syncs atomic.Int32
	var cut atomic.Pointer[vfs.CrashFS]
	fs := fss[victim]
	fs.SetSyncHook(func(name string) {
		if (strings.Contains(name, receivedSnapshotPrefix) || name == dir) && int(syncs.Add(1)) == k {
			cut.Store(fs.Crash())
		}
	})
	start(victim)
	last := propose("c", 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mu.Lock()
	sm := sms[victim]
	mu.Unlock()
	// The install ends, or the power goes off during it (virtual time: the
	// wait costs nothing).
	for cut.Load() == nil && ctx.Err() == nil {
		wctx, wcancel := context.WithTimeout(ctx, 20*time.Millisecond)
		err := sm.waitApplied(wctx, last)
		wcancel()
		if err == nil {
			break
		}
	}
	if after := cut.Load(); after != nil {
		// The power went off during the install: restart from the disk.
		stop(victim)
		mu.Lock()
		fss[victim] = after
		mu.Unlock()
		start(victim)
	}
	mu.Lock()
	sm = sms[victim]
	mu.Unlock()
	if err := sm.waitApplied(ctx, last); err != nil {
		t.Fatalf("sync %d (cut: %v): %s: %v", k, cut.Load() != nil, victim, err)
	}
	l := leader()
	mu.Lock()
	lsm := sms[l.ID()]
	mu.Unlock()
	if err := lsm.waitApplied(ctx, last); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	snap, _ := nodes[victim].store.Snapshot()
	mu.Unlock()
	t.Logf("sync %d: cut %v, %d syncs counted, %s's snapshot at %d", k, cut.Load() != nil, syncs.Load(), victim, snap.Meta.Index)
	ga, gs := sm.state()
	wa, ws := lsm.state()
	if ga != wa || gs != ws {
		t.Fatalf("sync %d: %s at (applied %d, sum %x); leader at (%d, %x)", k, victim, ga, gs, wa, ws)
	}
}
