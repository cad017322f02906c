package txn

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/transport"
)

// tableStep is one command applied to a txnTable: built in term cmdTerm,
// in a log entry of term entryTerm.
type tableStep struct {
	cmdTerm, entryTerm uint64
	takeover           bool
	recs               []Record
	wantErr            error // nil: applied
}

var (
	tx    = uuid.MustParse("00000000-0000-0000-0000-000000000001")
	ty    = uuid.MustParse("00000000-0000-0000-0000-000000000002")
	parts = []transport.NodeID{"p1", "p2"}
)

func begin(id uuid.UUID) Record  { return Record{Type: RecBegin, Txn: id, Participants: parts} }
func commit(id uuid.UUID) Record { return Record{Type: RecCommit, Txn: id, Participants: parts} }
func end(id uuid.UUID) Record    { return Record{Type: RecEnd, Txn: id} }
func abort(id uuid.UUID) Record  { return Record{Type: RecAbort, Txn: id} }

func applyStep(t *testing.T, s *txnTable, i int, st tableStep) any {
	t.Helper()
	var cmd []byte
	if st.takeover {
		cmd = encodeTakeover(st.cmdTerm)
	} else {
		var err error
		if cmd, err = encodeBatch(st.cmdTerm, st.recs); err != nil {
			t.Fatal(err)
		}
	}
	return s.Apply(consensus.Entry{Index: uint64(i + 1), Term: st.entryTerm, Command: cmd})
}

// TestTxnTableDecisions holds the rules that keep two coordinator leaders
// from deciding differently: a COMMIT counts only for a transaction begun
// in its own term and still undecided; a takeover aborts what earlier
// terms left undecided; a logged abort (RecAbort) bars a later COMMIT; a
// command built in one term is refused in another.
func TestTxnTableDecisions(t *testing.T) {
	tests := []struct {
		name  string
		steps []tableStep
		want  Outcome // tx's outcome at the end
		held  bool    // tx still in the table
	}{
		{"commit in its term", []tableStep{
			{1, 1, true, nil, nil},
			{1, 1, false, []Record{begin(tx)}, nil},
			{1, 1, false, []Record{commit(tx)}, nil},
		}, Committed, true},
		{"takeover aborts the undecided", []tableStep{
			{1, 1, true, nil, nil},
			{1, 1, false, []Record{begin(tx)}, nil},
			{2, 2, true, nil, nil},
			{2, 2, false, []Record{commit(tx)}, errRefused},
		}, Aborted, true},
		{"a second takeover in one term aborts that term's undecided", []tableStep{
			{1, 1, true, nil, nil},
			{1, 1, false, []Record{begin(tx)}, nil},
			{1, 1, true, nil, nil},
			{1, 1, false, []Record{commit(tx)}, errRefused},
		}, Aborted, true},
		{"takeover keeps a commit", []tableStep{
			{1, 1, true, nil, nil},
			{1, 1, false, []Record{begin(tx), commit(tx)}, nil},
			{2, 2, true, nil, nil},
		}, Committed, true},
		{"command of an old term refused", []tableStep{
			{1, 1, true, nil, nil},
			{1, 1, false, []Record{begin(tx)}, nil},
			{1, 3, false, []Record{commit(tx)}, errStaleTerm},
		}, Unknown, true},
		{"batch before the takeover of its term", []tableStep{
			{1, 1, true, nil, nil},
			{2, 2, false, []Record{begin(tx)}, errNoTakeover},
		}, Unknown, false},
		{"commit without begin", []tableStep{
			{1, 1, true, nil, nil},
			{1, 1, false, []Record{commit(tx)}, errRefused},
		}, Unknown, false},
		{"presumed abort bars a late begin and commit", []tableStep{
			{1, 1, true, nil, nil},
			{1, 1, false, []Record{abort(tx)}, nil},
			{1, 1, false, []Record{begin(tx), commit(tx)}, errRefused},
		}, Aborted, true},
		{"logged abort bars a commit", []tableStep{
			{1, 1, true, nil, nil},
			{1, 1, false, []Record{begin(tx)}, nil},
			{1, 1, false, []Record{abort(tx)}, nil},
			{1, 1, false, []Record{commit(tx)}, errRefused},
		}, Aborted, true},
		{"abort after commit changes nothing", []tableStep{
			{1, 1, true, nil, nil},
			{1, 1, false, []Record{begin(tx), commit(tx)}, nil},
			{1, 1, false, []Record{abort(tx)}, nil},
		}, Committed, true},
		{"a refused batch applies nothing", []tableStep{
			{1, 1, true, nil, nil},
			{1, 1, false, []Record{begin(ty), commit(tx)}, errRefused},
		}, Unknown, false},
		{"end forgets", []tableStep{
			{1, 1, true, nil, nil},
			{1, 1, false, []Record{begin(tx), commit(tx)}, nil},
			{1, 1, false, []Record{end(tx)}, nil},
		}, Unknown, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTxnTable()
			for i, st := range tt.steps {
				res := applyStep(t, s, i, st)
				err, _ := res.(error)
				if !errors.Is(err, st.wantErr) || (st.wantErr == nil && err != nil) {
					t.Fatalf("step %d: Apply() = %v; want %v", i, res, st.wantErr)
				}
			}
			got, held := s.state(tx)
			if got != tt.want || held != tt.held {
				t.Errorf("state(tx) = %v, %v; want %v, %v", got, held, tt.want, tt.held)
			}
			if _, held := s.state(ty); held && tt.name == "a refused batch applies nothing" {
				t.Errorf("ty was begun by a refused batch")
			}
		})
	}
}

// TestTxnTableTakeoverResult: a takeover returns what the new leader must
// finish (COMMIT for the committed, BEGIN, meaning abort, for the rest)
// and fires the events the waiters learn from.
func TestTxnTableTakeoverResult(t *testing.T) {
	s := newTxnTable()
	var events []tableEvent
	s.onEvent = func(ev tableEvent) { events = append(events, ev) }
	applyStep(t, s, 0, tableStep{1, 1, true, nil, nil})
	applyStep(t, s, 1, tableStep{1, 1, false, []Record{begin(tx), begin(ty), commit(ty)}, nil})
	res := applyStep(t, s, 2, tableStep{2, 2, true, nil, nil})
	recs, ok := res.([]Record)
	if !ok || len(recs) != 2 || recs[0].Type != RecBegin || recs[0].Txn != tx || recs[1].Type != RecCommit || recs[1].Txn != ty {
		t.Fatalf("takeover = %v; want [BEGIN tx, COMMIT ty]", res)
	}
	if len(events) != 3 || events[0].Takeover != 1 || len(events[1].Committed) != 1 || events[1].Committed[0] != ty || events[2].Takeover != 2 {
		t.Fatalf("events = %+v; want a takeover in term 1, ty committed, a takeover in term 2", events)
	}
}

// TestTxnTableSnapshotRoundTrip: Restore(Snapshot()) gives the same table.
func TestTxnTableSnapshotRoundTrip(t *testing.T) {
	s := newTxnTable()
	applyStep(t, s, 0, tableStep{1, 1, true, nil, nil})
	applyStep(t, s, 1, tableStep{1, 1, false, []Record{begin(tx), begin(ty), commit(ty), abort(uuid.New())}, nil})
	snap := s.snapshotBytes()
	r := newTxnTable()
	if err := r.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	if got := r.snapshotBytes(); !bytes.Equal(got, snap) {
		t.Fatalf("snapshot after restore differs:\n%x\n%x", got, snap)
	}
	if err := r.Restore(bytes.NewReader(snap[:len(snap)-3])); err == nil {
		t.Fatal("Restore(truncated) = nil; want an error")
	}
}

// FuzzTxnTable: any command bytes are applied or refused, never panic,
// and refused ones leave the table unchanged.
func FuzzTxnTable(f *testing.F) {
	b, _ := encodeBatch(1, []Record{begin(tx), commit(tx), end(ty), abort(ty)})
	f.Add(uint64(1), b)
	f.Add(uint64(1), encodeTakeover(1))
	f.Add(uint64(2), []byte{cmdBatch, 2, 200})
	f.Fuzz(func(t *testing.T, term uint64, cmd []byte) {
		s := newTxnTable()
		s.Apply(consensus.Entry{Index: 1, Term: 1, Command: encodeTakeover(1)})
		before := s.snapshotBytes()
		res := s.Apply(consensus.Entry{Index: 2, Term: term, Command: cmd})
		if _, refused := res.(error); refused && !bytes.Equal(before, s.snapshotBytes()) {
			t.Fatalf("a refused command changed the table")
		}
		if err := newTxnTable().Restore(bytes.NewReader(cmd)); err == nil {
			_ = err // valid by chance; fine
		}
	})
}

// TestReplicatedCorePresumedAbortIsLogged: a replicated core answers a
// question about a transaction it does not know only through the log
// (RecAbort in the same Ready as the answer, which the driver releases
// once the record is applied): a leader deposed without knowing it could
// otherwise presume abort for a transaction the new leader commits.
func TestReplicatedCorePresumedAbortIsLogged(t *testing.T) {
	c, err := NewRawCoordinator("r1", DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	c.replicated = true
	for _, m := range []Message{{Type: MsgQuery, Txn: tx}, {Type: MsgVote, Txn: ty, Outcome: Committed}} {
		c.Step(time.Time{}, "p1", m)
		rd := c.Ready()
		if len(rd.Log) != 1 || rd.Log[0].Type != RecAbort || rd.Log[0].Txn != m.Txn {
			t.Fatalf("%v: Ready.Log = %v; want RecAbort %s", m.Type, rd.Log, m.Txn)
		}
		if len(rd.Messages) != 1 || rd.Messages[0].Msg.Outcome != Aborted {
			t.Fatalf("%v: Ready.Messages = %v; want one ABORT", m.Type, rd.Messages)
		}
	}
}

// TestTxnTableAbortOfCommitted: a RecAbort that meets a committed
// transaction changes nothing and names it in the result, so that the
// driver withholds its presumed-abort answer.
func TestTxnTableAbortOfCommitted(t *testing.T) {
	s := newTxnTable()
	applyStep(t, s, 0, tableStep{1, 1, true, nil, nil})
	applyStep(t, s, 1, tableStep{1, 1, false, []Record{begin(tx), commit(tx)}, nil})
	res := applyStep(t, s, 2, tableStep{1, 1, false, []Record{abort(tx), abort(ty)}, nil})
	got, ok := res.(abortsRefused)
	if !ok || len(got) != 1 || got[0] != tx {
		t.Fatalf("Apply(RecAbort tx, ty) = %v; want abortsRefused{tx}", res)
	}
	if o, _ := s.state(tx); o != Committed {
		t.Fatalf("tx is %v; want committed", o)
	}
}
