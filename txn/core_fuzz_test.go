package txn_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/txn"
)

// FuzzCores feeds arbitrary decodable messages, from arbitrary senders, to
// a coordinator and a participant in the middle of a transaction: neither
// may panic, and the participant applies a commit only on the word of the
// coordinator or a peer, never of a stranger ("x").
func FuzzCores(f *testing.F) {
	id := uuid.MustParse("6ba7b810-9dad-41d1-80b4-00c04fd430c8")
	for _, m := range []txn.Message{
		{Type: txn.MsgVote, Txn: id, Outcome: txn.Committed},
		{Type: txn.MsgDecision, Txn: id, Outcome: txn.Aborted, KnownFor: time.Second},
		{Type: txn.MsgQuery, Txn: id},
		{Type: txn.MsgPrepare, Txn: id, Coordinator: "c", Participants: []transport.NodeID{"p", "q"}},
	} {
		b, _ := m.MarshalBinary()
		f.Add(b, uint8(0), uint16(10))
	}
	f.Fuzz(func(t *testing.T, b []byte, sender uint8, tick uint16) {
		m, err := txn.UnmarshalMessage(b)
		if err != nil {
			return
		}
		from := []transport.NodeID{"c", "p", "q", "x"}[sender%4]
		now := time.Unix(100, 0)
		c, _ := txn.NewRawCoordinator("c", testConfig())
		p, _ := txn.NewRawParticipant("p", testConfig())
		if _, err := p.Recover(now, nil); err != nil {
			t.Fatal(err)
		}
		if err := c.Begin(now, id, []txn.Work{{Participant: "p"}, {Participant: "q"}}, 0); err != nil {
			t.Fatal(err)
		}
		rd := c.Ready()
		p.Step(now, "c", rd.Messages[0].Msg)
		p.Ready()
		p.Prepared(now, id, nil, nil)
		p.Ready()
		later := now.Add(time.Duration(tick) * time.Millisecond)
		c.Step(later, from, m)
		p.Step(later, from, m)
		c.Tick(later)
		p.Tick(later)
		crd, prd := c.Ready(), p.Ready()
		decided := false
		for _, r := range crd.Results {
			decided = decided || r.Outcome == txn.Committed
		}
		for _, a := range prd.Actions {
			if a.Kind == txn.ActCommit && !decided && from == "x" {
				t.Fatalf("participant committed after %v from %s", m, from)
			}
		}
	})
}
