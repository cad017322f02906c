package txn

import (
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/distkit/distkit/transport"
)

// partPhase is where a transaction is on a participant.
type partPhase uint8

const (
	partPreparing partPhase = iota // the resource manager is preparing; no vote yet
	partPrepared                   // voted YES, PREPARED durable: in doubt until the decision
	partFinished                   // outcome known; remembered for Config.FinishedTTL
)

type partTxn struct {
	id           uuid.UUID
	phase        partPhase
	coordinator  transport.NodeID
	participants []transport.NodeID
	intent       []byte
	outcome      Outcome   // partFinished
	durable      bool      // partFinished: a DONE record is in the log
	abortAsked   bool      // partPreparing: abort as soon as the preparation ends
	queryAt      time.Time // partPrepared: when to ask again
	expires      time.Time // partFinished: when to forget it
}

// Intent is what a participant logged for a prepared transaction.
type Intent struct {
	Txn  uuid.UUID
	Data []byte
}

// Recovery is what a participant's log says the resource manager's state
// is: start from Snapshot, apply Committed in order, and hold the locks of
// InDoubt (their outcome is not known yet).
type Recovery struct {
	Snapshot  []byte
	Committed []Intent
	InDoubt   []Intent
}

// RawParticipant is the deterministic core of a two-phase-commit
// participant. Like RawCoordinator it does no I/O and reads no clock; its
// Ready also carries Actions, the resource-manager calls to make. It is
// not safe for concurrent use.
type RawParticipant struct {
	id  transport.NodeID
	cfg Config
	now time.Time

	txns  map[uuid.UUID]*partTxn
	order []uuid.UUID // IDs in txns, oldest first, for deterministic ticks

	sinceCheckpoint int
	rd              Ready
}

// NewRawParticipant returns a participant core for node id.
func NewRawParticipant(id transport.NodeID, cfg Config) (*RawParticipant, error) {
	if id == "" || len(id) > maxNodeID {
		return nil, fmt.Errorf("%w: participant ID %q", ErrInvalid, id)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &RawParticipant{id: id, cfg: cfg, txns: make(map[uuid.UUID]*partTxn)}, nil
}

func (p *RawParticipant) add(t *partTxn) {
	p.txns[t.id] = t
	p.order = append(p.order, t.id)
}

// Recover rebuilds the state from the durable log after a restart, before
// any other call, and returns what the resource manager must be restored
// to. Prepared transactions are in doubt again: they ask the coordinator
// and their peers at the first Tick.
func (p *RawParticipant) Recover(now time.Time, log []Record) (Recovery, error) {
	p.now = now
	var rec Recovery
	for _, r := range log {
		t := p.txns[r.Txn]
		switch r.Type {
		case RecSnapshot:
			clear(p.txns)
			p.order = p.order[:0]
			rec = Recovery{Snapshot: r.Data}
		case RecPrepared:
			if t == nil {
				p.add(&partTxn{id: r.Txn, phase: partPrepared, coordinator: r.Coordinator,
					participants: r.Participants, intent: r.Data})
			}
		case RecDone:
			if r.Outcome != Committed && r.Outcome != Aborted {
				return Recovery{}, fmt.Errorf("%w: DONE record with outcome %v", ErrMalformed, r.Outcome)
			}
			switch {
			case t == nil:
				p.add(&partTxn{id: r.Txn, phase: partFinished, outcome: r.Outcome, durable: true})
			case t.phase == partPrepared:
				if r.Outcome == Committed {
					rec.Committed = append(rec.Committed, Intent{Txn: t.id, Data: t.intent})
				}
				t.phase, t.outcome, t.durable, t.intent = partFinished, r.Outcome, true, nil
			}
		default:
			return Recovery{}, fmt.Errorf("%w: participant log holds a %d record", ErrMalformed, r.Type)
		}
	}
	for _, id := range p.order {
		t := p.txns[id]
		switch t.phase {
		case partPrepared:
			rec.InDoubt = append(rec.InDoubt, Intent{Txn: id, Data: t.intent})
			t.queryAt = now // ask at the first tick
		case partFinished:
			t.expires = now.Add(p.cfg.FinishedTTL)
		}
	}
	p.sinceCheckpoint = len(log)
	return rec, nil
}

func (p *RawParticipant) send(to transport.NodeID, service string, m Message) {
	p.rd.Messages = append(p.rd.Messages, Envelope{To: to, Service: service, Msg: m})
}

func (p *RawParticipant) log(r Record) {
	p.rd.Log = append(p.rd.Log, r)
	p.sinceCheckpoint++
}

// Step handles a message addressed to the participant service.
func (p *RawParticipant) Step(now time.Time, from transport.NodeID, m Message) {
	p.now = maxTime(p.now, now)
	t := p.txns[m.Txn]
	switch m.Type {
	case MsgPrepare:
		p.onPrepare(t, m)
	case MsgDecision:
		if m.Outcome == Unknown {
			return // a peer in doubt too
		}
		p.onDecision(t, from, m.Txn, m.Outcome)
	case MsgQuery:
		p.onQuery(t, from, m.Txn)
	}
}

func (p *RawParticipant) onPrepare(t *partTxn, m Message) {
	if t == nil {
		if m.Coordinator == "" || !slices.Contains(m.Participants, p.id) {
			return // malformed: we could never resolve it
		}
		t = &partTxn{id: m.Txn, phase: partPreparing, coordinator: m.Coordinator, participants: m.Participants}
		p.add(t)
		p.rd.Actions = append(p.rd.Actions, Action{Kind: ActPrepare, Txn: m.Txn, Data: m.Ops})
		return
	}
	switch {
	case t.phase == partPrepared:
		p.vote(t, Committed, "") // our vote was lost
	case t.phase == partFinished && t.outcome == Aborted:
		p.send(m.Coordinator, ServiceCoordinator, Message{Type: MsgVote, Txn: t.id, Outcome: Aborted, Reason: "already aborted"})
	}
	// Preparing: the vote follows. Finished and committed: a stale duplicate.
}

func (p *RawParticipant) vote(t *partTxn, o Outcome, reason string) {
	p.send(t.coordinator, ServiceCoordinator, Message{Type: MsgVote, Txn: t.id, Outcome: o, Reason: reason})
}

// Prepared reports the resource manager's answer to ActPrepare: an intent
// and a nil error is a YES vote, an error a NO vote (its text is the
// reason the coordinator reports).
func (p *RawParticipant) Prepared(now time.Time, id uuid.UUID, intent []byte, err error) {
	p.now = maxTime(p.now, now)
	t := p.txns[id]
	if t == nil || t.phase != partPreparing {
		return
	}
	if err != nil || t.abortAsked {
		// Unilateral abort: allowed because we have not voted YES.
		reason := "aborted before voting"
		if err != nil {
			reason = err.Error()
		} else {
			p.rd.Actions = append(p.rd.Actions, Action{Kind: ActAbort, Txn: id, Data: intent})
		}
		p.finish(t, Aborted)
		p.vote(t, Aborted, reason)
		return
	}
	// The PREPARED record (with the intent) is in this Ready's Log, so the
	// YES vote in the same Ready leaves only once it is durable.
	t.phase, t.intent = partPrepared, intent
	t.queryAt = p.now.Add(p.cfg.RetryInterval)
	p.log(Record{Type: RecPrepared, Txn: id, Coordinator: t.coordinator, Participants: t.participants, Data: intent})
	p.vote(t, Committed, "")
}

func (p *RawParticipant) finish(t *partTxn, o Outcome) {
	t.phase, t.outcome, t.intent = partFinished, o, nil
	t.expires = p.now.Add(p.cfg.FinishedTTL)
}

func (p *RawParticipant) onDecision(t *partTxn, from transport.NodeID, id uuid.UUID, o Outcome) {
	ack := Message{Type: MsgAck, Txn: id}
	switch {
	case t == nil:
		// Either finished and forgotten, or an ABORT that overtook its
		// PREPARE: remember the abort so the late PREPARE gets a NO.
		if o == Aborted {
			t = &partTxn{id: id, coordinator: from}
			p.add(t)
			p.finish(t, Aborted)
		}
		p.send(from, ServiceCoordinator, ack)
	case t.phase == partPreparing:
		if o == Aborted {
			t.abortAsked = true
		}
	case t.phase == partPrepared:
		// DONE is durable before the resource manager applies it and
		// before the ACK: after an ACK the coordinator may forget, and a
		// recovering participant that found no DONE would presume abort.
		p.log(Record{Type: RecDone, Txn: id, Outcome: o})
		kind := ActCommit
		if o == Aborted {
			kind = ActAbort
		}
		p.rd.Actions = append(p.rd.Actions, Action{Kind: kind, Txn: id, Data: t.intent})
		coord := t.coordinator
		p.finish(t, o)
		t.durable = true
		p.send(coord, ServiceCoordinator, ack)
	case from == t.coordinator || t.coordinator == "":
		p.send(from, ServiceCoordinator, ack) // our ACK was lost
	}
}

// onQuery answers a peer that is in doubt (cooperative termination).
func (p *RawParticipant) onQuery(t *partTxn, from transport.NodeID, id uuid.UUID) {
	answer := func(o Outcome) {
		p.send(from, ServiceParticipant, Message{Type: MsgDecision, Txn: id, Outcome: o})
	}
	switch {
	case t == nil:
		// We have not voted: abort, durably, so that we can never vote
		// YES later, then say so.
		t = &partTxn{id: id}
		p.add(t)
		p.finish(t, Aborted)
		t.durable = true
		p.log(Record{Type: RecDone, Txn: id, Outcome: Aborted})
		answer(Aborted)
	case t.phase == partPreparing:
		t.abortAsked, t.durable = true, true
		p.log(Record{Type: RecDone, Txn: id, Outcome: Aborted})
		answer(Aborted)
	case t.phase == partFinished:
		if t.outcome == Aborted && !t.durable {
			t.durable = true
			p.log(Record{Type: RecDone, Txn: id, Outcome: Aborted})
		}
		answer(t.outcome)
	}
	// Prepared: in doubt ourselves; nothing useful to say.
}

// Tick advances the clock: in-doubt transactions ask their coordinator
// and every peer again, and finished ones older than FinishedTTL are
// forgotten.
func (p *RawParticipant) Tick(now time.Time) {
	p.now = maxTime(p.now, now)
	live := p.order[:0]
	for _, id := range p.order {
		t, ok := p.txns[id]
		if !ok {
			continue
		}
		switch {
		case t.phase == partPrepared && !p.now.Before(t.queryAt):
			t.queryAt = p.now.Add(p.cfg.RetryInterval)
			q := Message{Type: MsgQuery, Txn: id}
			p.send(t.coordinator, ServiceCoordinator, q)
			for _, peer := range t.participants {
				if peer != p.id {
					p.send(peer, ServiceParticipant, q)
				}
			}
		case t.phase == partFinished && !p.now.Before(t.expires):
			delete(p.txns, id)
			continue
		}
		live = append(live, id)
	}
	clear(p.order[len(live):])
	p.order = live
}

// Ready returns the work accumulated since the last call and resets it.
// Its Checkpoint, when present, lists the in-doubt transactions and the
// remembered outcomes; the driver puts the resource manager's snapshot in
// front of it.
func (p *RawParticipant) Ready() Ready {
	if p.sinceCheckpoint >= p.cfg.CheckpointEvery {
		ck := []Record{}
		for _, id := range p.order {
			t := p.txns[id]
			switch {
			case t.phase == partPrepared:
				ck = append(ck, Record{Type: RecPrepared, Txn: id, Coordinator: t.coordinator, Participants: t.participants, Data: t.intent})
			case t.phase == partFinished && t.durable:
				ck = append(ck, Record{Type: RecDone, Txn: id, Outcome: t.outcome})
			}
		}
		p.rd.Checkpoint = ck
		p.sinceCheckpoint = 0
	}
	rd := p.rd
	p.rd = Ready{}
	return rd
}

// HasReady reports whether Ready would return any work.
func (p *RawParticipant) HasReady() bool {
	return !p.rd.Empty() || p.sinceCheckpoint >= p.cfg.CheckpointEvery
}

// ParticipantStatus is a snapshot of a participant's state.
type ParticipantStatus struct {
	Preparing int // the resource manager is deciding its vote
	InDoubt   int // voted YES, decision not known yet
	Finished  int // outcome remembered
}

// Status counts the transactions the participant tracks.
func (p *RawParticipant) Status() ParticipantStatus {
	var s ParticipantStatus
	for _, t := range p.txns {
		switch t.phase {
		case partPreparing:
			s.Preparing++
		case partPrepared:
			s.InDoubt++
		case partFinished:
			s.Finished++
		}
	}
	return s
}

// Outcome returns what the participant knows of transaction id: Unknown
// while it is preparing or in doubt, or once forgotten.
func (p *RawParticipant) Outcome(id uuid.UUID) Outcome {
	if t := p.txns[id]; t != nil && t.phase == partFinished {
		return t.outcome
	}
	return Unknown
}
