package detector

import (
	"encoding/binary"
	"fmt"

	"github.com/distkit/distkit/transport"
)

// Service is the transport service name the detector's messages travel on.
const Service = "detector"

// wireVersion is the first byte of every message, so a future format can be
// told apart and rejected cleanly.
const wireVersion = 1

// msgKind is the second byte of every message.
type msgKind uint8

const (
	// kindHeartbeat: "I am alive"; sent to every member each interval.
	kindHeartbeat msgKind = iota + 1
	// kindPing: a direct probe of a suspect, carrying the rumour (the
	// incarnation it is suspected at) so the suspect can refute it.
	kindPing
	// kindAck answers a ping.
	kindAck
	// kindPingReq asks a helper to probe the target on the sender's behalf
	// (SWIM §3.1, indirect probing).
	kindPingReq
	// kindIndirectAck relays the target's ack back to the requester, with
	// the target's (incarnation, sequence) as evidence.
	kindIndirectAck
	// kindAlive announces a new incarnation: the refutation of a rumour
	// (SWIM §4.2). It is evidence of life but, arriving off the heartbeat
	// schedule, no sample of the heartbeat interval.
	kindAlive
)

// maxTargetLen bounds a node ID inside a message.
const maxTargetLen = 1<<16 - 1

// message is the decoded form of every detector message. Every message
// carries the sender's incarnation and a per-sender sequence number, so a
// receiver can tell fresh evidence of life from a delayed or duplicated copy:
// (Incarnation, Seq) only grows, lexicographically, over a node's lifetime.
type message struct {
	kind        msgKind
	incarnation uint64 // sender's
	seq         uint64 // sender's, one per message sent
	probe       uint64 // ping, ack, pingReq, indirectAck: the probe it belongs to
	rumour      uint64 // ping, pingReq: the target's incarnation it is suspected at
	target      transport.NodeID
	targetInc   uint64 // indirectAck: evidence about target
	targetSeq   uint64 // indirectAck
}

const headerLen = 2 + 8 + 8

// encode returns the wire form of m in a new slice.
func (m *message) encode() []byte {
	n := headerLen
	switch m.kind {
	case kindPing:
		n += 16
	case kindAck:
		n += 8
	case kindPingReq:
		n += 16 + 2 + len(m.target)
	case kindIndirectAck:
		n += 24 + 2 + len(m.target)
	}
	b := make([]byte, 0, n)
	b = append(b, wireVersion, byte(m.kind))
	b = binary.BigEndian.AppendUint64(b, m.incarnation)
	b = binary.BigEndian.AppendUint64(b, m.seq)
	switch m.kind {
	case kindPing:
		b = binary.BigEndian.AppendUint64(b, m.probe)
		b = binary.BigEndian.AppendUint64(b, m.rumour)
	case kindAck:
		b = binary.BigEndian.AppendUint64(b, m.probe)
	case kindPingReq:
		b = binary.BigEndian.AppendUint64(b, m.probe)
		b = binary.BigEndian.AppendUint64(b, m.rumour)
		b = binary.BigEndian.AppendUint16(b, uint16(len(m.target)))
		b = append(b, m.target...)
	case kindIndirectAck:
		b = binary.BigEndian.AppendUint64(b, m.probe)
		b = binary.BigEndian.AppendUint64(b, m.targetInc)
		b = binary.BigEndian.AppendUint64(b, m.targetSeq)
		b = binary.BigEndian.AppendUint16(b, uint16(len(m.target)))
		b = append(b, m.target...)
	}
	return b
}

// decode parses b. Every malformation (wrong version, unknown kind, short
// or trailing bytes, an empty target) is an error wrapping ErrMalformed.
func decode(b []byte) (message, error) {
	var m message
	if len(b) < headerLen {
		return m, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrMalformed, len(b), headerLen)
	}
	if b[0] != wireVersion {
		return m, fmt.Errorf("%w: version %d, want %d", ErrMalformed, b[0], wireVersion)
	}
	m.kind = msgKind(b[1])
	m.incarnation = binary.BigEndian.Uint64(b[2:])
	m.seq = binary.BigEndian.Uint64(b[10:])
	rest := b[headerLen:]
	u64 := func() uint64 {
		v := binary.BigEndian.Uint64(rest)
		rest = rest[8:]
		return v
	}
	need := func(n int) error {
		if len(rest) < n {
			return fmt.Errorf("%w: kind %d truncated", ErrMalformed, m.kind)
		}
		return nil
	}
	target := func() error {
		if err := need(2); err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint16(rest))
		rest = rest[2:]
		if n == 0 {
			return fmt.Errorf("%w: empty target", ErrMalformed)
		}
		if err := need(n); err != nil {
			return err
		}
		m.target = transport.NodeID(rest[:n])
		rest = rest[n:]
		return nil
	}
	var err error
	switch m.kind {
	case kindHeartbeat, kindAlive:
	case kindPing:
		if err = need(16); err == nil {
			m.probe, m.rumour = u64(), u64()
		}
	case kindAck:
		if err = need(8); err == nil {
			m.probe = u64()
		}
	case kindPingReq:
		if err = need(16); err == nil {
			m.probe, m.rumour = u64(), u64()
			err = target()
		}
	case kindIndirectAck:
		if err = need(24); err == nil {
			m.probe, m.targetInc, m.targetSeq = u64(), u64(), u64()
			err = target()
		}
	default:
		return m, fmt.Errorf("%w: unknown kind %d", ErrMalformed, m.kind)
	}
	if err != nil {
		return m, err
	}
	if len(rest) != 0 {
		return m, fmt.Errorf("%w: %d trailing bytes after kind %d", ErrMalformed, len(rest), m.kind)
	}
	return m, nil
}
