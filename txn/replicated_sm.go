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
// machine, txnTable, holds one record per committed transaction not yet
// ended, and the presumed aborts it logged. It is deterministic: every
// replica applies the same commands in the same order and ends with the
// same table, so whichever replica leads next finds every decision made
// before it.
//
// Commands (first byte):
//
//	cmdTakeover | term
//	cmdBatch    | term | epoch | count | (len, Record)...
//
// Every command carries the term of the leader that built it, and is
// refused unless it is the term of its log entry. A batch also carries
// its leader's epoch, the log index of the takeover it leads under, and
// is refused unless that takeover is the last one applied: a takeover
// fences every batch built before it, also one built by the same replica
// in the same term before it stepped down and took over again.
const (
	cmdTakeover byte = 1
	cmdBatch    byte = 2
)

// Errors a command's application returns (as the Propose result).
var (
	// errStaleTerm: the command was built in another term than its entry's.
	errStaleTerm = errors.New("txn: replicated command from another term")
	// errNoTakeover: a batch built under another takeover than the last
	// one applied (its leader has not taken over, or was superseded).
	errNoTakeover = errors.New("txn: replicated batch not built under the last takeover")
	// errRefused: the batch holds a record the table refuses (a COMMIT
	// for a transaction the table already holds: aborted, or committed).
	errRefused = errors.New("txn: replicated record refused")
)

// maxTombstones bounds the aborted transactions the table remembers
// after their RecAbort (see apply).
const maxTombstones = 4096

// tableTxn is one transaction in the table.
type tableTxn struct {
	parts   []transport.NodeID
	epoch   uint64  // the takeover its leader committed it under (0: a tombstone)
	outcome Outcome // Committed, or Aborted (a tombstone)
}

// tableEvent tells the driver what an applied command decided: Committed
// lists transactions whose COMMIT was applied; Takeover is the epoch (log
// index) of an applied takeover (0 if none): every transaction whose
// COMMIT is not in the table by then can never commit, so it is aborted.
type tableEvent struct {
	Committed []uuid.UUID
	Takeover  uint64
}

// takeoverResult is a takeover's result: the epoch its leader leads under
// (the takeover's log index) and the committed transactions it must
// finish (a RecCommit each).
type takeoverResult struct {
	epoch uint64
	recs  []Record
}

// txnTable is the replicated coordinator's state machine.
type txnTable struct {
	// mu guards everything below: Apply runs on the consensus node's
	// goroutine, Status on the caller's.
	mu         sync.Mutex
	term       uint64 // the last takeover's term
	epoch      uint64 // the last takeover's log index
	txns       map[uuid.UUID]*tableTxn
	order      []uuid.UUID // COMMIT order (may hold ended IDs; compacted)
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

func encodeBatch(term, epoch uint64, recs []Record) ([]byte, error) {
	b := binary.AppendUvarint([]byte{cmdBatch}, term)
	b = binary.AppendUvarint(b, epoch)
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
	kind  byte
	term  uint64
	epoch uint64
	recs  []Record
}

func decodeCommand(b []byte) (command, error) {
	r := reader{b: b}
	c := command{kind: r.byte()}
	if r.err == nil && c.kind != cmdTakeover && c.kind != cmdBatch {
		r.fail("command kind %d", c.kind)
	}
	c.term = r.uvarint()
	if c.kind == cmdBatch {
		c.epoch = r.uvarint()
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
			if rec.Type != RecCommit && rec.Type != RecEnd && rec.Type != RecAbort {
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

// Apply implements consensus.StateMachine. The result is a takeoverResult
// (a takeover applied), nil or abortsRefused (a batch applied), or an
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
		res = s.takeoverLocked(e.Term, e.Index, &ev)
	} else {
		res = s.batchLocked(e.Term, c.epoch, c.recs, &ev)
	}
	on := s.onEvent
	s.mu.Unlock()
	if on != nil && (ev.Takeover != 0 || len(ev.Committed) > 0) {
		on(ev)
	}
	return res
}

// takeoverLocked starts a new epoch, the takeover's log index: from now
// on only batches built under it are accepted, so a transaction whose
// COMMIT is not in the table yet (begun by an earlier leader, which is
// gone, or by this one before it stepped down and took over again) can
// never commit: it is aborted by presumption, and a participant that asks
// about it gets an ABORT that the new leader logs first (RecAbort). It
// returns the committed transactions the new leader must finish.
func (s *txnTable) takeoverLocked(term, index uint64, ev *tableEvent) any {
	if term < s.term {
		// Cannot happen in a Raft log (terms only grow along it), and
		// would hand this proposer another leader's epoch.
		return errStaleTerm
	}
	s.term, s.epoch = term, index
	ev.Takeover = index
	live := []Record{}
	for _, id := range s.liveLocked() {
		live = append(live, Record{Type: RecCommit, Txn: id, Participants: slices.Clone(s.txns[id].parts)})
	}
	return takeoverResult{epoch: s.epoch, recs: live}
}

// liveLocked returns the live transactions in COMMIT order, compacting order.
func (s *txnTable) liveLocked() []uuid.UUID {
	out := s.order[:0]
	for _, id := range s.order {
		if t, ok := s.txns[id]; ok && t.epoch != 0 && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	clear(s.order[len(out):])
	s.order = out
	return slices.Clone(out)
}

// batchLocked applies a leader's records. The rules that make two leaders
// unable to decide differently:
//   - a batch counts only if built under the last takeover (epoch): a
//     leader that was superseded, knowingly or not, decides nothing more;
//   - the first decision stands: a COMMIT for a transaction the table
//     holds (aborted by a RecAbort, or already committed) is refused, and
//     a RecAbort after a commit changes nothing (the result names it, and
//     the driver does not send its presumed-abort answer).
//
// There is no BEGIN: a COMMIT needs no earlier record, because only the
// leader that sent the PREPAREs can commit (it alone collects the votes),
// and its COMMIT can reach the table only before the next takeover.
//
// A refused record makes the whole batch refused (nothing is applied):
// its proposer has been overtaken and must stop leading.
func (s *txnTable) batchLocked(term, epoch uint64, recs []Record, ev *tableEvent) any {
	if s.term != term || s.epoch != epoch {
		return errNoTakeover
	}
	// Check the whole batch first, as if applied in order (overlay holds
	// what the batch itself changes), so that a refusal applies nothing.
	overlay := map[uuid.UUID]tableTxn{}
	view := func(id uuid.UUID) (tableTxn, bool) {
		if t, ok := overlay[id]; ok {
			return t, t.outcome != Unknown
		}
		if t, ok := s.txns[id]; ok {
			return *t, true
		}
		return tableTxn{}, false
	}
	for _, r := range recs {
		t, ok := view(r.Txn)
		switch r.Type {
		case RecCommit:
			if ok || len(r.Participants) == 0 {
				return fmt.Errorf("%w: %s", errRefused, r)
			}
			overlay[r.Txn] = tableTxn{epoch: epoch, outcome: Committed}
		case RecAbort:
			if !ok {
				overlay[r.Txn] = tableTxn{outcome: Aborted}
			}
		case RecEnd:
			if ok && t.epoch != 0 {
				overlay[r.Txn] = tableTxn{}
			}
		}
	}
	var committedAborts abortsRefused
	for _, r := range recs {
		t := s.txns[r.Txn]
		switch r.Type {
		case RecCommit:
			s.txns[r.Txn] = &tableTxn{parts: slices.Clone(r.Participants), epoch: epoch, outcome: Committed}
			s.order = append(s.order, r.Txn)
			ev.Committed = append(ev.Committed, r.Txn)
		case RecAbort:
			switch {
			case t == nil:
				// Presumed abort of a transaction the table does not
				// hold: remember it for a while, so that a COMMIT of it
				// that was on its way (from this epoch's leader, which
				// had forgotten it: never, in practice) is refused.
				s.txns[r.Txn] = &tableTxn{outcome: Aborted}
				s.tombstones = append(s.tombstones, r.Txn)
				if len(s.tombstones) > maxTombstones {
					old := s.tombstones[0]
					s.tombstones = s.tombstones[1:]
					if ot, ok := s.txns[old]; ok && ot.epoch == 0 {
						delete(s.txns, old)
					}
				}
			case t.outcome == Committed:
				// The transaction committed after all (a late question
				// about one this leader had just forgotten): the
				// presumed-abort answer must not leave.
				committedAborts = append(committedAborts, r.Txn)
			}
		case RecEnd:
			if t != nil && t.epoch != 0 {
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

// Snapshot implements consensus.StateMachine: the term and epoch, then
// each live (committed) transaction (epoch, participants) in COMMIT
// order, then the tombstones.
func (s *txnTable) Snapshot(w io.Writer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := binary.AppendUvarint(nil, s.term)
	b = binary.AppendUvarint(b, s.epoch)
	live := s.liveLocked()
	b = binary.AppendUvarint(b, uint64(len(live)))
	for _, id := range live {
		t := s.txns[id]
		b = append(b, id[:]...)
		b = binary.AppendUvarint(b, t.epoch)
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
	epoch := r.uvarint()
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
		t := &tableTxn{epoch: r.uvarint(), outcome: Committed}
		np := r.uvarint()
		if r.err == nil && (np == 0 || np > MaxParticipants || t.epoch == 0 || t.epoch > epoch) {
			r.fail("transaction record")
		}
		for j := uint64(0); j < np && r.err == nil; j++ {
			t.parts = append(t.parts, transport.NodeID(r.bytes("participant", maxNodeID)))
		}
		if _, dup := txns[u]; dup && r.err == nil {
			r.fail("transaction %s twice", u)
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
	s.term, s.epoch, s.txns, s.order, s.tombstones = term, epoch, txns, order, tombs
	s.mu.Unlock()
	return nil
}

// state returns the table's outcome for id (Unknown if not held) and
// whether it holds id.
func (s *txnTable) state(id uuid.UUID) (Outcome, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.txns[id]
	if !ok {
		return Unknown, false
	}
	return t.outcome, true
}

// snapshotBytes returns the table's snapshot (tests).
func (s *txnTable) snapshotBytes() []byte {
	var buf bytes.Buffer
	_ = s.Snapshot(&buf)
	return buf.Bytes()
}
