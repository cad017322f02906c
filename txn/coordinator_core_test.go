package txn_test

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/txn"
)

// TestCoordinatorRecovery: on restart the coordinator finishes what it had
// decided (COMMIT re-sent) and actively aborts what it had begun but not
// decided (ABORT sent at once, not only when a participant asks), and
// keeps re-sending until every participant acknowledges.
func TestCoordinatorRecovery(t *testing.T) {
	id := uuid.MustParse("6ba7b810-9dad-41d1-80b4-00c04fd430c8")
	parts := []transport.NodeID{"p1", "p2"}
	begin := txn.Record{Type: txn.RecBegin, Txn: id, Participants: parts}
	commit := txn.Record{Type: txn.RecCommit, Txn: id, Participants: parts}
	end := txn.Record{Type: txn.RecEnd, Txn: id}
	tests := []struct {
		name string
		log  []txn.Record
		want txn.Outcome // Unknown: nothing to send
	}{
		{"empty log", nil, txn.Unknown},
		{"begun, undecided", []txn.Record{begin}, txn.Aborted},
		{"begun twice (checkpoint then lazy write)", []txn.Record{begin, begin}, txn.Aborted},
		{"begun and committed", []txn.Record{begin, commit}, txn.Committed},
		{"committed, BEGIN lost", []txn.Record{commit}, txn.Committed},
		{"committed, then a stale BEGIN", []txn.Record{commit, begin}, txn.Committed},
		{"committed and acknowledged", []txn.Record{begin, commit, end}, txn.Unknown},
		{"aborted and acknowledged", []txn.Record{begin, end}, txn.Unknown},
		{"ended, then begun again", []txn.Record{begin, end, begin}, txn.Aborted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := txn.NewRawCoordinator("c", testConfig())
			if err != nil {
				t.Fatal(err)
			}
			t0 := time.Unix(1000, 0)
			if err := c.Recover(t0, tt.log); err != nil {
				t.Fatalf("Recover = %v; want nil", err)
			}
			got := decisionsSent(c.Ready())
			want := map[transport.NodeID]txn.Outcome{}
			if tt.want != txn.Unknown {
				want = map[transport.NodeID]txn.Outcome{"p1": tt.want, "p2": tt.want}
			}
			if !maps.Equal(got, want) {
				t.Fatalf("decisions sent after Recover = %v; want %v", got, want)
			}
			// p1 acknowledges; the retry goes to p2 only.
			c.Step(t0, "p1", txn.Message{Type: txn.MsgAck, Txn: id})
			c.Tick(t0.Add(testConfig().RetryInterval))
			got = decisionsSent(c.Ready())
			delete(want, "p1")
			if !maps.Equal(got, want) {
				t.Fatalf("decisions re-sent after p1's ACK = %v; want %v", got, want)
			}
			c.Step(t0, "p2", txn.Message{Type: txn.MsgAck, Txn: id})
			if st := c.Status(); st != (txn.CoordinatorStatus{}) {
				t.Fatalf("Status after every ACK = %+v; want nothing tracked", st)
			}
			rd := c.Ready()
			wantEnd := []txn.Record{}
			if tt.want != txn.Unknown {
				wantEnd = []txn.Record{end}
			}
			if !slices.EqualFunc(append([]txn.Record{}, rd.Lazy...), wantEnd, func(a, b txn.Record) bool { return a.Type == b.Type && a.Txn == b.Txn }) {
				t.Fatalf("lazy records after every ACK = %v; want %v", rd.Lazy, wantEnd)
			}
		})
	}
}

func decisionsSent(rd txn.Ready) map[transport.NodeID]txn.Outcome {
	got := map[transport.NodeID]txn.Outcome{}
	for _, e := range rd.Messages {
		if e.Msg.Type == txn.MsgDecision {
			got[e.To] = e.Msg.Outcome
		}
	}
	return got
}

// TestBeginIsLazyAndCheckpointed: Begin writes its BEGIN record lazily
// (the PREPAREs of the same Ready do not wait for it), and a checkpoint
// keeps a BEGIN for every transaction still undecided, so that recovery
// from the checkpoint aborts it.
func TestBeginIsLazyAndCheckpointed(t *testing.T) {
	cfg := testConfig()
	cfg.CheckpointEvery = 2
	c, err := txn.NewRawCoordinator("c", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	a, b := uuid.New(), uuid.New()
	work := []txn.Work{{Participant: "p1"}, {Participant: "p2"}}
	if err := c.Begin(t0, a, work, 0); err != nil {
		t.Fatal(err)
	}
	rd := c.Ready()
	if len(rd.Log) != 0 || len(rd.Lazy) != 1 || rd.Lazy[0].Type != txn.RecBegin || rd.Lazy[0].Txn != a {
		t.Fatalf("Ready after Begin: Log %v, Lazy %v; want no Log and one lazy BEGIN", rd.Log, rd.Lazy)
	}
	if got := len(rd.Messages); got != 2 {
		t.Fatalf("PREPAREs sent = %d; want 2", got)
	}
	if err := c.Begin(t0, b, work, 0); err != nil {
		t.Fatal(err)
	}
	rd = c.Ready()
	var ck []txn.Record
	for _, r := range rd.Checkpoint {
		if r.Type == txn.RecBegin {
			ck = append(ck, r)
		}
	}
	if len(ck) != 2 || !slices.ContainsFunc(ck, func(r txn.Record) bool { return r.Txn == a }) {
		t.Fatalf("checkpoint = %v; want a BEGIN for each undecided transaction", rd.Checkpoint)
	}
	r, err := txn.NewRawCoordinator("c", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Recover(t0, rd.Checkpoint); err != nil {
		t.Fatal(err)
	}
	if got := r.Status(); got.Aborted != 2 {
		t.Fatalf("Status after recovering the checkpoint = %+v; want 2 aborted", got)
	}
}
