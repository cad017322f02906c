package raft_test

import (
	"fmt"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
)

// exampleCluster runs RawNodes in one goroutine with instant delivery.
type exampleCluster struct {
	nodes  map[transport.NodeID]*raft.RawNode
	stores map[transport.NodeID]*raft.MemoryStorage
	order  []transport.NodeID
	reads  map[transport.NodeID][]raft.ReadState
}

func (c *exampleCluster) start(id transport.NodeID, peers []transport.NodeID) {
	cfg := raft.DefaultConfig()
	cfg.ID, cfg.Peers, cfg.Join = id, peers, len(peers) == 0
	s := raft.NewMemoryStorage()
	cfg.Storage = s
	n, err := raft.NewRawNode(cfg)
	if err != nil {
		panic(err)
	}
	c.nodes[id], c.stores[id] = n, s
	c.order = append(c.order, id)
}

// run handles Readys and delivers messages until the cluster is quiet.
func (c *exampleCluster) run() {
	for busy := true; busy; {
		busy = false
		var msgs []raft.Message
		for _, id := range c.order {
			n := c.nodes[id]
			for n.HasReady() {
				busy = true
				rd, _ := n.Ready()
				_ = c.stores[id].Append(rd.Entries)
				if !rd.HardState.IsZero() {
					_ = c.stores[id].SetHardState(rd.HardState)
				}
				msgs = append(msgs, rd.Messages...)
				c.reads[id] = append(c.reads[id], rd.ReadStates...)
				n.Advance(rd)
			}
		}
		for _, m := range msgs {
			if n := c.nodes[m.To]; n != nil {
				_ = n.Step(m)
			}
		}
	}
}

func (c *exampleCluster) leader() transport.NodeID {
	for _, id := range c.order {
		if c.nodes[id].Status().Role == raft.Leader {
			return id
		}
	}
	return ""
}

// ExampleRawNode_ProposeConfChange grows a cluster the safe way (a learner
// first, promoted once it has caught up), reads through ReadIndex, and
// hands leadership over.
func ExampleRawNode_ProposeConfChange() {
	c := &exampleCluster{nodes: map[transport.NodeID]*raft.RawNode{}, stores: map[transport.NodeID]*raft.MemoryStorage{}, reads: map[transport.NodeID][]raft.ReadState{}}
	for _, id := range []transport.NodeID{"a", "b", "c"} {
		c.start(id, []transport.NodeID{"a", "b", "c"})
	}
	for c.leader() == "" {
		c.nodes["a"].Tick()
		c.run()
	}
	lead := c.nodes[c.leader()]

	// Add d as a learner: it is started with Join after being added.
	_, _, err := lead.ProposeConfChange(raft.ConfChange{Changes: []raft.ConfChangeOp{{Type: raft.ConfAddLearner, Node: "d"}}})
	fmt.Println("add learner:", err)
	c.start("d", nil)
	c.run()
	// Wait (heartbeat after heartbeat) until d's log matches the leader's.
	for ticks := 1; ; ticks++ {
		if st := lead.Status(); st.Progress["d"].Match == st.LastIndex {
			fmt.Println("d caught up after", ticks, "heartbeat(s)")
			break
		}
		lead.Tick()
		c.run()
	}
	_, _, err = lead.ProposeConfChange(raft.ConfChange{Changes: []raft.ConfChangeOp{{Type: raft.ConfPromote, Node: "d"}}})
	fmt.Println("promote:", err)
	c.run()
	fmt.Println("voters:", lead.Status().Membership.Voters)

	// A linearizable read from a follower: one heartbeat round.
	_ = c.nodes["d"].ReadIndex([]byte("read-1"))
	c.run()
	rs := c.reads["d"]
	fmt.Printf("read %s at index %d\n", rs[0].Context, rs[0].Index)

	// Hand leadership to d.
	fmt.Println("transfer:", lead.TransferLeadership("d"))
	c.run()
	fmt.Println("leader:", c.leader())
	// Output:
	// add learner: <nil>
	// d caught up after 2 heartbeat(s)
	// promote: <nil>
	// voters: [a b c d]
	// read read-1 at index 3
	// transfer: <nil>
	// leader: d
}
