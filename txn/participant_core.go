package txn

import (
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

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
	// replicas (replicated coordinator) are the coordinator's replicas:
	// coordinator is then the one believed to lead, and an in-doubt
	// query that goes unanswered moves on to the next replica.
	replicas []transport.NodeID
	intent   []byte
	outcome  Outcome // partFinished
	// promised (partFinished, Aborted): we told a peer that we abort, and
	// logged it, so we must never vote YES: kept across checkpoints.
	promised   bool
	preparedAt time.Time // partPrepared: when we voted YES; zero if recovered
	// knownFrom (partFinished, Aborted) is set when the abort is a
	// tombstone written because we had no record of the transaction: the
	// point back to which our memory reached then. Zero: the outcome is
	// certain.
	knownFrom time.Time
	// reason (partFinished, Aborted) is why we voted NO, repeated to a
	// re-sent PREPARE (our NO may have been lost) so that the caller
	// learns the real cause.
	reason     string
	abortAsked bool      // partPreparing: abort as soon as the preparation ends
	queryAt    time.Time // partPrepared: when to ask again
	heardAt    time.Time // partPrepared: when the coordinator last showed it is alive
	queriedAt  time.Time // partPrepared: when the coordinator was last asked
	expires    time.Time // partFinished: when to forget it
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

	txns map[uuid.UUID]*partTxn
	// order lists the transactions added, oldest first, so that Tick and
	// checkpoints visit them deterministically (never in map order). Tick
	// compacts it, keeping only those not finished.
	order []uuid.UUID
	// expiry lists finished transactions in the order they finished,
	// which is the order they expire in: Tick pops from the front, so
	// remembering many finished transactions costs nothing per tick.
	expiry []uuid.UUID

	// upSince is when this incarnation started (Recover, or the first
	// input): everything it finished since is in memory for FinishedTTL.
	upSince time.Time

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

func (p *RawParticipant) advance(now time.Time) {
	p.now = maxTime(p.now, now)
	if p.upSince.IsZero() {
		p.upSince = p.now
	}
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
	if p == nil {
		return Recovery{}, errNotBuilt
	}
	p.now, p.upSince = now, now
	var rec Recovery
	for _, r := range log {
		t := p.txns[r.Txn]
		switch r.Type {
		case RecSnapshot:
			clear(p.txns)
			p.order = p.order[:0]
			p.expiry = p.expiry[:0]
			rec = Recovery{Snapshot: r.Data}
		case RecPrepared:
			if t == nil {
				p.add(&partTxn{id: r.Txn, phase: partPrepared, coordinator: r.Coordinator,
					participants: r.Participants, replicas: r.Replicas, intent: r.Data})
			}
		case RecDone:
			if r.Outcome != Committed && r.Outcome != Aborted {
				return Recovery{}, fmt.Errorf("%w: DONE record with outcome %v", ErrMalformed, r.Outcome)
			}
			switch {
			case t == nil:
				// A tombstone from an earlier incarnation: whether it
				// was certain is not recorded, so it is vouched for only
				// back to this restart.
				p.add(&partTxn{id: r.Txn, phase: partFinished, outcome: r.Outcome, promised: r.Outcome == Aborted, knownFrom: now})
			case t.phase == partPrepared:
				if r.Outcome == Committed {
					rec.Committed = append(rec.Committed, Intent{Txn: t.id, Data: t.intent})
				}
				t.phase, t.outcome, t.intent = partFinished, r.Outcome, nil
			}
		default:
			return Recovery{}, fmt.Errorf("%w: participant log holds a %d record", ErrMalformed, r.Type)
		}
	}
	live := p.order[:0]
	for _, id := range p.order {
		t := p.txns[id]
		switch t.phase {
		case partPrepared:
			rec.InDoubt = append(rec.InDoubt, Intent{Txn: id, Data: t.intent})
			t.queryAt, t.heardAt = now, now // ask at the first tick
			live = append(live, id)
		case partFinished:
			t.expires = now.Add(p.cfg.FinishedTTL)
			p.expiry = append(p.expiry, id)
		}
	}
	p.order = live
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
	if p == nil {
		return
	}
	p.advance(now)
	t := p.txns[m.Txn]
	switch m.Type {
	case MsgPrepare:
		p.onPrepare(t, m)
	case MsgDecision:
		if m.Outcome == Unknown {
			switch {
			case t == nil:
			case m.Coordinator != "" && m.Coordinator != from && slices.Contains(t.replicas, from) && slices.Contains(t.replicas, m.Coordinator):
				// A coordinator replica that does not lead names the
				// one that does: ask it at the next tick.
				t.coordinator, t.queryAt, t.queriedAt = m.Coordinator, p.now, time.Time{}
			case from == t.coordinator:
				// The coordinator is alive and still collecting votes (a
				// peer in doubt too says nothing).
				t.heardAt = p.now
			}
			return
		}
		if m.KnownFor > 0 && (t == nil || !t.acceptable(p.now, m.KnownFor)) {
			return // an abort from a peer whose memory may not reach back far enough
		}
		if t != nil && t.phase == partPrepared && !t.fromCoordinator(from) && !slices.Contains(t.participants, from) {
			return // only the coordinator and the peers can know the outcome
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
		t = &partTxn{id: m.Txn, phase: partPreparing, coordinator: m.Coordinator, participants: m.Participants, replicas: m.Replicas}
		p.add(t)
		p.rd.Actions = append(p.rd.Actions, Action{Kind: ActPrepare, Txn: m.Txn, Data: m.Ops})
		return
	}
	switch {
	case t.phase == partPrepared:
		p.vote(t, Committed, "") // our vote was lost
	case t.phase == partFinished && t.outcome == Aborted:
		reason := t.reason
		if reason == "" {
			reason = "already aborted"
		}
		p.send(m.Coordinator, ServiceCoordinator, Message{Type: MsgVote, Txn: t.id, Outcome: Aborted, Reason: reason})
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
	if p == nil {
		return
	}
	p.advance(now)
	t := p.txns[id]
	if t == nil || t.phase != partPreparing {
		return
	}
	if err != nil || t.abortAsked {
		// Unilateral abort: allowed because we have not voted YES.
		reason := "aborted before voting"
		if err != nil {
			reason = truncateReason(err.Error())
		} else {
			p.rd.Actions = append(p.rd.Actions, Action{Kind: ActAbort, Txn: id, Data: intent})
		}
		p.finish(t, Aborted)
		t.reason = reason
		p.vote(t, Aborted, reason)
		return
	}
	// The PREPARED record (with the intent) is in this Ready's Log, so the
	// YES vote in the same Ready leaves only once it is durable.
	t.phase, t.intent = partPrepared, intent
	t.queryAt, t.heardAt, t.preparedAt = p.now.Add(p.cfg.RetryInterval), p.now, p.now
	p.log(Record{Type: RecPrepared, Txn: id, Coordinator: t.coordinator, Participants: t.participants, Replicas: t.replicas, Data: intent})
	p.vote(t, Committed, "")
}

// truncateReason cuts a NO vote's reason to what the wire carries (on a
// UTF-8 boundary), so that a resource manager's long error message cannot
// make the vote unsendable.
func truncateReason(s string) string {
	if len(s) <= maxReason {
		return s
	}
	const ellipsis = "…"
	cut := maxReason - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}

func (p *RawParticipant) finish(t *partTxn, o Outcome) {
	t.phase, t.outcome, t.intent = partFinished, o, nil
	t.expires = p.now.Add(p.cfg.FinishedTTL)
	p.expiry = append(p.expiry, t.id)
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
		if slices.Contains(t.replicas, from) {
			coord = from // the replica that leads now waits for the ACK
		}
		p.finish(t, o)
		p.send(coord, ServiceCoordinator, ack)
	case t.fromCoordinator(from) || t.coordinator == "":
		p.send(from, ServiceCoordinator, ack) // our ACK was lost
	}
}

// fromCoordinator reports whether from is the transaction's coordinator
// or one of its replicas.
func (t *partTxn) fromCoordinator(from transport.NodeID) bool {
	return from == t.coordinator || slices.Contains(t.replicas, from)
}

// onQuery answers a peer that is in doubt (cooperative termination).
func (p *RawParticipant) onQuery(t *partTxn, from transport.NodeID, id uuid.UUID) {
	switch {
	case t == nil:
		// No record: either we never received the PREPARE, or we finished
		// the transaction and forgot it (FinishedTTL passed, or a restart
		// lost our memory). Abort durably, so that we never vote YES
		// later, and say so, with how far back our memory reaches.
		t = &partTxn{id: id}
		p.add(t)
		p.finish(t, Aborted)
		t.promised = true
		t.knownFrom = maxTime(p.upSince, p.now.Add(-p.cfg.FinishedTTL))
		p.log(Record{Type: RecDone, Txn: id, Outcome: Aborted})
		p.answer(t, from)
	case t.phase == partFinished:
		if t.outcome == Aborted && !t.promised {
			t.promised = true
			p.log(Record{Type: RecDone, Txn: id, Outcome: Aborted})
		}
		p.answer(t, from)
	}
	// Preparing: our vote is on its way to the coordinator, which will
	// decide; aborting now would only kill a transaction that is merely
	// slow. Prepared: in doubt ourselves. Either way, nothing to say.
}

// answer tells a peer the outcome of a finished transaction. An abort
// that only reflects our lack of a record carries KnownFor, the span our
// memory covers: the asker accepts it only if it became prepared within
// that span. That rules out a commit we forgot: a commit is decided after
// every YES vote, so we would have finished it after the asker prepared,
// inside the span, and would remember it.
func (p *RawParticipant) answer(t *partTxn, to transport.NodeID) {
	m := Message{Type: MsgDecision, Txn: t.id, Outcome: t.outcome}
	if !t.knownFrom.IsZero() {
		m.KnownFor = max(p.now.Sub(t.knownFrom), time.Millisecond)
	}
	p.send(to, ServiceParticipant, m)
}

// acceptable reports whether an abort answer with KnownFor k (see answer)
// covers our preparation. The reply's time in flight only makes the check
// stricter; the k/8 margin absorbs differences in clock rates.
func (t *partTxn) acceptable(now time.Time, k time.Duration) bool {
	return t.phase == partPrepared && !t.preparedAt.IsZero() && now.Sub(t.preparedAt) < k-k/8
}

// peerQueryRounds is how many retry intervals an in-doubt participant
// waits for a sign of life from its coordinator before it asks its peers.
const peerQueryRounds = 3

// Tick advances the clock: in-doubt transactions ask their coordinator
// and every peer again, and finished ones older than FinishedTTL are
// forgotten.
func (p *RawParticipant) Tick(now time.Time) {
	if p == nil {
		return
	}
	p.advance(now)
	live := p.order[:0]
	for _, id := range p.order {
		t, ok := p.txns[id]
		if !ok || t.phase == partFinished {
			continue // on the expiry list now
		}
		live = append(live, id)
		if t.phase != partPrepared || p.now.Before(t.queryAt) {
			continue
		}
		t.queryAt = p.now.Add(p.cfg.RetryInterval)
		if len(t.replicas) > 0 && !t.queriedAt.IsZero() && t.heardAt.Before(t.queriedAt) {
			// The replica asked last did not answer within a round: it
			// may be down. Ask the next one (a replica that is up but
			// does not lead names the leader: see Step).
			i := slices.Index(t.replicas, t.coordinator)
			t.coordinator = t.replicas[(i+1)%len(t.replicas)]
		}
		t.queriedAt = p.now
		q := Message{Type: MsgQuery, Txn: id}
		p.send(t.coordinator, ServiceCoordinator, q)
		// Cooperative termination, only once the coordinator has been
		// silent for peerQueryRounds rounds: while it answers "still
		// voting" there is no need to bother the peers (and a peer that
		// has not received its PREPARE yet would abort the transaction).
		if p.now.Sub(t.heardAt) < peerQueryRounds*p.cfg.RetryInterval {
			continue
		}
		for _, peer := range t.participants {
			if peer != p.id {
				p.send(peer, ServiceParticipant, q)
			}
		}
	}
	clear(p.order[len(live):])
	p.order = live
	n := 0
	for ; n < len(p.expiry); n++ {
		id := p.expiry[n]
		t, ok := p.txns[id]
		if ok && t.phase == partFinished && p.now.Before(t.expires) {
			break
		}
		if ok && t.phase == partFinished {
			delete(p.txns, id)
		}
	}
	p.expiry = p.expiry[n:]
}

// Ready returns the work accumulated since the last call and resets it.
// Its Checkpoint, when present, lists the in-doubt transactions and the
// remembered outcomes; the driver puts the resource manager's snapshot in
// front of it.
func (p *RawParticipant) Ready() Ready {
	if p == nil {
		return Ready{}
	}
	if p.sinceCheckpoint >= p.cfg.CheckpointEvery {
		ck := []Record{}
		for _, id := range p.order {
			if t, ok := p.txns[id]; ok && t.phase == partPrepared {
				ck = append(ck, Record{Type: RecPrepared, Txn: id, Coordinator: t.coordinator, Participants: t.participants, Replicas: t.replicas, Data: t.intent})
			}
		}
		for _, id := range p.expiry {
			if t, ok := p.txns[id]; ok && t.phase == partFinished && t.promised {
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
	if p == nil {
		return false
	}
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
	if p == nil {
		return ParticipantStatus{}
	}
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
	if p == nil {
		return Unknown
	}
	if t := p.txns[id]; t != nil && t.phase == partFinished {
		return t.outcome
	}
	return Unknown
}
