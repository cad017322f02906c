package raft_test

import (
	"fmt"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
)

// Example runs a three-node cluster in one goroutine, delivering messages
// by hand: the caller's duties of the package documentation in their
// simplest form.
func Example() {
	ids := []transport.NodeID{"a", "b", "c"}
	nodes := map[transport.NodeID]*raft.RawNode{}
	stores := map[transport.NodeID]*raft.MemoryStorage{}
	for _, id := range ids {
		cfg := raft.DefaultConfig()
		cfg.ID, cfg.Peers = id, ids
		cfg.Storage = raft.NewMemoryStorage()
		stores[id] = cfg.Storage.(*raft.MemoryStorage)
		n, err := raft.NewRawNode(cfg)
		if err != nil {
			fmt.Println(err)
			return
		}
		nodes[id] = n
	}
	var inflight []raft.Message
	// step handles every Ready, then delivers the messages they produced.
	step := func() {
		for _, id := range ids {
			n := nodes[id]
			for n.HasReady() {
				rd, err := n.Ready()
				if err != nil {
					fmt.Println(err)
					return
				}
				s := stores[id]
				_ = s.Append(rd.Entries) // 2. append (MemoryStorage needs no fsync)
				if !rd.HardState.IsZero() {
					_ = s.SetHardState(rd.HardState) // 3. hard state
				}
				inflight = append(inflight, rd.Messages...) // 5. send
				for _, e := range rd.CommittedEntries {     // 7. apply
					if e.Type == raft.EntryNormal && id == "a" {
						fmt.Printf("a applies %q\n", e.Data)
					}
				}
				n.Advance(rd) // 10.
			}
		}
		msgs := inflight
		inflight = nil
		for _, m := range msgs {
			_ = nodes[m.To].Step(m)
		}
	}
	// Tick "a" until it campaigns and wins.
	for nodes["a"].Status().Role != raft.Leader {
		nodes["a"].Tick()
		step()
	}
	step() // the followers hear from the new leader
	fmt.Println("leader:", nodes["b"].Status().Leader)
	_, _, err := nodes["b"].Propose([]byte("x=1"))
	fmt.Println("propose on b:", err)
	_, _, _ = nodes["a"].Propose([]byte("x=1"))
	_, _, _ = nodes["a"].Propose([]byte("y=2"))
	for range 5 {
		step()
	}
	// Output:
	// leader: a
	// propose on b: raft: not the leader (leader is "a")
	// a applies "x=1"
	// a applies "y=2"
}
