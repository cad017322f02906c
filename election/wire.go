package election

import (
	"encoding/binary"
	"fmt"

	"github.com/distkit/distkit/transport"
)

// msgKind is the first byte of every message on the election service.
type msgKind uint8

const (
	// kindHeartbeat wraps a failure-detector message (inner).
	kindHeartbeat msgKind = iota + 1
	// kindElection is Bully's ELECTION, sent to every higher-priority node.
	kindElection
	// kindOK is Bully's answer to ELECTION: "I am alive and higher; stop".
	kindOK
	// kindCoordinator is Bully's COORDINATOR: view.ID won epoch view.Epoch.
	kindCoordinator
	// kindRingElection is the Ring token: round is the epoch being elected,
	// candidate the highest-priority candidate it has passed.
	kindRingElection
	// kindRingElected is the Ring result, circulating once: view.ID won
	// epoch view.Epoch.
	kindRingElected
	kindLimit

	// flagUnknown, or'ed into the kind byte, marks a view whose empty ID
	// means "leader not known yet" (a restarted node's restored epoch)
	// rather than a resignation.
	flagUnknown = 0x80
)

var kindNames = [...]string{
	kindHeartbeat:    "HEARTBEAT",
	kindElection:     "ELECTION",
	kindOK:           "OK",
	kindCoordinator:  "COORDINATOR",
	kindRingElection: "RING-ELECTION",
	kindRingElected:  "RING-ELECTED",
}

// String returns the message's protocol name, e.g. "COORDINATOR".
func (k msgKind) String() string {
	if k == 0 || k >= kindLimit {
		return fmt.Sprintf("msgKind(%d)", uint8(k))
	}
	return kindNames[k]
}

// message is the decoded form of every election message. Every message
// carries its sender's view of the leader (view), so views spread with the
// heartbeats and a node that missed a COORDINATOR or ELECTED message, or
// just restarted, still learns the current leader and epoch.
//
// Layout: kind (1 byte, with flagUnknown when unknown), view.Epoch (uvarint), view.ID (uvarint length +
// bytes), then for kindRingElection round (uvarint) and candidate (uvarint
// length + bytes), for kindHeartbeat the detector's payload to the end.
type message struct {
	kind      msgKind
	view      Leader
	unknown   bool // view.ID is empty because the sender does not know it yet
	round     uint64
	candidate transport.NodeID
	inner     []byte
}

func (m *message) encode() []byte {
	n := 1 + 2*binary.MaxVarintLen64 + len(m.view.ID) + len(m.candidate) + len(m.inner) + binary.MaxVarintLen64
	b := make([]byte, 0, n)
	k := byte(m.kind)
	if m.unknown {
		k |= flagUnknown
	}
	b = append(b, k)
	b = binary.AppendUvarint(b, m.view.Epoch)
	b = appendString(b, string(m.view.ID))
	switch m.kind {
	case kindRingElection:
		b = binary.AppendUvarint(b, m.round)
		b = appendString(b, string(m.candidate))
	case kindHeartbeat:
		b = append(b, m.inner...)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decode parses b. It never panics; every error wraps ErrMalformed. The
// returned inner slice aliases b.
func decode(b []byte) (message, error) {
	var m message
	if len(b) == 0 {
		return m, fmt.Errorf("%w: empty", ErrMalformed)
	}
	m.kind, m.unknown = msgKind(b[0]&^flagUnknown), b[0]&flagUnknown != 0
	if m.kind == 0 || m.kind >= kindLimit {
		return m, fmt.Errorf("%w: unknown kind %d", ErrMalformed, b[0])
	}
	r := reader{b: b[1:]}
	m.view.Epoch = r.uvarint()
	m.view.ID = transport.NodeID(r.str())
	switch m.kind {
	case kindRingElection:
		m.round = r.uvarint()
		m.candidate = transport.NodeID(r.str())
	case kindHeartbeat:
		m.inner = r.b
		r.b = nil
	}
	if r.err != "" {
		return message{}, fmt.Errorf("%w: %s %s", ErrMalformed, m.kind, r.err)
	}
	if len(r.b) != 0 {
		return message{}, fmt.Errorf("%w: %s has %d trailing bytes", ErrMalformed, m.kind, len(r.b))
	}
	if m.unknown && m.view.ID != "" {
		return message{}, fmt.Errorf("%w: %s names leader %q in a view marked unknown", ErrMalformed, m.kind, m.view.ID)
	}
	return m, nil
}

// reader consumes b and remembers the first error.
type reader struct {
	b   []byte
	err string
}

func (r *reader) uvarint() uint64 {
	if r.err != "" {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = "bad varint"
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) str() string {
	n := r.uvarint()
	if r.err != "" {
		return ""
	}
	if n > maxIDLen || n > uint64(len(r.b)) {
		r.err = fmt.Sprintf("string of %d bytes", n)
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// DescribeMessage returns a one-line description of an election message
// payload, such as "COORDINATOR n5@3" or "RING-ELECTION round 4 best n3",
// for traces and debugging; "HEARTBEAT" for the detector's messages and
// "malformed" for anything that does not decode.
func DescribeMessage(payload []byte) string {
	m, err := decode(payload)
	switch {
	case err != nil:
		return "malformed"
	case m.kind == kindHeartbeat:
		return "HEARTBEAT"
	case m.kind == kindRingElection:
		return fmt.Sprintf("%s round %d best %s", m.kind, m.round, m.candidate)
	case m.kind == kindCoordinator || m.kind == kindRingElected:
		if m.view.ID == "" {
			return fmt.Sprintf("%s none@%d", m.kind, m.view.Epoch)
		}
		return fmt.Sprintf("%s %s@%d", m.kind, m.view.ID, m.view.Epoch)
	}
	return m.kind.String()
}
