package consensus

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
)

// The durable formats of DiskStorage. Log entries live in the WAL, whose
// records are already checksummed and indexed, so an entry record is only
//
//	type (1 byte) | term (uvarint) | data
//
// The hard state and snapshot files are whole files replaced atomically:
//
//	magic (4 bytes) | CRC32C of the rest (4 bytes) | body
//
// hard state body: version 1 | term | len(vote) vote | commit
// snapshot body:   version 1 | index | term | n voters, each len+bytes | len(data) data
//              or version 2 | index | term | len(membership) membership | len(data) data
// (all integers uvarint). Version 2 carries the whole membership (voters,
// learners, outgoing voters of a joint configuration, auto-leave) in
// raft.Membership's binary encoding; it is written only when the
// membership is more than a list of voters, so that a static cluster's
// snapshot stays readable by a release that knows version 1 only, and
// the decoder refuses a version 2 that version 1 could have said (one
// encoding per snapshot).

var (
	hardStateMagic = [4]byte{'D', 'K', 'H', 'S'}
	snapshotMagic  = [4]byte{'D', 'K', 'S', 'N'}
	castagnoli     = crc32.MakeTable(crc32.Castagnoli)
)

const formatVersion = 1

// snapshotVersionMembership is the snapshot format with the whole
// membership.
const snapshotVersionMembership = 2

// maxEntryType is the largest EntryType the decoder accepts.
const maxEntryType = raft.EntryConfChange

// errFormat is wrapped by every decoding error of the durable formats. It
// wraps ErrCorrupt.
var errFormat = fmt.Errorf("%w: bad file format", ErrCorrupt)

func appendEntryRecord(dst []byte, e *raft.Entry) []byte {
	dst = append(dst, byte(e.Type))
	dst = binary.AppendUvarint(dst, e.Term)
	return append(dst, e.Data...)
}

// decodeEntryRecord decodes a WAL record into the entry at index. Data is
// copied, because WAL payloads are only valid during Replay.
func decodeEntryRecord(index uint64, b []byte) (raft.Entry, error) {
	if len(b) < 2 {
		return raft.Entry{}, fmt.Errorf("%w: entry %d: %d bytes", errFormat, index, len(b))
	}
	typ := raft.EntryType(b[0])
	if typ > maxEntryType {
		return raft.Entry{}, fmt.Errorf("%w: entry %d: type %d", errFormat, index, b[0])
	}
	term, n := binary.Uvarint(b[1:])
	if n <= 0 {
		return raft.Entry{}, fmt.Errorf("%w: entry %d: bad term", errFormat, index)
	}
	e := raft.Entry{Index: index, Term: term, Type: typ}
	if rest := b[1+n:]; len(rest) > 0 {
		e.Data = append([]byte(nil), rest...)
	}
	return e, nil
}

// sealed wraps body with the magic and a checksum.
func sealed(magic [4]byte, body []byte) []byte {
	out := make([]byte, 8, 8+len(body))
	copy(out, magic[:])
	binary.LittleEndian.PutUint32(out[4:8], crc32.Checksum(body, castagnoli))
	return append(out, body...)
}

// unseal checks the magic, checksum and version (formatVersion) and
// returns the body.
func unseal(magic [4]byte, b []byte) ([]byte, error) {
	version, body, err := unsealVersion(magic, b)
	if err == nil && version != formatVersion {
		err = fmt.Errorf("%w: unknown version", errFormat)
	}
	return body, err
}

// unsealVersion checks the magic and checksum and returns the version byte
// and the rest of the body.
func unsealVersion(magic [4]byte, b []byte) (byte, []byte, error) {
	if len(b) < 8 || [4]byte(b[:4]) != magic {
		return 0, nil, fmt.Errorf("%w: bad magic", errFormat)
	}
	body := b[8:]
	if got, want := crc32.Checksum(body, castagnoli), binary.LittleEndian.Uint32(b[4:8]); got != want {
		return 0, nil, fmt.Errorf("%w: checksum %08x, want %08x", errFormat, got, want)
	}
	if len(body) == 0 {
		return 0, nil, fmt.Errorf("%w: unknown version", errFormat)
	}
	return body[0], body[1:], nil
}

// votersOnly reports whether m is a plain list of voters (what snapshot
// format version 1 can hold).
func votersOnly(m raft.Membership) bool {
	return len(m.Learners) == 0 && len(m.OutgoingVoters) == 0 && !m.AutoLeave
}

func encodeHardState(hs raft.HardState) []byte {
	body := []byte{formatVersion}
	body = binary.AppendUvarint(body, hs.Term)
	body = appendBytes(body, []byte(hs.Vote))
	body = binary.AppendUvarint(body, hs.Commit)
	return sealed(hardStateMagic, body)
}

func decodeHardState(b []byte) (raft.HardState, error) {
	body, err := unseal(hardStateMagic, b)
	if err != nil {
		return raft.HardState{}, fmt.Errorf("hard state: %w", err)
	}
	d := reader{b: body}
	hs := raft.HardState{Term: d.uvarint(), Vote: transport.NodeID(d.bytes()), Commit: d.uvarint()}
	if err := d.done(); err != nil {
		return raft.HardState{}, fmt.Errorf("hard state: %w", err)
	}
	return hs, nil
}

func encodeSnapshot(s raft.Snapshot) []byte {
	body := make([]byte, 0, 64+len(s.Data))
	m := s.Meta.Membership
	if votersOnly(m) {
		body = append(body, formatVersion)
	} else {
		body = append(body, snapshotVersionMembership)
	}
	body = binary.AppendUvarint(body, s.Meta.Index)
	body = binary.AppendUvarint(body, s.Meta.Term)
	if votersOnly(m) {
		body = binary.AppendUvarint(body, uint64(len(m.Voters)))
		for _, v := range m.Voters {
			body = appendBytes(body, []byte(v))
		}
	} else {
		enc, _ := m.AppendBinary(nil) // never fails
		body = appendBytes(body, enc)
	}
	body = appendBytes(body, s.Data)
	return sealed(snapshotMagic, body)
}

func decodeSnapshot(b []byte) (raft.Snapshot, error) {
	version, body, err := unsealVersion(snapshotMagic, b)
	if err != nil {
		return raft.Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	d := reader{b: body}
	meta, err := decodeSnapshotMeta(version, &d)
	if err != nil {
		return raft.Snapshot{}, err
	}
	s := raft.Snapshot{Meta: meta}
	if data := d.bytes(); len(data) > 0 {
		s.Data = append([]byte(nil), data...)
	}
	if err := d.done(); err != nil {
		return raft.Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	return s, nil
}

// decodeSnapshotMeta decodes a snapshot body of the given version up to
// its data (d is left at the data's length prefix).
func decodeSnapshotMeta(version byte, d *reader) (raft.SnapshotMeta, error) {
	var s raft.SnapshotMeta
	switch version {
	case formatVersion:
	case snapshotVersionMembership:
		s.Index = d.uvarint()
		s.Term = d.uvarint()
		enc := d.bytes()
		if d.err != nil {
			return raft.SnapshotMeta{}, fmt.Errorf("snapshot: %w", d.err)
		}
		if err := s.Membership.UnmarshalBinary(enc); err != nil {
			return raft.SnapshotMeta{}, fmt.Errorf("snapshot: %w: membership: %w", errFormat, err)
		}
		if votersOnly(s.Membership) {
			return raft.SnapshotMeta{}, fmt.Errorf("snapshot: %w: version 2 for a voters-only membership", errFormat)
		}
		return s, nil
	default:
		return raft.SnapshotMeta{}, fmt.Errorf("snapshot: %w: unknown version %d", errFormat, version)
	}
	s.Index = d.uvarint()
	s.Term = d.uvarint()
	n := d.uvarint()
	if n > uint64(len(d.b)) { // each voter takes at least one byte
		return raft.SnapshotMeta{}, fmt.Errorf("snapshot: %w: %d voters in %d bytes", errFormat, n, len(d.b))
	}
	for range n {
		s.Membership.Voters = append(s.Membership.Voters, transport.NodeID(d.bytes()))
	}
	if d.err != nil {
		return raft.SnapshotMeta{}, fmt.Errorf("snapshot: %w", d.err)
	}
	return s, nil
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// reader decodes uvarints and length-prefixed bytes, remembering the first
// error so call sites stay linear.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = fmt.Errorf("%w: bad integer", errFormat)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%w: length %d exceeds the %d bytes left", errFormat, n, len(r.b))
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", errFormat, len(r.b))
	}
	return r.err
}
