package txn_test

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/txn"
)

// TestForgottenCommitIsNotReportedAsAbort: a participant that committed a
// transaction and then forgot it (FinishedTTL passed) must not make an
// in-doubt peer abort it. Its "no record" answer carries how far back its
// memory reaches, and the peer, prepared before that, ignores it.
func TestForgottenCommitIsNotReportedAsAbort(t *testing.T) {
	cfg := testConfig()
	t0 := time.Unix(1000, 0)
	parts := []transport.NodeID{"p1", "p2"}
	id := uuid.New()
	newPart := func(name transport.NodeID) *txn.RawParticipant {
		p, err := txn.NewRawParticipant(name, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Recover(t0, nil); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p1, p2 := newPart("p1"), newPart("p2")
	prepare := txn.Message{Type: txn.MsgPrepare, Txn: id, Coordinator: "c", Participants: parts}
	for _, p := range []*txn.RawParticipant{p1, p2} {
		p.Step(t0, "c", prepare)
		p.Ready()
		p.Prepared(t0, id, nil, nil)
		p.Ready()
	}
	// p2 learns COMMIT; p1's COMMIT is lost.
	p2.Step(t0, "c", txn.Message{Type: txn.MsgDecision, Txn: id, Outcome: txn.Committed})
	p2.Ready()
	// Long after, p2 has forgotten; p1 asks it.
	later := t0.Add(2 * cfg.FinishedTTL)
	p2.Tick(later)
	p2.Ready()
	p2.Step(later, "p1", txn.Message{Type: txn.MsgQuery, Txn: id})
	rd := p2.Ready()
	if len(rd.Messages) != 1 || rd.Messages[0].Msg.Outcome != txn.Aborted || rd.Messages[0].Msg.KnownFor == 0 {
		t.Fatalf("p2's answer = %+v; want an abort with KnownFor > 0", rd.Messages)
	}
	p1.Step(later, "p2", rd.Messages[0].Msg)
	if got := p1.Outcome(id); got != txn.Unknown {
		t.Fatalf("p1 outcome after the uncertain answer = %v; want unknown (still in doubt)", got)
	}
	if got := p1.Status().InDoubt; got != 1 {
		t.Fatalf("p1 in doubt = %d; want 1", got)
	}
}

func TestRecoverRejectsForeignRecords(t *testing.T) {
	c, err := txn.NewRawCoordinator("c", testConfig())
	if err != nil {
		t.Fatal(err)
	}
	p, err := txn.NewRawParticipant("p", testConfig())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		err  error
	}{
		{"coordinator given a PREPARED", c.Recover(time.Unix(0, 0), []txn.Record{{Type: txn.RecPrepared, Txn: uuid.New()}})},
		{"coordinator given an empty COMMIT", c.Recover(time.Unix(0, 0), []txn.Record{{Type: txn.RecCommit, Txn: uuid.New()}})},
		{"coordinator given an empty BEGIN", c.Recover(time.Unix(0, 0), []txn.Record{{Type: txn.RecBegin, Txn: uuid.New()}})},
		{"coordinator given a DONE", c.Recover(time.Unix(0, 0), []txn.Record{{Type: txn.RecDone, Txn: uuid.New(), Outcome: txn.Aborted}})},
		{"participant given an END", func() error {
			_, err := p.Recover(time.Unix(0, 0), []txn.Record{{Type: txn.RecEnd, Txn: uuid.New()}})
			return err
		}()},
		{"participant given a BEGIN", func() error {
			_, err := p.Recover(time.Unix(0, 0), []txn.Record{{Type: txn.RecBegin, Txn: uuid.New(), Participants: []transport.NodeID{"p"}}})
			return err
		}()},
		{"participant given a COMMIT", func() error {
			_, err := p.Recover(time.Unix(0, 0), []txn.Record{{Type: txn.RecCommit, Txn: uuid.New()}})
			return err
		}()},
		{"participant given a DONE without outcome", func() error {
			_, err := p.Recover(time.Unix(0, 0), []txn.Record{{Type: txn.RecDone, Txn: uuid.New()}})
			return err
		}()},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, txn.ErrMalformed) {
			t.Errorf("%s: err = %v; want ErrMalformed", tt.name, tt.err)
		}
	}
}

// TestLongNoReasonIsSendable: a resource manager whose error message is
// longer than the wire allows still gets its NO vote to the coordinator
// (the reason is cut), instead of an unsendable vote and a timeout.
func TestLongNoReasonIsSendable(t *testing.T) {
	p, err := txn.NewRawParticipant("p1", testConfig())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	id := uuid.New()
	p.Step(t0, "c", txn.Message{Type: txn.MsgPrepare, Txn: id, Coordinator: "c", Participants: []transport.NodeID{"p1"}})
	p.Ready()
	p.Prepared(t0, id, nil, errors.New(strings.Repeat("é", 10000)))
	rd := p.Ready()
	if len(rd.Messages) != 1 || rd.Messages[0].Msg.Type != txn.MsgVote || rd.Messages[0].Msg.Outcome != txn.Aborted {
		t.Fatalf("messages = %v; want one NO vote", rd.Messages)
	}
	b, err := rd.Messages[0].Msg.MarshalBinary()
	if err != nil {
		t.Fatalf("MarshalBinary(NO vote) = %v; want nil", err)
	}
	m, err := txn.UnmarshalMessage(b)
	if err != nil || !utf8.ValidString(m.Reason) || !strings.HasPrefix(m.Reason, "éé") {
		t.Fatalf("decoded reason %.20q…, err %v; want a valid UTF-8 prefix of the error", m.Reason, err)
	}
}
