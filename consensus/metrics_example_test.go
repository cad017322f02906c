package consensus_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// countingMetrics is a tiny in-memory Metrics: atomic counters, nothing
// that could block the node. NopMetrics supplies the methods it skips.
type countingMetrics struct {
	consensus.NopMetrics
	saves, applied, leaderChanges atomic.Int64
	leader                        atomic.Value // transport.NodeID
}

func (m *countingMetrics) ObserveSave(d time.Duration, entries int) { m.saves.Add(1) }

func (m *countingMetrics) ObserveApply(entries int, d time.Duration) {
	m.applied.Add(int64(entries))
}

func (m *countingMetrics) LeaderChanged(leader transport.NodeID, term uint64) {
	m.leaderChanges.Add(1)
	m.leader.Store(leader)
}

// ExampleMetrics wires a Node to an in-memory Metrics. Status reports the
// same figures, accumulated, including latency histograms.
func ExampleMetrics() {
	net, _ := memnet.New(memnet.DefaultConfig())
	defer net.Close()
	tr, _ := net.Join("n1")
	defer tr.Close()

	m := &countingMetrics{}
	cfg := consensus.DefaultConfig()
	cfg.ID, cfg.Peers = "n1", []transport.NodeID{"n1"}
	cfg.Metrics = m
	node, err := consensus.New(cfg, tr, &counter{})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := node.WaitLeader(ctx); err != nil {
		fmt.Println(err)
		return
	}
	for _, amount := range []string{"5", "10", "-3"} {
		if _, err := node.Propose(ctx, []byte(amount)); err != nil {
			fmt.Println(err)
			return
		}
	}
	node.Close() // every call to m has returned once Close has

	st := node.Status()
	fmt.Println("leader:", m.leader.Load(), "changes:", m.leaderChanges.Load())
	fmt.Println("entries applied:", m.applied.Load(), "(3 commands and the leader's empty entry)")
	fmt.Println("saves counted alike:", m.saves.Load() == int64(st.SaveLatency.Count))
	fmt.Println("apply batches in the histogram:", st.ApplyLatency.Count > 0)
	// Output:
	// leader: n1 changes: 1
	// entries applied: 4 (3 commands and the leader's empty entry)
	// saves counted alike: true
	// apply batches in the histogram: true
}
