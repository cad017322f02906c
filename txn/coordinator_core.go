package txn

import (
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/distkit/distkit/transport"
)

// Work is one participant's share of a transaction: the node and the
// operations its resource manager is asked to prepare.
type Work struct {
	Participant transport.NodeID
	Ops         []byte
}

// coordPhase is where a transaction is on the coordinator.
type coordPhase uint8

const (
	phaseVoting    coordPhase = iota // PREPARE sent, collecting votes
	phaseCommitted                   // COMMIT logged, collecting acks
	phaseAborted                     // abort decided (not logged: presumed abort), collecting acks
)

// coordTxn is a transaction the coordinator has not forgotten yet.
type coordTxn struct {
	id       uuid.UUID
	work     []Work
	parts    []transport.NodeID // the participants, in work order
	phase    coordPhase
	voted    []bool // per work index: a YES vote arrived
	acked    []bool // per work index: the decision was acknowledged (or need not be)
	pending  int    // votes (voting) or acks (decided) still missing
	deadline time.Time
	retryAt  time.Time
}

func (t *coordTxn) index(p transport.NodeID) int {
	for i, w := range t.work {
		if w.Participant == p {
			return i
		}
	}
	return -1
}

// RawCoordinator is the deterministic core of a two-phase-commit
// coordinator: it takes transactions, messages and clock ticks, and
// returns log records to persist and messages to send as a Ready. It does
// no I/O, starts no goroutines and reads no clock. It is not safe for
// concurrent use.
type RawCoordinator struct {
	id  transport.NodeID
	cfg Config
	now time.Time

	txns map[uuid.UUID]*coordTxn
	// order lists the IDs in txns in the order they began, so that ticks
	// visit transactions deterministically (no map iteration order).
	order []uuid.UUID

	sinceCheckpoint int
	rd              Ready

	// Set by the ReplicatedCoordinator, whose log is a consensus group:
	// replicas is put in every PREPARE; replicated turns off checkpoints
	// (the group snapshots its state machine instead) and makes a
	// presumed abort a logged RecAbort, answered only once it is in the
	// replicated log.
	replicas   []transport.NodeID
	replicated bool
}

// NewRawCoordinator returns a coordinator core for node id.
func NewRawCoordinator(id transport.NodeID, cfg Config) (*RawCoordinator, error) {
	if id == "" || len(id) > maxNodeID {
		return nil, fmt.Errorf("%w: coordinator ID %q", ErrInvalid, id)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &RawCoordinator{id: id, cfg: cfg, txns: make(map[uuid.UUID]*coordTxn)}, nil
}

// Recover rebuilds the state from the durable log after a restart, before
// any other call. Every committed transaction found is re-sent its COMMIT
// until all participants acknowledge. Every transaction begun but not
// committed (a RecBegin without a RecCommit) was undecided or aborted when
// the coordinator stopped: it is aborted now, and its ABORT is sent until
// all participants acknowledge, so that those holding locks for it release
// them at once. Undecided transactions whose RecBegin was lost in the crash
// are aborted by presumption: their participants learn it when they ask.
// Transactions with a RecEnd were acknowledged by everyone and are skipped.
func (c *RawCoordinator) Recover(now time.Time, log []Record) error {
	if c == nil {
		return errNotBuilt
	}
	c.now = now
	for _, r := range log {
		switch {
		case r.Type != RecCommit && r.Type != RecBegin && r.Type != RecEnd:
			return fmt.Errorf("%w: coordinator log holds a %d record", ErrMalformed, r.Type)
		case r.Type != RecEnd && len(r.Participants) == 0:
			return fmt.Errorf("%w: %s names no participant", ErrMalformed, r)
		}
		t, ok := c.txns[r.Txn]
		switch {
		case r.Type == RecEnd:
			delete(c.txns, r.Txn) // c.order is filtered below
		case ok && r.Type == RecCommit:
			t.phase = phaseCommitted // a commit decides, whatever came before
		case !ok:
			work := make([]Work, len(r.Participants))
			for i, p := range r.Participants {
				work[i] = Work{Participant: p}
			}
			phase := phaseCommitted
			if r.Type == RecBegin {
				phase = phaseAborted
			}
			c.add(&coordTxn{id: r.Txn, work: work, parts: r.Participants, phase: phase, acked: make([]bool, len(work)), pending: len(work)})
		}
	}
	live, seen := c.order[:0], make(map[uuid.UUID]bool, len(c.txns))
	for _, id := range c.order {
		// An ID ended and then logged again is in order twice: keep one.
		if t, ok := c.txns[id]; ok && !seen[id] {
			seen[id] = true
			live = append(live, id)
			c.sendDecision(t)
		}
	}
	c.order = live
	c.sinceCheckpoint = len(log)
	return nil
}

func (c *RawCoordinator) add(t *coordTxn) {
	c.txns[t.id] = t
	c.order = append(c.order, t.id)
	t.retryAt = c.now.Add(c.cfg.RetryInterval)
}

// Begin starts transaction id over work (one entry per participant).
// timeout bounds the wait for votes; 0, or anything above
// Config.VoteTimeout, means Config.VoteTimeout (a participant's promise to
// abort lasts FinishedTTL, which must outlive any vote). The result
// arrives in a later Ready's Results.
func (c *RawCoordinator) Begin(now time.Time, id uuid.UUID, work []Work, timeout time.Duration) error {
	if c == nil {
		return errNotBuilt
	}
	c.now = maxTime(c.now, now)
	switch {
	case len(work) == 0:
		return fmt.Errorf("%w: a transaction needs at least one participant", ErrInvalid)
	case len(work) > MaxParticipants:
		return fmt.Errorf("%w: %d participants; at most %d", ErrInvalid, len(work), MaxParticipants)
	case timeout < 0:
		return fmt.Errorf("%w: timeout %v", ErrInvalid, timeout)
	}
	if _, ok := c.txns[id]; ok {
		return fmt.Errorf("%w: %s", ErrDuplicateTxn, id)
	}
	parts := make([]transport.NodeID, len(work))
	for i, w := range work {
		if w.Participant == "" || len(w.Participant) > maxNodeID {
			return fmt.Errorf("%w: participant ID %q", ErrInvalid, w.Participant)
		}
		if slices.Contains(parts[:i], w.Participant) {
			return fmt.Errorf("%w: participant %q appears twice", ErrInvalid, w.Participant)
		}
		parts[i] = w.Participant
	}
	if timeout == 0 || timeout > c.cfg.VoteTimeout {
		timeout = c.cfg.VoteTimeout
	}
	t := &coordTxn{id: id, work: slices.Clone(work), parts: parts, voted: make([]bool, len(work)), acked: make([]bool, len(work)),
		pending: len(work), deadline: c.now.Add(timeout)}
	c.add(t)
	// The BEGIN record is lazy: PREPARE does not wait for it. If a crash
	// loses it, presumed abort still holds; if it survives, recovery
	// aborts the transaction actively (see Recover). A replicated core
	// writes none: its COMMIT is the only record on the way to a decision
	// (see txnTable.batchLocked), and a new leader aborts by presumption.
	if !c.replicated {
		c.rd.Lazy = append(c.rd.Lazy, Record{Type: RecBegin, Txn: id, Participants: parts})
		c.sinceCheckpoint++
	}
	for i := range t.work {
		c.sendPrepare(t, i)
	}
	return nil
}

func (c *RawCoordinator) sendPrepare(t *coordTxn, i int) {
	parts := t.parts
	c.rd.Messages = append(c.rd.Messages, Envelope{To: t.work[i].Participant, Service: ServiceParticipant,
		Msg: Message{Type: MsgPrepare, Txn: t.id, Coordinator: c.id, Participants: parts, Ops: t.work[i].Ops, Replicas: c.replicas}})
}

func (c *RawCoordinator) decisionTo(t *coordTxn, p transport.NodeID) {
	o := Committed
	if t.phase == phaseAborted {
		o = Aborted
	}
	c.rd.Messages = append(c.rd.Messages, Envelope{To: p, Service: ServiceParticipant,
		Msg: Message{Type: MsgDecision, Txn: t.id, Outcome: o}})
}

func (c *RawCoordinator) sendDecision(t *coordTxn) {
	for i, w := range t.work {
		if !t.acked[i] {
			c.decisionTo(t, w.Participant)
		}
	}
}

// Abort aborts transaction id with cause ErrCancelled if it has not been
// decided yet (the caller gave up on it). It reports whether the
// transaction was still undecided; a decided one keeps its outcome.
func (c *RawCoordinator) Abort(now time.Time, id uuid.UUID) bool {
	if c == nil {
		return false
	}
	c.now = maxTime(c.now, now)
	t, ok := c.txns[id]
	if !ok || t.phase != phaseVoting {
		return false
	}
	c.abort(t, &AbortError{Txn: id, Cause: ErrCancelled, Participants: t.missingVotes()})
	return true
}

func (t *coordTxn) missingVotes() []transport.NodeID {
	var out []transport.NodeID
	for i, w := range t.work {
		if !t.voted[i] {
			out = append(out, w.Participant)
		}
	}
	return out
}

// abort decides abort. Presumed abort: nothing is logged, because a
// coordinator without a COMMIT record answers every question with ABORT.
// The ABORT is still sent (and retried) so that prepared participants
// release their locks at once rather than when they next ask.
func (c *RawCoordinator) abort(t *coordTxn, why *AbortError) {
	t.phase = phaseAborted
	t.pending = 0
	for i := range t.work {
		// A NO voter has already aborted on its own and needs no ABORT.
		t.acked[i] = why.Cause == ErrVotedNo && why.Participants[0] == t.work[i].Participant
		if !t.acked[i] {
			t.pending++
		}
	}
	t.retryAt = c.now.Add(c.cfg.RetryInterval)
	c.rd.Results = append(c.rd.Results, Result{Txn: t.id, Outcome: Aborted, Err: why})
	c.sendDecision(t)
	c.forgetIfDone(t)
}

// commit decides commit: the COMMIT record goes into this Ready's Log, and
// the driver makes it durable before it sends the COMMIT messages of the
// same Ready (the rule that makes the decision survive a crash).
func (c *RawCoordinator) commit(t *coordTxn) {
	t.phase = phaseCommitted
	t.pending = len(t.work)
	for i := range t.work {
		t.work[i].Ops = nil // not needed any more
	}
	c.rd.Log = append(c.rd.Log, Record{Type: RecCommit, Txn: t.id, Participants: t.parts})
	c.sinceCheckpoint++
	t.retryAt = c.now.Add(c.cfg.RetryInterval)
	c.rd.Results = append(c.rd.Results, Result{Txn: t.id, Outcome: Committed})
	c.sendDecision(t)
}

func (c *RawCoordinator) forgetIfDone(t *coordTxn) {
	if t.phase != phaseVoting && t.pending == 0 {
		delete(c.txns, t.id)
		// c.order is compacted lazily in Tick.
		// The END record spares a recovering coordinator from sending
		// the decision again; it is lazy because losing it costs only
		// that.
		// A replicated core ends only committed transactions: the table
		// holds nothing else.
		if !c.replicated || t.phase == phaseCommitted {
			c.rd.Lazy = append(c.rd.Lazy, Record{Type: RecEnd, Txn: t.id})
			c.sinceCheckpoint++
		}
	}
}

// Step handles a message addressed to the coordinator service.
func (c *RawCoordinator) Step(now time.Time, from transport.NodeID, m Message) {
	if c == nil {
		return
	}
	c.now = maxTime(c.now, now)
	t, ok := c.txns[m.Txn]
	if !ok {
		// Presumed abort: no record means the transaction did not commit
		// (it was never begun here, was aborted, or was undecided when
		// this node crashed). A committed one is forgotten only after
		// every ACK, so no one can still need a COMMIT.
		if m.Type == MsgQuery || (m.Type == MsgVote && m.Outcome == Committed) {
			if c.replicated {
				// A replica that leads as far as it knows may have been
				// deposed: its abort counts only once the replicated log
				// holds it (and no COMMIT before it), and the reply
				// below leaves only then.
				c.rd.Log = append(c.rd.Log, Record{Type: RecAbort, Txn: m.Txn})
			}
			c.rd.Messages = append(c.rd.Messages, Envelope{To: from, Service: ServiceParticipant,
				Msg: Message{Type: MsgDecision, Txn: m.Txn, Outcome: Aborted}})
		}
		return
	}
	i := t.index(from)
	if i < 0 {
		return // not a participant of this transaction
	}
	switch m.Type {
	case MsgVote:
		switch {
		case t.phase == phaseVoting && m.Outcome == Committed:
			if !t.voted[i] {
				t.voted[i] = true
				t.pending--
			}
			if t.pending == 0 {
				c.commit(t)
			}
		case t.phase == phaseVoting && m.Outcome == Aborted:
			c.abort(t, &AbortError{Txn: t.id, Cause: ErrVotedNo, Participants: []transport.NodeID{from}, Reason: m.Reason})
		case m.Outcome == Committed && t.acked[i]:
			// A YES from a participant that has already applied the
			// decision is a re-preparation caused by a duplicate PREPARE:
			// tell it to drop that preparation (the real one is done).
			c.rd.Messages = append(c.rd.Messages, Envelope{To: from, Service: ServiceParticipant,
				Msg: Message{Type: MsgDecision, Txn: t.id, Outcome: Aborted}})
		case m.Outcome == Committed:
			c.decisionTo(t, from) // the decision was lost; send it again
		}
	case MsgAck:
		if t.phase != phaseVoting && !t.acked[i] {
			t.acked[i] = true
			t.pending--
			c.forgetIfDone(t)
		}
	case MsgQuery:
		switch {
		case t.phase == phaseVoting:
			// No answer yet, but say that we are alive, so that the
			// participant does not turn to its peers.
			c.rd.Messages = append(c.rd.Messages, Envelope{To: from, Service: ServiceParticipant,
				Msg: Message{Type: MsgDecision, Txn: t.id, Outcome: Unknown}})
		case !t.acked[i]:
			c.decisionTo(t, from)
		}
	}
}

// Tick advances the clock: votes that are overdue abort their transaction,
// and unanswered PREPAREs and decisions are sent again every RetryInterval.
func (c *RawCoordinator) Tick(now time.Time) {
	if c == nil {
		return
	}
	c.now = maxTime(c.now, now)
	live := c.order[:0]
	for _, id := range c.order {
		t, ok := c.txns[id]
		if !ok || t.id != id {
			continue
		}
		switch {
		case t.phase == phaseVoting && !c.now.Before(t.deadline):
			c.abort(t, &AbortError{Txn: id, Cause: ErrTimeout, Participants: t.missingVotes()})
		case !c.now.Before(t.retryAt):
			t.retryAt = c.now.Add(c.cfg.RetryInterval)
			if t.phase == phaseVoting {
				for i := range t.work {
					if !t.voted[i] {
						c.sendPrepare(t, i)
					}
				}
			} else {
				c.sendDecision(t)
			}
		}
		if _, ok := c.txns[id]; ok {
			live = append(live, id)
		}
	}
	clear(c.order[len(live):])
	c.order = live
}

// Ready returns the work accumulated since the last call and resets it.
// When enough records have been logged since the last checkpoint, it
// carries a Checkpoint: a COMMIT record for each committed transaction
// still waiting for acknowledgements and a BEGIN record for each other
// one still tracked, which is all a recovering coordinator needs
// (presumed abort covers the rest).
func (c *RawCoordinator) Ready() Ready {
	if c == nil {
		return Ready{}
	}
	if !c.replicated && c.sinceCheckpoint >= c.cfg.CheckpointEvery {
		ck := []Record{}
		for _, id := range c.order {
			t, ok := c.txns[id]
			if !ok || t.id != id {
				continue
			}
			typ := RecBegin
			if t.phase == phaseCommitted {
				typ = RecCommit
			}
			ck = append(ck, Record{Type: typ, Txn: id, Participants: t.parts})
		}
		c.rd.Checkpoint = ck
		c.sinceCheckpoint = 0
	}
	rd := c.rd
	c.rd = Ready{}
	return rd
}

// HasReady reports whether Ready would return any work.
func (c *RawCoordinator) HasReady() bool {
	if c == nil {
		return false
	}
	return !c.rd.Empty() || !c.replicated && c.sinceCheckpoint >= c.cfg.CheckpointEvery
}

// CoordinatorStatus is a snapshot of a coordinator's state.
type CoordinatorStatus struct {
	Voting    int // transactions collecting votes
	Committed int // committed, waiting for acknowledgements
	Aborted   int // aborted, waiting for acknowledgements
}

// Status counts the transactions the coordinator still tracks.
func (c *RawCoordinator) Status() CoordinatorStatus {
	if c == nil {
		return CoordinatorStatus{}
	}
	var s CoordinatorStatus
	for _, t := range c.txns {
		switch t.phase {
		case phaseVoting:
			s.Voting++
		case phaseCommitted:
			s.Committed++
		case phaseAborted:
			s.Aborted++
		}
	}
	return s
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
