package raft

import (
	"errors"
	"testing"

	"github.com/distkit/distkit/transport"
)

// Leadership transfer (thesis §3.10).

// §3.10: the target, once up to date, receives TimeoutNow and wins at once,
// although every voter heard from the leader within an election timeout
// (check-quorum lease, pre-vote on): the transfer campaign bypasses both.
func TestTransferLeadership(t *testing.T) {
	tests := []struct {
		name   string
		to     transport.NodeID
		lagger transport.NodeID // cut off while entries are proposed, then healed
		want   transport.NodeID
	}{
		{"to an up-to-date voter", "n2", "", "n2"},
		{"to a lagging voter: caught up first", "n3", "n3", "n3"},
		{"to the most up-to-date voter when empty", "", "n2", "n3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCluster(t, 3, nil)
			c.electNode("n1")
			if tt.lagger != "" {
				c.drop = func(m Message) bool { return m.To == tt.lagger }
			}
			for _, d := range []string{"a", "b", "c"} {
				if _, _, err := c.nodes["n1"].Propose([]byte(d)); err != nil {
					t.Fatal(err)
				}
			}
			c.process()
			c.drop = nil
			term := c.nodes["n1"].Status().Term
			if err := c.nodes["n1"].TransferLeadership(tt.to); err != nil {
				t.Fatalf("TransferLeadership(%q): %v", tt.to, err)
			}
			if _, _, err := c.nodes["n1"].Propose([]byte("during")); !errors.Is(err, ErrProposalDropped) || !errors.Is(err, ErrTransferInProgress) {
				t.Errorf("Propose during a transfer: %v; want ErrProposalDropped and ErrTransferInProgress", err)
			}
			c.process() // no ticks: the handover must not wait for a timeout
			if l := c.leader(); l != tt.want {
				t.Fatalf("leader after transfer = %q; want %q", l, tt.want)
			}
			if st := c.nodes[tt.want].Status(); st.Term != term+1 {
				t.Errorf("new leader's term = %d; want %d", st.Term, term+1)
			}
			c.settle()
			if got := c.appliedData(tt.want); len(got) != 3 {
				t.Errorf("new leader applied %q; want the 3 entries committed before", got)
			}
		})
	}
}

// §3.10: "if the transfer does not complete within an election timeout, the
// prior leader aborts the transfer and resumes accepting client requests".
func TestTransferLeadershipTimesOut(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.electNode("n1")
	c.drop = func(m Message) bool { return m.To == "n2" }
	if err := c.nodes["n1"].TransferLeadership("n2"); err != nil {
		t.Fatal(err)
	}
	for range DefaultConfig().ElectionTicks - 1 {
		c.tickAll()
	}
	if st := c.nodes["n1"].Status(); st.LeadTransferee != "n2" || st.Role != Leader {
		t.Fatalf("before the timeout: transferee %q role %v; want n2, leader", st.LeadTransferee, st.Role)
	}
	c.tickAll()
	if st := c.nodes["n1"].Status(); st.LeadTransferee != "" || st.Role != Leader {
		t.Fatalf("after the timeout: transferee %q role %v; want none, still leader", st.LeadTransferee, st.Role)
	}
	if _, _, err := c.nodes["n1"].Propose([]byte("x")); err != nil {
		t.Errorf("Propose after the aborted transfer: %v", err)
	}
}

func TestTransferLeadershipErrors(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.electNode("n1")
	c.addJoiner("l", nil)
	c.changeConf("n1", ConfChange{Changes: []ConfChangeOp{op(ConfAddLearner, "l")}})
	tests := []struct {
		name string
		node transport.NodeID
		to   transport.NodeID
		want error
	}{
		{"to itself", "n1", "n1", ErrNoTransferTarget},
		{"to a learner", "n1", "l", ErrNoTransferTarget},
		{"to a stranger", "n1", "x", ErrNoTransferTarget},
		{"from a follower", "n2", "n3", ErrNotLeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.nodes[tt.node].TransferLeadership(tt.to); !errors.Is(err, tt.want) {
				t.Errorf("TransferLeadership(%q) on %s = %v; want %v", tt.to, tt.node, err, tt.want)
			}
		})
	}
	c.drop = func(m Message) bool { return m.To == "n2" }
	if err := c.nodes["n1"].TransferLeadership("n2"); err != nil {
		t.Fatal(err)
	}
	if err := c.nodes["n1"].TransferLeadership("n3"); !errors.Is(err, ErrTransferInProgress) {
		t.Errorf("second transfer to another node: %v; want ErrTransferInProgress", err)
	}
	if _, _, err := c.nodes["n1"].ProposeConfChange(ConfChange{Changes: []ConfChangeOp{op(ConfRemove, "l")}}); !errors.Is(err, ErrTransferInProgress) {
		t.Errorf("ProposeConfChange during a transfer: %v; want ErrTransferInProgress", err)
	}
}

// MsgTimeoutNow is honoured only from the leader of the current term: from
// anyone else (a stale leader, a follower) it is ignored.
func TestTimeoutNowOnlyFromLeader(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.electNode("n1")
	term := c.nodes["n2"].Status().Term
	for _, from := range []transport.NodeID{"n3", "x"} {
		if err := c.nodes["n2"].Step(Message{Type: MsgTimeoutNow, From: from, To: "n2", Term: term}); err != nil {
			t.Fatal(err)
		}
		c.process()
		if st := c.nodes["n2"].Status(); st.Role != Follower || st.Term != term {
			t.Errorf("after MsgTimeoutNow from %s: n2 is %v in term %d; want follower in term %d", from, st.Role, st.Term, term)
		}
	}
	if l := c.leader(); l != "n1" {
		t.Errorf("leader = %q; want n1 undisturbed", l)
	}
}
