package consensus_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/consensus/consensustest"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// The porcupine model of the churn tests: one register per key (the
// history is partitioned by key, so the state is one string; "" is an
// unset key).
type churnInput struct {
	Put        bool
	Key, Value string
}

type churnOutput struct {
	Value   string // what a get read
	Unknown bool   // a put whose outcome is unknown: it may or may not have happened
}

var churnModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(churnInput).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		in, out := input.(churnInput), output.(churnOutput)
		if in.Put {
			return true, in.Value
		}
		return out.Value == state.(string), state
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(churnInput), output.(churnOutput)
		switch {
		case in.Put && out.Unknown:
			return fmt.Sprintf("put(%s, %s) -> ?", in.Key, in.Value)
		case in.Put:
			return fmt.Sprintf("put(%s, %s)", in.Key, in.Value)
		}
		return fmt.Sprintf("get(%s) -> %q", in.Key, out.Value)
	},
}

// history records operations for porcupine, timed on one monotonic clock.
type history struct {
	start time.Time
	mu    sync.Mutex // guards ops
	ops   []porcupine.Operation
}

func (h *history) now() int64 { return int64(time.Since(h.start)) }

func (h *history) add(op porcupine.Operation) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, op)
}

// churnKeys are the keys the clients write and read: few, so reads and
// writes of one key interleave.
var churnKeys = []string{"x", "y", "z"}

// TestChurnLinearizable runs a cluster through membership churn while
// clients write through consensus.Client (with sessions: exactly once)
// and readers read through Node.Read on any member (follower reads): grow
// 3 -> 5, transfer leadership, shrink 5 -> 3 (the leader among the
// removed), replace a member with a new one, transfer again. The history
// of writes and reads must be linearizable (porcupine). It runs on memnet
// (in memory; and durable, with message loss, duplication, delay and
// reordering) and over loopback TCP (with data directories); one pass of
// the churn by default (a few seconds), DISTKIT_SOAK=1 repeats it 10
// times. No verdict depends on timing: the deadlines only turn hangs into
// failures.
func TestChurnLinearizable(t *testing.T) {
	tests := []struct {
		network consensustest.Network
		durable bool
		faults  memnet.Faults
	}{
		{consensustest.Memnet, false, memnet.Faults{}},
		{consensustest.Memnet, true, memnet.Faults{Drop: 0.01, Duplicate: 0.01, MaxDelay: time.Millisecond, Reorder: 0.02}},
		{consensustest.TCP, true, memnet.Faults{}},
	}
	for _, tt := range tests {
		name := tt.network.String()
		if tt.faults != (memnet.Faults{}) {
			name += "/faults"
		}
		t.Run(name, func(t *testing.T) {
			testChurn(t, tt.network, tt.durable, tt.faults)
		})
	}
}

func testChurn(t *testing.T, network consensustest.Network, durable bool, faults memnet.Faults) {
	passes := 1
	if os.Getenv("DISTKIT_SOAK") == "1" {
		passes = 10
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(passes)*60*time.Second)
	defer cancel()

	var kvMu sync.Mutex // guards kvs
	kvs := map[*consensus.SessionMachine]*consensustest.KV{}
	opts := []consensustest.Option{
		consensustest.WithNetwork(network),
		consensustest.WithStateMachine(func(transport.NodeID) consensus.StateMachine {
			kv := consensustest.NewKV()
			sm, err := consensus.WithSessions(kv, consensus.DefaultSessionConfig())
			if err != nil {
				panic(err) // the default session config is valid
			}
			kvMu.Lock()
			kvs[sm] = kv
			kvMu.Unlock()
			return sm
		}),
	}
	if durable {
		opts = append(opts, consensustest.WithDataDir())
	}
	if faults != (memnet.Faults{}) {
		opts = append(opts, consensustest.WithFaults(faults, 1))
	}
	c := consensustest.Start(t, 3, opts...)
	c.WaitLeader(ctx)

	// Every ID the churn will use, so clients can reach the new members.
	var planned []transport.NodeID
	for i := 4; i < 4+4*passes; i++ {
		planned = append(planned, transport.NodeID(fmt.Sprintf("n%d", i)))
	}
	h := &history{start: time.Now()}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	const writers, readers = 3, 2
	for w := range writers {
		cl := c.Client(planned...)
		wg.Go(func() {
			defer cl.Close(ctx)
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				in := churnInput{Put: true, Key: churnKeys[(w+seq)%len(churnKeys)], Value: fmt.Sprintf("w%d-%d", w, seq)}
				call := h.now()
				pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := cl.Propose(pctx, []byte(in.Key+"="+in.Value))
				pcancel()
				op := porcupine.Operation{ClientId: w, Input: in, Call: call, Return: h.now()}
				if err != nil {
					// With sessions the Client retried what it could;
					// what is left may or may not have been applied.
					op.Output, op.Return = churnOutput{Unknown: true}, math.MaxInt64
				} else {
					op.Output = churnOutput{}
				}
				h.add(op)
			}
		})
	}
	for r := range readers {
		rng := rand.New(rand.NewPCG(uint64(r), 1))
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				nodes := c.Nodes()
				if len(nodes) == 0 {
					return
				}
				n := nodes[rng.IntN(len(nodes))]
				sm, _ := c.StateMachine(n.ID()).(*consensus.SessionMachine)
				if c.Node(n.ID()) != n {
					continue // restarted meanwhile: n and sm are of different runs
				}
				kvMu.Lock()
				kv := kvs[sm]
				kvMu.Unlock()
				key := churnKeys[i%len(churnKeys)]
				call := h.now()
				rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
				err := n.Read(rctx)
				rcancel()
				if err != nil {
					continue // a read that failed observed nothing
				}
				v, _ := kv.Get(key)
				h.add(porcupine.Operation{ClientId: writers + r, Input: churnInput{Key: key}, Output: churnOutput{Value: v}, Call: call, Return: h.now()})
			}
		})
	}

	// progress waits until the clients recorded n more operations, so
	// that the history interleaves with every churn step.
	progress := func(n int) {
		h.mu.Lock()
		target := len(h.ops) + n
		h.mu.Unlock()
		for ctx.Err() == nil {
			h.mu.Lock()
			done := len(h.ops) >= target
			h.mu.Unlock()
			if done {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	progress(20)
	steps := 0
	next := 0 // index into planned
	fresh := func() transport.NodeID { id := planned[next]; next++; return id }
	for pass := range passes {
		step := func(what string, err error) {
			t.Helper()
			steps++
			t.Logf("pass %d: %s: %v", pass, what, err)
			if err != nil {
				t.Errorf("pass %d: %s: %v", pass, what, err)
			}
			progress(10)
		}
		members := func() []transport.NodeID {
			l, err := c.Leader(ctx)
			if err != nil {
				t.Fatalf("pass %d: %v", pass, err)
			}
			m, _ := l.Members()
			return m.Voters
		}
		// Grow 3 -> 5.
		for range 2 {
			id := fresh()
			step("add "+string(id), c.AddNode(ctx, id))
		}
		step("transfer leadership", transfer(ctx, c))
		// Shrink 5 -> 3, removing the leader first.
		l, err := c.Leader(ctx)
		if err != nil {
			t.Fatalf("pass %d: %v", pass, err)
		}
		step("remove the leader "+string(l.ID()), c.RemoveNode(ctx, l.ID()))
		for _, id := range members() {
			if id != "" {
				step("remove "+string(id), c.RemoveNode(ctx, id))
				break
			}
		}
		// Replace a member (not the leader) with a new one.
		l, err = c.Leader(ctx)
		if err != nil {
			t.Fatalf("pass %d: %v", pass, err)
		}
		var victim transport.NodeID
		for _, id := range members() {
			if id != l.ID() {
				victim = id
			}
		}
		id := fresh()
		step("add "+string(id), c.AddNode(ctx, id))
		step("remove "+string(victim), c.RemoveNode(ctx, victim))
		step("transfer leadership", transfer(ctx, c))
		if got := len(members()); got != 3 {
			t.Errorf("pass %d: %d voters after the churn; want 3", pass, got)
		}
		if t.Failed() {
			break
		}
	}
	progress(20) // on the final configuration
	close(stop)
	wg.Wait()

	puts, gets, unknown := 0, 0, 0
	for _, op := range h.ops {
		switch {
		case op.Output.(churnOutput).Unknown:
			unknown++
		case op.Input.(churnInput).Put:
			puts++
		default:
			gets++
		}
	}
	t.Logf("%d churn steps; history: %d puts acknowledged, %d of unknown outcome, %d follower reads", steps, puts, unknown, gets)
	if puts == 0 || gets == 0 {
		t.Fatalf("history has %d acknowledged puts and %d reads; want some of each", puts, gets)
	}
	res, info := porcupine.CheckOperationsVerbose(churnModel, h.ops, time.Minute)
	switch res {
	case porcupine.Illegal:
		if f, err := os.CreateTemp("", "churn-*.html"); err == nil {
			porcupine.Visualize(churnModel, info, f)
			f.Close()
			t.Logf("porcupine's picture of the history: %s", f.Name())
		}
		t.Fatalf("the history of %d operations is not linearizable", len(h.ops))
	case porcupine.Unknown:
		t.Logf("porcupine timed out; linearizability not decided")
	}
}

// transfer hands leadership to the most up-to-date other voter; a leader
// change under way (the transfer finds no leader, or it is aborted) is
// not an error of the cluster.
func transfer(ctx context.Context, c *consensustest.Cluster) error {
	l, err := c.Leader(ctx)
	if err != nil {
		return err
	}
	err = l.TransferLeadership(ctx, "")
	if errors.Is(err, consensus.ErrNotLeader) || errors.Is(err, consensus.ErrTransferAborted) {
		return nil
	}
	return err
}
