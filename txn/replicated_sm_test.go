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

// tableStep is one command applied to a txnTable: built in term cmdTerm
// (and, a batch, under the takeover at log index epoch; 0: the table's
// last takeover), in a log entry of term entryTerm.
type tableStep struct {
	cmdTerm, entryTerm uint64
	takeover           bool
	recs               []Record
	wantErr            error // nil: applied
	epoch              uint64
}

var (
	tx    = uuid.MustParse("00000000-0000-0000-0000-000000000001")
	ty    = uuid.MustParse("00000000-0000-0000-0000-000000000002")
	parts = []transport.NodeID{"p1", "p2"}
)

func commit(id uuid.UUID) Record { return Record{Type: RecCommit, Txn: id, Participants: parts} }
func end(id uuid.UUID) Record    { return Record{Type: RecEnd, Txn: id} }
func abort(id uuid.UUID) Record  { return Record{Type: RecAbort, Txn: id} }

// applyStep applies st as the log entry at index i+1.
func applyStep(t *testing.T, s *txnTable, i int, st tableStep) any {
	t.Helper()
	var cmd []byte
	if st.takeover {
		cmd = encodeTakeover(st.cmdTerm)
	} else {
		epoch := st.epoch
		if epoch == 0 {
			s.mu.Lock()
			epoch = s.epoch
			s.mu.Unlock()
		}
		var err error
		if cmd, err = encodeBatch(st.cmdTerm, epoch, st.recs); err != nil {
			t.Fatal(err)
		}
	}
	return s.Apply(consensus.Entry{Index: uint64(i + 1), Term: st.entryTerm, Command: cmd})
}

// TestTxnTableDecisions holds the rules that keep two coordinator leaders
// from deciding differently: a batch counts only if built under the last
// takeover (its epoch), so a takeover fences every COMMIT not yet in the
// table, also one of its own term built before its leader stepped down
// and took over again; a COMMIT of a transaction the table holds (a
// logged abort, or a commit) is refused; a command built in one term is
// refused in another.
func TestTxnTableDecisions(t *testing.T) {
	tests := []struct {
		name  string
		steps []tableStep
		want  Outcome // tx's outcome at the end
		held  bool    // tx still in the table
	}{
		{"commit under its takeover", []tableStep{
			{1, 1, true, nil, nil, 0},
			{1, 1, false, []Record{commit(tx)}, nil, 0},
		}, Committed, true},
		{"a takeover fences an earlier leader's commit", []tableStep{
			{1, 1, true, nil, nil, 0},
			{2, 2, true, nil, nil, 0},
			{2, 2, false, []Record{commit(tx)}, errNoTakeover, 1},
		}, Unknown, false},
		{"a second takeover in one term fences that term's earlier commits", []tableStep{
			{1, 1, true, nil, nil, 0},
			{1, 1, true, nil, nil, 0},
			{1, 1, false, []Record{commit(tx)}, errNoTakeover, 1},
		}, Unknown, false},
		{"takeover keeps a commit", []tableStep{
			{1, 1, true, nil, nil, 0},
			{1, 1, false, []Record{commit(tx)}, nil, 0},
			{2, 2, true, nil, nil, 0},
		}, Committed, true},
		{"command of an old term refused", []tableStep{
			{1, 1, true, nil, nil, 0},
			{1, 3, false, []Record{commit(tx)}, errStaleTerm, 0},
		}, Unknown, false},
		{"batch before the takeover of its term", []tableStep{
			{1, 1, true, nil, nil, 0},
			{2, 2, false, []Record{commit(tx)}, errNoTakeover, 0},
		}, Unknown, false},
		{"presumed abort bars a late commit", []tableStep{
			{1, 1, true, nil, nil, 0},
			{1, 1, false, []Record{abort(tx)}, nil, 0},
			{1, 1, false, []Record{commit(tx)}, errRefused, 0},
		}, Aborted, true},
		{"presumed abort by a new leader bars the old leader's commit", []tableStep{
			{1, 1, true, nil, nil, 0},
			{2, 2, true, nil, nil, 0},
			{2, 2, false, []Record{abort(tx)}, nil, 0},
			{2, 2, false, []Record{commit(tx)}, errRefused, 0},
		}, Aborted, true},
		{"a commit is not repeated", []tableStep{
			{1, 1, true, nil, nil, 0},
			{1, 1, false, []Record{commit(tx)}, nil, 0},
			{1, 1, false, []Record{commit(tx)}, errRefused, 0},
		}, Committed, true},
		{"abort after commit changes nothing", []tableStep{
			{1, 1, true, nil, nil, 0},
			{1, 1, false, []Record{commit(tx)}, nil, 0},
			{1, 1, false, []Record{abort(tx)}, nil, 0},
		}, Committed, true},
		{"a refused batch applies nothing", []tableStep{
			{1, 1, true, nil, nil, 0},
			{1, 1, false, []Record{abort(ty)}, nil, 0},
			{1, 1, false, []Record{commit(tx), commit(ty)}, errRefused, 0},
		}, Unknown, false},
		{"end forgets", []tableStep{
			{1, 1, true, nil, nil, 0},
			{1, 1, false, []Record{commit(tx)}, nil, 0},
			{1, 1, false, []Record{end(tx)}, nil, 0},
		}, Unknown, false},
		{"end keeps a tombstone", []tableStep{
			{1, 1, true, nil, nil, 0},
			{1, 1, false, []Record{abort(tx), end(tx)}, nil, 0},
			{1, 1, false, []Record{commit(tx)}, errRefused, 0},
		}, Aborted, true},
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
		})
	}
}

// TestTxnTableTakeoverResult: a takeover returns its epoch (its log index)
// and what the new leader must finish (a COMMIT for each committed
// transaction not ended), and fires the events the waiters learn from.
func TestTxnTableTakeoverResult(t *testing.T) {
	s := newTxnTable()
	var events []tableEvent
	s.onEvent = func(ev tableEvent) { events = append(events, ev) }
	applyStep(t, s, 0, tableStep{1, 1, true, nil, nil, 0})
	applyStep(t, s, 1, tableStep{1, 1, false, []Record{abort(tx), commit(ty)}, nil, 0})
	res := applyStep(t, s, 2, tableStep{2, 2, true, nil, nil, 0})
	tr, ok := res.(takeoverResult)
	if !ok || tr.epoch != 3 || len(tr.recs) != 1 || tr.recs[0].Type != RecCommit || tr.recs[0].Txn != ty {
		t.Fatalf("takeover = %+v; want epoch 3, [COMMIT ty]", res)
	}
	if len(events) != 3 || events[0].Takeover != 1 || len(events[1].Committed) != 1 || events[1].Committed[0] != ty || events[2].Takeover != 3 {
		t.Fatalf("events = %+v; want a takeover at 1, ty committed, a takeover at 3", events)
	}
}

// TestTxnTableSnapshotRoundTrip: Restore(Snapshot()) gives the same table.
func TestTxnTableSnapshotRoundTrip(t *testing.T) {
	s := newTxnTable()
	applyStep(t, s, 0, tableStep{1, 1, true, nil, nil, 0})
	applyStep(t, s, 1, tableStep{1, 1, false, []Record{commit(tx), commit(ty), abort(uuid.New())}, nil, 0})
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
	b, _ := encodeBatch(1, 1, []Record{commit(tx), end(ty), abort(ty)})
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
	applyStep(t, s, 0, tableStep{1, 1, true, nil, nil, 0})
	applyStep(t, s, 1, tableStep{1, 1, false, []Record{commit(tx)}, nil, 0})
	res := applyStep(t, s, 2, tableStep{1, 1, false, []Record{abort(tx), abort(ty)}, nil, 0})
	got, ok := res.(abortsRefused)
	if !ok || len(got) != 1 || got[0] != tx {
		t.Fatalf("Apply(RecAbort tx, ty) = %v; want abortsRefused{tx}", res)
	}
	if o, _ := s.state(tx); o != Committed {
		t.Fatalf("tx is %v; want committed", o)
	}
}

// TestReplicatedCoreWritesOnlyCommit: a replicated core's only record on
// a transaction's way to its decision is the COMMIT (one log round): no
// BEGIN, lazy or not; an END (lazy) once every participant acknowledged
// a commit, and none for an abort (the table holds no aborted
// transaction to forget).
func TestReplicatedCoreWritesOnlyCommit(t *testing.T) {
	c, err := NewRawCoordinator("r1", DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	c.replicated = true
	now := time.Unix(0, 0)
	work := []Work{{Participant: "p1"}, {Participant: "p2"}}
	if err := c.Begin(now, tx, work, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Begin(now, ty, work, 0); err != nil {
		t.Fatal(err)
	}
	rd := c.Ready()
	if len(rd.Log) != 0 || len(rd.Lazy) != 0 || len(rd.Messages) != 4 {
		t.Fatalf("after Begin: Log %v, Lazy %v, %d messages; want no record, 4 PREPAREs", rd.Log, rd.Lazy, len(rd.Messages))
	}
	for _, p := range []transport.NodeID{"p1", "p2"} {
		c.Step(now, p, Message{Type: MsgVote, Txn: tx, Outcome: Committed})
	}
	c.Step(now, "p1", Message{Type: MsgVote, Txn: ty, Outcome: Aborted})
	rd = c.Ready()
	if len(rd.Log) != 1 || rd.Log[0].Type != RecCommit || rd.Log[0].Txn != tx || len(rd.Lazy) != 0 {
		t.Fatalf("after the votes: Log %v, Lazy %v; want [COMMIT tx] and nothing lazy", rd.Log, rd.Lazy)
	}
	for _, p := range []transport.NodeID{"p1", "p2"} {
		c.Step(now, p, Message{Type: MsgAck, Txn: tx})
	}
	c.Step(now, "p2", Message{Type: MsgAck, Txn: ty})
	rd = c.Ready()
	if len(rd.Log) != 0 || len(rd.Lazy) != 1 || rd.Lazy[0].Type != RecEnd || rd.Lazy[0].Txn != tx {
		t.Fatalf("after the ACKs: Log %v, Lazy %v; want [END tx] lazy only", rd.Log, rd.Lazy)
	}
}

// TestTxnTableRefusesForeignInput: a takeover of a term older than the
// table's is refused (it would hand its proposer another leader's epoch),
// and a batch holding a record a replicated coordinator never writes
// (BEGIN, PREPARED, DONE) is refused as malformed, leaving the table as it
// was.
func TestTxnTableRefusesForeignInput(t *testing.T) {
	s := newTxnTable()
	applyStep(t, s, 0, tableStep{2, 2, true, nil, nil, 0})
	if res := applyStep(t, s, 1, tableStep{1, 1, true, nil, nil, 0}); !isErr(res, errStaleTerm) {
		t.Fatalf("takeover of term 1 after term 2 = %v; want errStaleTerm", res)
	}
	for _, rec := range []Record{
		{Type: RecBegin, Txn: tx, Participants: parts},
		{Type: RecPrepared, Txn: tx, Coordinator: "c", Participants: parts},
		{Type: RecDone, Txn: tx, Outcome: Committed},
	} {
		cmd, err := encodeBatch(2, 1, []Record{rec})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeCommand(cmd); !errors.Is(err, ErrMalformed) {
			t.Errorf("decodeCommand(batch of %s) = %v; want ErrMalformed", rec, err)
		}
		// Applied, in the table's current epoch: refused, nothing kept.
		if res := applyStep(t, s, 2, tableStep{2, 2, false, []Record{rec}, nil, 0}); !isErr(res, ErrMalformed) {
			t.Errorf("Apply(batch of %s) = %v; want ErrMalformed", rec, res)
		}
	}
	if got, held := s.state(tx); held || got != Unknown {
		t.Fatalf("state(tx) = %v, %v; want not held", got, held)
	}
}

// isErr reports whether an Apply result is an error matching target.
func isErr(res any, target error) bool {
	err, _ := res.(error)
	return errors.Is(err, target)
}
