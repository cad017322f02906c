package txn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/google/uuid"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/transport"
)

// The replicated coordinator's log is a consensus group whose state
// machine, txnTable, holds one record per transaction not yet ended. It
// is deterministic: every replica applies the same commands in the same
// order and ends with the same table, so whichever replica leads next
// finds every decision made before it.
//
// Commands (first byte):
//
//	cmdTakeover | term
//	cmdBatch    | term | count | (len, Record)...
//
// Every command carries the term of the leader that built it, and is
// refused unless it is the term of its log entry: a replica that was
// deposed and elected again never proposes in its new term what it built
// in its old one.
const (
	cmdTakeover byte = 1
	cmdBatch    byte = 2
)

// Errors a command's application returns (as the Propose result).
var (
	// errStaleTerm: the command was built in another term than its entry's.
	errStaleTerm = errors.New("txn: replicated command from another term")
	// errNoTakeover: a batch in a term whose leader has not taken over.
	errNoTakeover = errors.New("txn: replicated batch before the leader took over")
	// errRefused: the batch holds a record the table refuses (a COMMIT
	// for a transaction that is not begun and undecided in this term).
	errRefused = errors.New("txn: replicated record refused")
)

// maxTombstones bounds the aborted transactions the table remembers
// after their RecAbort (see apply).
const maxTombstones = 4096

// tableTxn is one transaction in the table.
type tableTxn struct {
	parts   []transport.NodeID
	term    uint64  // the term whose leader began it (0: a tombstone)
	outcome Outcome // Unknown while undecided
}

// tableEvent tells the driver what an applied command decided: Committed
// lists transactions whose COMMIT was applied; Takeover is the term of an
// applied takeover (0 if none), which aborted every undecided transaction
// of the earlier terms.
type tableEvent struct {
	Committed []uuid.UUID
	Takeover  uint64
}

// txnTable is the replicated coordinator's state machine.
type txnTable struct {
	// mu guards everything below: Apply runs on the consensus node's
	// goroutine, Status on the caller's.
	mu         sync.Mutex
	term       uint64 // the last takeover's term
	txns       map[uuid.UUID]*tableTxn
	order      []uuid.UUID // BEGIN order (may hold ended IDs; compacted)
	tombstones []uuid.UUID // RecAbort of unknown transactions, oldest first
	// onEvent is called from Apply, without mu held, on the node's
	// goroutine; it must not block or call the Node.
	onEvent func(tableEvent)
}

var _ consensus.StateMachine = (*txnTable)(nil)

func newTxnTable() *txnTable { return &txnTable{txns: make(map[uuid.UUID]*tableTxn)} }

func encodeTakeover(term uint64) []byte {
	return binary.AppendUvarint([]byte{cmdTakeover}, term)
}

func encodeBatch(term uint64, recs []Record) ([]byte, error) {
	b := binary.AppendUvarint([]byte{cmdBatch}, term)
	b = binary.AppendUvarint(b, uint64(len(recs)))
	for _, r := range recs {
		rb, err := r.MarshalBinary()
		if err != nil {
			return nil, err
		}
		b = appendBytes(b, rb)
	}
	return b, nil
}

type command struct {
	kind byte
	term uint64
	recs []Record
}

func decodeCommand(b []byte) (command, error) {
	r := reader{b: b}
	c := command{kind: r.byte()}
	if r.err == nil && c.kind != cmdTakeover && c.kind != cmdBatch {
		r.fail("command kind %d", c.kind)
	}
	c.term = r.uvarint()
	if c.kind == cmdBatch {
		n := r.uvarint()
		if r.err == nil && n > uint64(len(r.b)) {
			r.fail("%d records in %d bytes", n, len(r.b))
		}
		for i := uint64(0); i < n && r.err == nil; i++ {
			rb := r.bytes("record", len(r.b))
			if r.err != nil {
				break
			}
			rec, err := UnmarshalRecord(rb)
			if err != nil {
				return command{}, err
			}
			if rec.Type != RecBegin && rec.Type != RecCommit && rec.Type != RecEnd && rec.Type != RecAbort {
				return command{}, fmt.Errorf("%w: %s in a replicated batch", ErrMalformed, rec)
			}
			c.recs = append(c.recs, rec)
		}
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	return c, r.err
}

// Apply implements consensus.StateMachine. The result is a []Record (a
// takeover: the table's live transactions, COMMIT for the committed and
// BEGIN for the aborted), nil or abortsRefused (a batch applied), or an
// error (the command was refused and changed nothing).
func (s *txnTable) Apply(e consensus.Entry) any {
	if len(e.Command) == 0 {
		return nil
	}
	c, err := decodeCommand(e.Command)
	if err != nil {
		return err
	}
	if c.term != e.Term {
		return errStaleTerm
	}
	s.mu.Lock()
	var ev tableEvent
	var res any
	if c.kind == cmdTakeover {
		res = s.takeoverLocked(e.Term, &ev)
	} else {
		res = s.batchLocked(e.Term, c.recs, &ev)
	}
	on := s.onEvent
	s.mu.Unlock()
	if on != nil && (ev.Takeover != 0 || len(ev.Committed) > 0) {
		on(ev)
	}
	return res
}

// takeoverLocked aborts every transaction still undecided (begun by an
// earlier leader, which is gone and was the only one that could commit it,
// or by this term's leader before it stepped down and took over again:
// COMMITs of its old core may still be on their way, and are refused
// now) and returns what the new leader must finish.
func (s *txnTable) takeoverLocked(term uint64, ev *tableEvent) []Record {
	if term >= s.term {
		s.term = term
		ev.Takeover = term
		for _, id := range s.order {
			if t, ok := s.txns[id]; ok && t.outcome == Unknown && t.term <= term {
				t.outcome = Aborted
			}
		}
	}
	live := []Record{}
	for _, id := range s.liveLocked() {
		t := s.txns[id]
		typ := RecBegin // aborted: the leader sends ABORT until acknowledged
		if t.outcome == Committed {
			typ = RecCommit
		}
		live = append(live, Record{Type: typ, Txn: id, Participants: slices.Clone(t.parts)})
	}
	return live
}

// liveLocked returns the live transactions in BEGIN order, compacting order.
func (s *txnTable) liveLocked() []uuid.UUID {
	out := s.order[:0]
	for _, id := range s.order {
		if t, ok := s.txns[id]; ok && t.term != 0 && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	clear(s.order[len(out):])
	s.order = out
	return slices.Clone(out)
}

// batchLocked applies a leader's records. The rules that make two leaders
// unable to decide differently:
//   - COMMIT is accepted only for a transaction begun in this term and
//     still undecided: a takeover has aborted those of earlier terms, and
//     a RecAbort those it names;
//   - the first decision stands: a COMMIT after an abort is refused, and a
//     RecAbort after a commit changes nothing (the result names it, and
//     the driver does not send its presumed-abort answer).
//
// A refused record makes the whole batch refused (nothing is applied):
// its proposer has been overtaken and must stop leading.
func (s *txnTable) batchLocked(term uint64, recs []Record, ev *tableEvent) any {
	if s.term != term {
		return errNoTakeover
	}
	// Check the whole batch first, as if applied in order (overlay holds
	// what the batch itself changes), so that a refusal applies nothing.
	overlay := map[uuid.UUID]tableTxn{}
	view := func(id uuid.UUID) (tableTxn, bool) {
		if t, ok := overlay[id]; ok {
			return t, t.term != 0 || t.outcome != Unknown
		}
		if t, ok := s.txns[id]; ok {
			return *t, true
		}
		return tableTxn{}, false
	}
	for _, r := range recs {
		t, ok := view(r.Txn)
		switch r.Type {
		case RecBegin:
			if ok || len(r.Participants) == 0 {
				return fmt.Errorf("%w: %s", errRefused, r)
			}
			overlay[r.Txn] = tableTxn{term: term}
		case RecCommit:
			if !ok || t.term != term || t.outcome == Aborted {
				return fmt.Errorf("%w: %s", errRefused, r)
			}
			t.outcome = Committed
			overlay[r.Txn] = t
		case RecAbort:
			if t.outcome == Unknown {
				t.outcome = Aborted
			}
			overlay[r.Txn] = t
		case RecEnd:
			if ok && t.term != 0 {
				overlay[r.Txn] = tableTxn{}
			}
		}
	}
	var committedAborts abortsRefused
	for _, r := range recs {
		t := s.txns[r.Txn]
		switch r.Type {
		case RecBegin:
			if t == nil { // a batch may not begin one ID twice
				s.txns[r.Txn] = &tableTxn{parts: slices.Clone(r.Participants), term: term}
				s.order = append(s.order, r.Txn)
			}
		case RecCommit:
			if t.outcome == Unknown {
				t.outcome = Committed
				ev.Committed = append(ev.Committed, r.Txn)
			}
		case RecAbort:
			switch {
			case t == nil:
				// Presumed abort of a transaction the table does not
				// know: remember it for a while. No COMMIT can follow
				// anyway (a COMMIT needs a BEGIN of its own term, which
				// precedes every PREPARE and so every question), but a
				// tombstone makes that visible in the table.
				s.txns[r.Txn] = &tableTxn{outcome: Aborted}
				s.tombstones = append(s.tombstones, r.Txn)
				if len(s.tombstones) > maxTombstones {
					old := s.tombstones[0]
					s.tombstones = s.tombstones[1:]
					if ot, ok := s.txns[old]; ok && ot.term == 0 {
						delete(s.txns, old)
					}
				}
			case t.outcome == Unknown:
				t.outcome = Aborted
			case t.outcome == Committed:
				// The transaction committed after all (a late question
				// about one this leader had just forgotten): the
				// presumed-abort answer must not leave.
				committedAborts = append(committedAborts, r.Txn)
			}
		case RecEnd:
			if t != nil && t.term != 0 {
				delete(s.txns, r.Txn)
			}
		}
	}
	if len(s.order) > 2*len(s.txns)+64 {
		s.liveLocked()
	}
	if len(committedAborts) > 0 {
		return committedAborts
	}
	return nil
}

// abortsRefused is a batch's result when some of its RecAbort records
// named committed transactions: the driver must not send their ABORTs.
type abortsRefused []uuid.UUID

// Snapshot implements consensus.StateMachine: the term, then each live
// transaction (term, outcome, participants) in BEGIN order, then the
// tombstones.
func (s *txnTable) Snapshot(w io.Writer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := binary.AppendUvarint(nil, s.term)
	live := s.liveLocked()
	b = binary.AppendUvarint(b, uint64(len(live)))
	for _, id := range live {
		t := s.txns[id]
		b = append(b, id[:]...)
		b = binary.AppendUvarint(b, t.term)
		b = append(b, byte(t.outcome))
		b = binary.AppendUvarint(b, uint64(len(t.parts)))
		for _, p := range t.parts {
			b = appendBytes(b, []byte(p))
		}
	}
	b = binary.AppendUvarint(b, uint64(len(s.tombstones)))
	for _, id := range s.tombstones {
		b = append(b, id[:]...)
	}
	_, err := w.Write(b)
	return err
}

// Restore implements consensus.StateMachine.
func (s *txnTable) Restore(rd io.Reader) error {
	b, err := io.ReadAll(rd)
	if err != nil {
		return fmt.Errorf("txn: restore coordinator table: %w", err)
	}
	r := reader{b: b}
	term := r.uvarint()
	txns := make(map[uuid.UUID]*tableTxn)
	var order, tombs []uuid.UUID
	id := func() (u uuid.UUID) {
		if r.err == nil && len(r.b) < 16 {
			r.fail("truncated transaction ID")
		}
		if r.err == nil {
			copy(u[:], r.b)
			r.b = r.b[16:]
		}
		return u
	}
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)) {
		r.fail("%d transactions in %d bytes", n, len(r.b))
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		u := id()
		t := &tableTxn{term: r.uvarint(), outcome: Outcome(r.byte())}
		np := r.uvarint()
		if r.err == nil && (np == 0 || np > MaxParticipants || t.term == 0 || t.outcome > Aborted) {
			r.fail("transaction record")
		}
		for j := uint64(0); j < np && r.err == nil; j++ {
			t.parts = append(t.parts, transport.NodeID(r.bytes("participant", maxNodeID)))
		}
		txns[u] = t
		order = append(order, u)
	}
	nt := r.uvarint()
	if r.err == nil && nt > maxTombstones {
		r.fail("%d tombstones", nt)
	}
	for i := uint64(0); i < nt && r.err == nil; i++ {
		u := id()
		if _, ok := txns[u]; !ok {
			txns[u] = &tableTxn{outcome: Aborted}
		}
		tombs = append(tombs, u)
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return fmt.Errorf("txn: restore coordinator table: %w", r.err)
	}
	s.mu.Lock()
	s.term, s.txns, s.order, s.tombstones = term, txns, order, tombs
	s.mu.Unlock()
	return nil
}

// state returns the table's outcome for id (Unknown if undecided or not
// held) and whether it holds id.
func (s *txnTable) state(id uuid.UUID) (Outcome, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.txns[id]
	if !ok {
		return Unknown, false
	}
	return t.outcome, true
}

// equal reports whether two tables hold the same state (tests).
func (s *txnTable) snapshotBytes() []byte {
	var buf bytes.Buffer
	_ = s.Snapshot(&buf)
	return buf.Bytes()
}
