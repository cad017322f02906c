package txn

import (
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"

	"github.com/distkit/distkit/transport"
)

// Services on which the runtime drivers receive messages. A node may host a
// Coordinator and a Participant on one Transport.
const (
	ServiceCoordinator = "txn/coordinator"
	ServiceParticipant = "txn/participant"
)

// Outcome is the fate of a transaction as one node knows it.
type Outcome uint8

// Outcomes.
const (
	// Unknown: not decided yet, or not known to the node asked.
	Unknown Outcome = iota
	// Committed: every participant voted YES and the coordinator logged COMMIT.
	Committed
	// Aborted: a participant voted NO, a vote did not arrive in time, or
	// the coordinator has no record of the transaction (presumed abort).
	Aborted
)

// String returns "unknown", "committed" or "aborted".
func (o Outcome) String() string {
	switch o {
	case Unknown:
		return "unknown"
	case Committed:
		return "committed"
	case Aborted:
		return "aborted"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// MsgType says what a Message is.
type MsgType uint8

// Message types. The arrows give sender → receiver.
const (
	// MsgPrepare (coordinator → participant) asks for a vote on Ops; it
	// names the Coordinator and all Participants, so that an in-doubt
	// participant knows whom to ask.
	MsgPrepare MsgType = 1 + iota
	// MsgVote (participant → coordinator): Outcome Committed is YES,
	// Aborted is NO with a Reason.
	MsgVote
	// MsgDecision (coordinator → participant, or a peer answering a
	// MsgQuery): Outcome is Committed or Aborted, or Unknown from a peer
	// that is in doubt itself.
	MsgDecision
	// MsgAck (participant → coordinator): the decision is applied and durable.
	MsgAck
	// MsgQuery (in-doubt participant → coordinator or peer): what was decided?
	MsgQuery
	maxMsgType = MsgQuery
)

// String names the type.
func (t MsgType) String() string {
	switch t {
	case MsgPrepare:
		return "PREPARE"
	case MsgVote:
		return "VOTE"
	case MsgDecision:
		return "DECISION"
	case MsgAck:
		return "ACK"
	case MsgQuery:
		return "QUERY"
	}
	return fmt.Sprintf("msg(%d)", uint8(t))
}

// Message is one protocol message. Fields a type does not use are empty.
type Message struct {
	Type         MsgType
	Txn          uuid.UUID
	Outcome      Outcome
	Coordinator  transport.NodeID   // MsgPrepare
	Participants []transport.NodeID // MsgPrepare
	Ops          []byte             // MsgPrepare: the operations for the receiver
	Reason       string             // MsgVote NO: why
	// Replicas, on a MsgPrepare from a ReplicatedCoordinator, lists every
	// coordinator replica: an in-doubt participant asks them in turn
	// until it finds the leader. A MsgDecision Unknown from a replica
	// that does not lead names the leader it knows in Coordinator.
	Replicas []transport.NodeID
	// KnownFor, on a MsgDecision Aborted from a peer that has no record
	// of the transaction, is how far back that peer's memory reaches (the
	// shorter of its uptime and Config.FinishedTTL). Such an answer is
	// only accepted by an asker that became prepared more recently (see
	// RawParticipant). Zero means the answer is certain. Millisecond
	// precision on the wire.
	KnownFor time.Duration
}

// String is a one-line rendering for logs and the examples.
func (m Message) String() string {
	id := m.Txn.String()[:8]
	switch m.Type {
	case MsgPrepare:
		return fmt.Sprintf("PREPARE %s (%d bytes of ops)", id, len(m.Ops))
	case MsgVote:
		if m.Outcome == Committed {
			return fmt.Sprintf("VOTE %s YES", id)
		}
		return fmt.Sprintf("VOTE %s NO (%s)", id, m.Reason)
	case MsgDecision:
		switch m.Outcome {
		case Committed:
			return fmt.Sprintf("COMMIT %s", id)
		case Aborted:
			return fmt.Sprintf("ABORT %s", id)
		}
		return fmt.Sprintf("DECISION %s unknown", id)
	}
	return fmt.Sprintf("%s %s", m.Type, id)
}

// MarshalBinary encodes m in the compact wire format.
func (m Message) MarshalBinary() ([]byte, error) {
	if m.Type == 0 || m.Type > maxMsgType {
		return nil, fmt.Errorf("%w: message type %d", ErrInvalid, m.Type)
	}
	if err := checkFields(m.Outcome, m.Coordinator, m.Participants, m.Reason); err != nil {
		return nil, err
	}
	if err := checkReplicas(m.Replicas); err != nil {
		return nil, err
	}
	if m.KnownFor < 0 {
		return nil, fmt.Errorf("%w: KnownFor %v", ErrInvalid, m.KnownFor)
	}
	f := frame{kind: uint8(m.Type), txn: m.Txn, outcome: m.Outcome, coordinator: m.Coordinator,
		participants: m.Participants, data: m.Ops, reason: m.Reason, millis: uint64(m.KnownFor / time.Millisecond),
		replicas: m.Replicas}
	return appendFrame(make([]byte, 0, frameSize(&f)), &f), nil
}

// UnmarshalMessage decodes a message. Errors wrap ErrMalformed. The result
// aliases b.
func UnmarshalMessage(b []byte) (Message, error) {
	f, err := decodeFrame(b, uint8(maxMsgType))
	if err != nil {
		return Message{}, err
	}
	if f.millis > uint64(maxMillis) {
		return Message{}, fmt.Errorf("%w: duration of %d ms", ErrMalformed, f.millis)
	}
	return Message{Type: MsgType(f.kind), Txn: f.txn, Outcome: f.outcome, Coordinator: f.coordinator,
		Participants: f.participants, Ops: f.data, Reason: f.reason, KnownFor: time.Duration(f.millis) * time.Millisecond,
		Replicas: f.replicas}, nil
}

func checkFields(o Outcome, coord transport.NodeID, parts []transport.NodeID, reason string) error {
	switch {
	case o > Aborted:
		return fmt.Errorf("%w: outcome %d", ErrInvalid, o)
	case len(coord) > maxNodeID:
		return fmt.Errorf("%w: coordinator ID of %d bytes; at most %d", ErrInvalid, len(coord), maxNodeID)
	case len(parts) > MaxParticipants:
		return fmt.Errorf("%w: %d participants; at most %d", ErrInvalid, len(parts), MaxParticipants)
	case len(reason) > maxReason:
		return fmt.Errorf("%w: reason of %d bytes; at most %d", ErrInvalid, len(reason), maxReason)
	}
	for _, p := range parts {
		if p == "" || len(p) > maxNodeID {
			return fmt.Errorf("%w: participant ID %q", ErrInvalid, p)
		}
	}
	return nil
}

func checkReplicas(rs []transport.NodeID) error {
	if len(rs) > MaxReplicas {
		return fmt.Errorf("%w: %d coordinator replicas; at most %d", ErrInvalid, len(rs), MaxReplicas)
	}
	for _, p := range rs {
		if p == "" || len(p) > maxNodeID {
			return fmt.Errorf("%w: replica ID %q", ErrInvalid, p)
		}
	}
	return nil
}

// maxMillis is the largest duration the wire carries, so that decoding
// cannot overflow time.Duration.
const maxMillis = math.MaxInt64 / int64(time.Millisecond)

// Envelope is a message the core wants sent: to node To, service Service.
type Envelope struct {
	To      transport.NodeID
	Service string
	Msg     Message
}

// RecordType says what a log Record is.
type RecordType uint8

// Log record types.
const (
	// RecCommit (coordinator): the decision to commit Txn, with its
	// Participants. Presumed abort: there is no abort record.
	RecCommit RecordType = 1 + iota
	// RecPrepared (participant): this node voted YES on Txn; Data is the
	// intent the resource manager needs to commit or abort it after a crash.
	RecPrepared
	// RecDone (participant): Txn finished with Outcome. Also written, with
	// no RecPrepared before it, when a participant that never voted tells
	// a peer the transaction is aborted: it must then never vote YES.
	RecDone
	// RecSnapshot (participant, first record of a checkpoint): Data is the
	// resource manager's committed state.
	RecSnapshot
	// RecBegin (coordinator): Txn was begun over Participants. It is
	// written lazily (Ready.Lazy): nothing waits for it, and a crash may
	// lose it, in which case presumed abort covers the transaction. If it
	// survives without a RecCommit, the recovering coordinator sends ABORT
	// to the participants at once instead of waiting to be asked.
	RecBegin
	// RecEnd (coordinator): every participant acknowledged the decision on
	// Txn, so recovery need not send it again. Written lazily like
	// RecBegin: if a crash loses it, recovery re-sends the decision once
	// more, which the participants acknowledge again (idempotent).
	RecEnd
	// RecAbort (replicated coordinator only): Txn is aborted, and a COMMIT
	// that reaches the replicated log after this record is refused. A
	// leader logs it before it answers a question about a transaction it
	// has no record of (presumed abort), so that a leader that was deposed
	// without knowing it can never contradict the current one.
	RecAbort
	maxRecordType = RecAbort
)

// Record is one entry of a coordinator's or participant's durable log.
type Record struct {
	Type         RecordType
	Txn          uuid.UUID
	Outcome      Outcome            // RecDone
	Coordinator  transport.NodeID   // RecPrepared
	Participants []transport.NodeID // RecBegin, RecCommit: all; RecPrepared: all (for cooperative termination)
	Replicas     []transport.NodeID // RecPrepared: the coordinator's replicas, if replicated
	Data         []byte             // RecPrepared: intent; RecSnapshot: state
}

// MarshalBinary encodes r.
func (r Record) MarshalBinary() ([]byte, error) {
	if r.Type == 0 || r.Type > maxRecordType {
		return nil, fmt.Errorf("%w: record type %d", ErrInvalid, r.Type)
	}
	if err := checkFields(r.Outcome, r.Coordinator, r.Participants, ""); err != nil {
		return nil, err
	}
	if err := checkReplicas(r.Replicas); err != nil {
		return nil, err
	}
	f := frame{kind: uint8(r.Type), txn: r.Txn, outcome: r.Outcome, coordinator: r.Coordinator,
		participants: r.Participants, data: r.Data, replicas: r.Replicas}
	return appendFrame(make([]byte, 0, frameSize(&f)), &f), nil
}

// UnmarshalRecord decodes a record. Errors wrap ErrMalformed. The result
// aliases b.
func UnmarshalRecord(b []byte) (Record, error) {
	f, err := decodeFrame(b, uint8(maxRecordType))
	if err != nil {
		return Record{}, err
	}
	if f.reason != "" || f.millis != 0 {
		return Record{}, fmt.Errorf("%w: record with a reason or duration", ErrMalformed)
	}
	return Record{Type: RecordType(f.kind), Txn: f.txn, Outcome: f.outcome, Coordinator: f.coordinator,
		Participants: f.participants, Data: f.data, Replicas: f.replicas}, nil
}

// String is a one-line rendering of the record.
func (r Record) String() string {
	id := r.Txn.String()[:8]
	switch r.Type {
	case RecCommit:
		return fmt.Sprintf("COMMIT %s %v", id, r.Participants)
	case RecPrepared:
		return fmt.Sprintf("PREPARED %s (%d bytes of intent)", id, len(r.Data))
	case RecDone:
		return fmt.Sprintf("DONE %s %v", id, r.Outcome)
	case RecSnapshot:
		return fmt.Sprintf("SNAPSHOT (%d bytes)", len(r.Data))
	case RecBegin:
		return fmt.Sprintf("BEGIN %s %v", id, r.Participants)
	case RecEnd:
		return fmt.Sprintf("END %s", id)
	case RecAbort:
		return fmt.Sprintf("ABORT %s", id)
	}
	return fmt.Sprintf("record(%d) %s", r.Type, id)
}
