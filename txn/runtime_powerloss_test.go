package txn_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/distkit/distkit/internal/vfs"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
	"github.com/distkit/distkit/txn"
)

// TestRuntimePowerLoss runs the single-node runtime (Coordinator and
// three Participants, each on a FileLog over its own vfs.CrashFS, over
// memnet) in a synctest bubble and cuts the power of one node, coordinator
// or participant, just before its k-th fsync: what it had not synced is
// lost or torn, its goroutines find the disk gone, and it restarts from
// what the crash left (a new Store recovered from the log). Messages take
// up to 2 ms, and the fsync that never completes runs for up to 2.5 ms
// first, so that of the messages the node sent before it, some arrive
// and some do not. Victim, k and that time
// are drawn from the seed; some seeds cut the power twice. Each
// transaction adds 1 to its own key on two participants, so that it is
// checked alone: both have it or neither (atomicity); every one Run
// reported committed is on both, every one it reported aborted on
// neither; no participant is left in doubt or holding a lock.
// DISTKIT_SOAK=1 runs twenty times as many seeds; DISTKIT_SEED=N runs one.
func TestRuntimePowerLoss(t *testing.T) {
	seeds := []uint64{}
	if s := os.Getenv("DISTKIT_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("DISTKIT_SEED=%q: %v", s, err)
		}
		seeds = append(seeds, n)
	} else {
		n := uint64(24)
		if os.Getenv("DISTKIT_SOAK") != "" {
			n *= 20
		}
		for s := uint64(1); s <= n; s++ {
			seeds = append(seeds, s)
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { runtimePowerLossTrial(t, seed) })
			if t.Failed() {
				t.Logf("replay: DISTKIT_SEED=%d go test -run TestRuntimePowerLoss ./txn", seed)
			}
		})
	}
}

// plNode is one node of a power-loss trial: its disk and what runs on it.
type plNode struct {
	id    transport.NodeID
	fs    *vfs.CrashFS
	log   *txn.FileLog
	coord *txn.Coordinator
	part  *txn.Participant
	store *txn.Store
}

func (n *plNode) close() {
	if n.coord != nil {
		n.coord.Close()
	}
	if n.part != nil {
		n.part.Close()
	}
	if n.log != nil {
		n.log.Close()
	}
}

func runtimePowerLossTrial(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 14))
	cfg := runtimeConfig()
	cfg.VoteTimeout = 500 * time.Millisecond
	cfg.CheckpointEvery = 4 + rng.IntN(8) // checkpoints (Replace) get crashed into too
	ncfg := memnet.DefaultConfig()
	ncfg.Seed = int64(seed)
	net, err := memnet.New(ncfg)
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	// Latencies up to 2 ms: of the messages a node sends just before its
	// power fails, some arrive and some do not.
	if err := net.SetFaults(memnet.Faults{MaxDelay: 2 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	parts := []transport.NodeID{"p1", "p2", "p3"}
	nodes := map[transport.NodeID]*plNode{}
	trs := map[transport.NodeID]*memnet.Transport{}
	var mu sync.Mutex // guards nodes' fs and crashed
	crashed := map[transport.NodeID]bool{}

	start := func(n *plNode) {
		t.Helper()
		var err error
		if n.log, err = txn.OpenFileLogWith("/srv/"+string(n.id), txn.FileLogOptions{FS: n.fs}); err != nil {
			t.Fatalf("seed %d: %s: open log after power loss: %v", seed, n.id, err)
		}
		if n.id == "c" {
			n.coord, err = txn.NewCoordinator(trs[n.id], n.log, cfg)
		} else {
			n.store = txn.NewStore()
			n.part, err = txn.NewParticipant(trs[n.id], n.log, n.store, cfg)
		}
		if err != nil {
			t.Fatalf("seed %d: %s: start: %v", seed, n.id, err)
		}
	}
	for i, id := range append([]transport.NodeID{"c"}, parts...) {
		if trs[id], err = net.Join(id); err != nil {
			t.Fatal(err)
		}
		nodes[id] = &plNode{id: id, fs: vfs.NewCrashFS(seed*8 + uint64(i))}
		start(nodes[id])
	}
	defer func() {
		for _, n := range nodes {
			n.close()
		}
	}()

	// The power cuts: victim and fsync count, one or two of them.
	type cut struct {
		victim transport.NodeID
		k      int
		slow   time.Duration // how long the fatal fsync runs before the power fails
	}
	var cuts []cut
	var cutsDone []string // guarded by mu
	for range 1 + rng.IntN(2) {
		ids := append([]transport.NodeID{"c", "c"}, parts...) // the coordinator twice as often
		cuts = append(cuts, cut{ids[rng.IntN(len(ids))], 1 + rng.IntN(12), time.Duration(rng.IntN(2500)) * time.Microsecond})
	}
	arm := func(c cut) {
		n := nodes[c.victim]
		left := c.k
		fs := n.fs
		fs.SetSyncHook(func(string) {
			mu.Lock()
			if left--; left != 0 || crashed[n.id] {
				mu.Unlock()
				return
			}
			mu.Unlock()
			// The fsync takes a moment, in which what the node sent
			// before it reaches the others; then the power fails.
			time.Sleep(c.slow)
			mu.Lock()
			defer mu.Unlock()
			crashed[n.id] = true
			cutsDone = append(cutsDone, fmt.Sprintf("%s@fsync%d+%v", n.id, c.k, c.slow))
			net.Crash(n.id)
			n.fs = fs.Crash() // before this fsync: what it would have made durable is not
		})
	}
	arm(cuts[0])

	// The transactions: each adds 1 to its own key on two participants.
	const txns = 10
	type result struct {
		from, to transport.NodeID
		err      error
	}
	results := make([]result, txns)
	var wg sync.WaitGroup
	for i := range txns {
		from := parts[rng.IntN(3)]
		to := parts[(slices3Index(parts, from)+1+rng.IntN(2))%3]
		results[i].from, results[i].to = from, to
		ops, err := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: fmt.Sprint("k", i), Amount: 1})
		if err != nil {
			t.Fatal(err)
		}
		delay := time.Duration(rng.IntN(40)) * time.Millisecond
		coord := nodes["c"].coord
		wg.Go(func() {
			time.Sleep(delay)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, results[i].err = coord.Run(ctx, txn.Work{Participant: from, Ops: ops}, txn.Work{Participant: to, Ops: ops})
		})
	}

	// Restart whatever lost power; arm the second cut once the first
	// victim is back.
	for step := 0; step < 400; step++ {
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		var down []transport.NodeID
		for id, c := range crashed {
			if c {
				down = append(down, id)
			}
		}
		mu.Unlock()
		for _, id := range down {
			n := nodes[id]
			n.fs.SetSyncHook(nil)
			time.Sleep(30 * time.Millisecond)
			n.close()
			n.coord, n.part = nil, nil
			if err := net.Restart(id); err != nil {
				t.Fatal(err)
			}
			start(n)
			mu.Lock()
			crashed[id] = false
			mu.Unlock()
			if len(cuts) > 1 {
				arm(cuts[1])
				cuts = cuts[1:]
			}
		}
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := nodes["c"].coord.Quiesce(ctx); err != nil {
		t.Fatalf("seed %d: Quiesce after the power cuts: %v", seed, err)
	}
	time.Sleep(cfg.RetryInterval * 5)

	for _, id := range parts {
		if st := nodes[id].part.Stats(); st.InDoubt != 0 {
			t.Errorf("seed %d: %s is in doubt about %d transactions at the end", seed, id, st.InDoubt)
		}
		if n := nodes[id].store.Locked(); n != 0 {
			t.Errorf("seed %d: %s holds %d locks at the end", seed, id, n)
		}
	}
	committed := 0
	for _, r := range results {
		if r.err == nil {
			committed++
		}
	}
	t.Logf("seed %d: power cut at %v; %d of %d committed", seed, cutsDone, committed, txns)
	for i, r := range results {
		key := fmt.Sprint("k", i)
		a, _ := nodes[r.from].store.Get(key)
		b, _ := nodes[r.to].store.Get(key)
		var abort *txn.AbortError
		switch {
		case a != b:
			t.Errorf("seed %d: transaction %d half applied: %s has %d, %s has %d (Run: %v)", seed, i, r.from, a, r.to, b, r.err)
		case r.err == nil && a != 1:
			t.Errorf("seed %d: transaction %d: Run reported committed; the participants do not have it", seed, i)
		case errors.As(r.err, &abort) && a != 0:
			t.Errorf("seed %d: transaction %d: Run reported %v; the participants committed it", seed, i, r.err)
		}
	}
}

func slices3Index(s []transport.NodeID, v transport.NodeID) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}
