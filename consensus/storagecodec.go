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
// (all integers uvarint).

var (
	hardStateMagic = [4]byte{'D', 'K', 'H', 'S'}
	snapshotMagic  = [4]byte{'D', 'K', 'S', 'N'}
	castagnoli     = crc32.MakeTable(crc32.Castagnoli)
)

const formatVersion = 1

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

// unseal checks the magic and checksum and returns the body.
func unseal(magic [4]byte, b []byte) ([]byte, error) {
	if len(b) < 8 || [4]byte(b[:4]) != magic {
		return nil, fmt.Errorf("%w: bad magic", errFormat)
	}
	body := b[8:]
	if got, want := crc32.Checksum(body, castagnoli), binary.LittleEndian.Uint32(b[4:8]); got != want {
		return nil, fmt.Errorf("%w: checksum %08x, want %08x", errFormat, got, want)
	}
	if len(body) == 0 || body[0] != formatVersion {
		return nil, fmt.Errorf("%w: unknown version", errFormat)
	}
	return body[1:], nil
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
	body = append(body, formatVersion)
	body = binary.AppendUvarint(body, s.Meta.Index)
	body = binary.AppendUvarint(body, s.Meta.Term)
	body = binary.AppendUvarint(body, uint64(len(s.Meta.Membership.Voters)))
	for _, v := range s.Meta.Membership.Voters {
		body = appendBytes(body, []byte(v))
	}
	body = appendBytes(body, s.Data)
	return sealed(snapshotMagic, body)
}

func decodeSnapshot(b []byte) (raft.Snapshot, error) {
	body, err := unseal(snapshotMagic, b)
	if err != nil {
		return raft.Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	d := reader{b: body}
	var s raft.Snapshot
	s.Meta.Index = d.uvarint()
	s.Meta.Term = d.uvarint()
	n := d.uvarint()
	if n > uint64(len(d.b)) { // each voter takes at least one byte
		return raft.Snapshot{}, fmt.Errorf("snapshot: %w: %d voters in %d bytes", errFormat, n, len(d.b))
	}
	for range n {
		s.Meta.Membership.Voters = append(s.Meta.Membership.Voters, transport.NodeID(d.bytes()))
	}
	if data := d.bytes(); len(data) > 0 {
		s.Data = append([]byte(nil), data...)
	}
	if err := d.done(); err != nil {
		return raft.Snapshot{}, fmt.Errorf("snapshot: %w", err)
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
