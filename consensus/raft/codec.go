package raft

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/distkit/distkit/transport"
)

// wireVersion is the first byte of every encoded Message. A decoder refuses
// versions it does not know rather than guessing.
const wireVersion = 1

// Flag bits of the encoded Message.
//
// flagMembership says the snapshot metadata carries a full Membership
// (learners, outgoing voters, AutoLeave) in Membership.AppendBinary's
// encoding instead of the voters alone; it is set only when the
// membership has more than voters, so messages without those fields
// encode exactly as before and older decoders, which refuse unknown flags,
// refuse only what they could not represent.
const (
	flagReject     = 1 << 0
	flagLast       = 1 << 1
	flagSnapshot   = 1 << 2
	flagTransfer   = 1 << 3
	flagMembership = 1 << 4
	flagMask       = flagReject | flagLast | flagSnapshot | flagTransfer | flagMembership
)

// simpleMembership reports whether m has voters only (the original format).
func simpleMembership(m *Membership) bool {
	return len(m.Learners) == 0 && len(m.OutgoingVoters) == 0 && !m.AutoLeave
}

// Size returns the number of bytes Marshal produces for m.
func (m *Message) Size() int {
	n := 3 // version, type, flags
	n += strSize(string(m.From)) + strSize(string(m.To))
	n += uvarintSize(m.Term) + uvarintSize(m.LogTerm) + uvarintSize(m.Index) +
		uvarintSize(m.Commit) + uvarintSize(m.RejectHint)
	n += uvarintSize(uint64(len(m.Entries)))
	if len(m.Entries) > 0 {
		n += uvarintSize(m.Entries[0].Index)
		for i := range m.Entries {
			e := &m.Entries[i]
			n += 1 + uvarintSize(e.Term) + bytesSize(e.Data)
		}
	}
	if s := m.Snapshot; s != nil {
		n += uvarintSize(s.Index) + uvarintSize(s.Term)
		sets := [][]transport.NodeID{s.Membership.Voters}
		if !simpleMembership(&s.Membership) {
			sets = append(sets, s.Membership.Learners, s.Membership.OutgoingVoters)
			n++ // membership flags
		}
		for _, set := range sets {
			n += uvarintSize(uint64(len(set)))
			for _, v := range set {
				n += strSize(string(v))
			}
		}
		n += uvarintSize(m.Offset)
	}
	n += bytesSize(m.Data) + bytesSize(m.Context)
	return n
}

// Marshal encodes m in distkit's compact binary wire format.
//
// Entries of a MsgApp must be consecutive (they always are when the core
// produced them); Marshal reports an error otherwise, and for unknown types.
func (m *Message) Marshal() ([]byte, error) {
	return m.MarshalAppend(make([]byte, 0, m.Size()))
}

// MarshalAppend appends the encoding of m to dst and returns the extended
// slice, so that callers can reuse buffers.
func (m *Message) MarshalAppend(dst []byte) ([]byte, error) {
	if m.Type == 0 || m.Type > maxMessageType {
		return dst, fmt.Errorf("%w: type %d", ErrInvalidMessage, m.Type)
	}
	for i := range m.Entries {
		if m.Entries[i].Index != m.Entries[0].Index+uint64(i) {
			return dst, fmt.Errorf("%w: entries not consecutive at position %d", ErrInvalidMessage, i)
		}
		if m.Entries[i].Type > maxEntryType {
			return dst, fmt.Errorf("%w: entry type %d", ErrInvalidMessage, m.Entries[i].Type)
		}
	}
	var flags byte
	if m.Reject {
		flags |= flagReject
	}
	if m.Last {
		flags |= flagLast
	}
	if m.Snapshot != nil {
		flags |= flagSnapshot
		if !simpleMembership(&m.Snapshot.Membership) {
			flags |= flagMembership
		}
	}
	if m.Transfer {
		flags |= flagTransfer
	}
	dst = append(dst, wireVersion, byte(m.Type), flags)
	dst = appendString(dst, string(m.From))
	dst = appendString(dst, string(m.To))
	dst = binary.AppendUvarint(dst, m.Term)
	dst = binary.AppendUvarint(dst, m.LogTerm)
	dst = binary.AppendUvarint(dst, m.Index)
	dst = binary.AppendUvarint(dst, m.Commit)
	dst = binary.AppendUvarint(dst, m.RejectHint)
	dst = binary.AppendUvarint(dst, uint64(len(m.Entries)))
	if len(m.Entries) > 0 {
		// Entries are consecutive, so only the first index travels.
		dst = binary.AppendUvarint(dst, m.Entries[0].Index)
		for i := range m.Entries {
			e := &m.Entries[i]
			dst = append(dst, byte(e.Type))
			dst = binary.AppendUvarint(dst, e.Term)
			dst = appendBytes(dst, e.Data)
		}
	}
	if s := m.Snapshot; s != nil {
		dst = binary.AppendUvarint(dst, s.Index)
		dst = binary.AppendUvarint(dst, s.Term)
		if flags&flagMembership != 0 {
			dst, _ = s.Membership.AppendBinary(dst)
		} else {
			dst = binary.AppendUvarint(dst, uint64(len(s.Membership.Voters)))
			for _, v := range s.Membership.Voters {
				dst = appendString(dst, string(v))
			}
		}
		dst = binary.AppendUvarint(dst, m.Offset)
	}
	dst = appendBytes(dst, m.Data)
	dst = appendBytes(dst, m.Context)
	return dst, nil
}

// Unmarshal decodes a message produced by Marshal into m, replacing its
// contents. Entry data, Data and Context alias b (no copy), so b must not be
// modified while m is in use. Malformed input yields an error wrapping
// ErrInvalidMessage, never a panic, and never an allocation larger than a
// small multiple of len(b).
func (m *Message) Unmarshal(b []byte) error {
	// Reusing a Message for a stream from one peer reuses its From and
	// To strings instead of allocating them again.
	prevFrom, prevTo := m.From, m.To
	*m = Message{}
	d := decoder{buf: b}
	if v := d.byte(); v != wireVersion {
		if d.err != nil {
			return d.err
		}
		return fmt.Errorf("%w: unknown wire version %d", ErrInvalidMessage, v)
	}
	typ := MessageType(d.byte())
	flags := d.byte()
	if d.err != nil {
		return d.err
	}
	if typ == 0 || typ > maxMessageType {
		return fmt.Errorf("%w: type %d", ErrInvalidMessage, typ)
	}
	if flags&^flagMask != 0 {
		return fmt.Errorf("%w: unknown flags %#x", ErrInvalidMessage, flags)
	}
	m.Type = typ
	m.Reject = flags&flagReject != 0
	m.Last = flags&flagLast != 0
	m.Transfer = flags&flagTransfer != 0
	if flags&flagMembership != 0 && flags&flagSnapshot == 0 {
		return fmt.Errorf("%w: membership flag without a snapshot", ErrInvalidMessage)
	}
	m.From = d.nodeID(prevFrom)
	m.To = d.nodeID(prevTo)
	m.Term = d.uvarint()
	m.LogTerm = d.uvarint()
	m.Index = d.uvarint()
	m.Commit = d.uvarint()
	m.RejectHint = d.uvarint()
	// Every entry takes at least three bytes, which bounds the allocation
	// a hostile count can cause.
	if n := d.count(3); n > 0 {
		first := d.uvarint()
		if d.err == nil && first > math.MaxUint64-n {
			return fmt.Errorf("%w: entry indexes overflow", ErrInvalidMessage)
		}
		m.Entries = make([]Entry, 0, n)
		for i := uint64(0); i < n && d.err == nil; i++ {
			typ := EntryType(d.byte())
			if d.err == nil && typ > maxEntryType {
				return fmt.Errorf("%w: entry type %d", ErrInvalidMessage, typ)
			}
			term := d.uvarint()
			data := d.bytes()
			m.Entries = append(m.Entries, Entry{Term: term, Index: first + i, Type: typ, Data: data})
		}
	}
	if flags&flagSnapshot != 0 {
		s := &SnapshotMeta{Index: d.uvarint(), Term: d.uvarint()}
		if flags&flagMembership != 0 {
			if d.err != nil {
				return d.err
			}
			rest, err := s.Membership.decode(&d)
			if err != nil {
				return fmt.Errorf("%w: snapshot %w", ErrInvalidMessage, err)
			}
			d.buf = rest
		} else if n := d.count(1); n > 0 {
			s.Membership.Voters = make([]transport.NodeID, 0, n)
			for i := uint64(0); i < n && d.err == nil; i++ {
				s.Membership.Voters = append(s.Membership.Voters, transport.NodeID(d.bytes()))
			}
		}
		m.Snapshot = s
		m.Offset = d.uvarint()
	}
	m.Data = d.bytes()
	m.Context = d.bytes()
	if d.err != nil {
		return d.err
	}
	if len(d.buf) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrInvalidMessage, len(d.buf))
	}
	return nil
}

// decoder reads the wire format, remembering the first error so that the
// decoding code can read straight through and check once.
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated or bad %s", ErrInvalidMessage, what)
	}
	d.buf = nil
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.buf) == 0 {
		d.fail("header")
		return 0
	}
	c := d.buf[0]
	d.buf = d.buf[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

// count reads an element count and checks it against the bytes left, given
// the minimum encoded size of one element.
func (d *decoder) count(minElemSize uint64) uint64 {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.buf))/minElemSize {
		d.fail("count")
		return 0
	}
	return n
}

// bytes reads a length-prefixed byte string; it aliases the input and is nil
// when empty.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.buf)) {
		d.fail("length")
		return nil
	}
	if n == 0 {
		return nil
	}
	b := d.buf[:n:n]
	d.buf = d.buf[n:]
	return b
}

// nodeID reads a node ID, returning prev without allocating when equal.
func (d *decoder) nodeID(prev transport.NodeID) transport.NodeID {
	b := d.bytes()
	if string(b) == string(prev) {
		return prev
	}
	return transport.NodeID(b)
}

func uvarintSize(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func strSize(s string) int   { return uvarintSize(uint64(len(s))) + len(s) }
func bytesSize(b []byte) int { return uvarintSize(uint64(len(b))) + len(b) }
func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}
func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}
