package consensus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// ErrBadSnapshotFrame is wrapped by every error decoding a frame of the
// snapshot stream (a chunk of a snapshot file, its acknowledgement): such
// a frame is dropped.
var ErrBadSnapshotFrame = errors.New("consensus: malformed snapshot stream frame")

// Kinds of snapshot stream frames.
const (
	// frameChunk (leader to follower) carries the bytes [Offset,
	// Offset+len(Data)) of the snapshot file, whose size is Total.
	frameChunk byte = 1 + iota
	// frameCommit (leader to follower) ends a transfer whose every byte
	// was acknowledged: Data is the core's MsgSnap, as the Node sends it
	// (envelope included), handed to the follower's core once the file is
	// verified. Offset equals Total.
	frameCommit
	// frameAck (follower to leader) says the first Offset bytes are held
	// (written and fsynced).
	frameAck
	// frameRefuse (follower to leader) refuses a frame of the transfer:
	// the leader ends it and its core starts over.
	frameRefuse
)

const snapFrameVersion = 1

// snapFrame is one message of the snapshot stream. Every frame names its
// transfer: the leader's term when it began, a random transfer ID, and the
// snapshot's index and term.
type snapFrame struct {
	Kind     byte
	Transfer uint64
	Term     uint64 // the leader's term
	Index    uint64 // the snapshot's last included index
	SnapTerm uint64 // and its term
	Offset   uint64
	Total    uint64 // the snapshot file's size
	Data     []byte
}

// maxSnapFrameHeader bounds the encoded header (version, kind, transfer,
// five uvarints, checksum).
const maxSnapFrameHeader = 2 + 8 + 5*binary.MaxVarintLen64 + 4

// appendSnapFrame appends the encoding of f to dst:
//
//	version (1) | kind (1) | transfer (8, big endian) | term | index |
//	snapshot term | offset | total (uvarints) | CRC32C of data (4) | data
func appendSnapFrame(dst []byte, f *snapFrame) []byte {
	dst = append(dst, snapFrameVersion, f.Kind)
	dst = binary.BigEndian.AppendUint64(dst, f.Transfer)
	for _, v := range [...]uint64{f.Term, f.Index, f.SnapTerm, f.Offset, f.Total} {
		dst = binary.AppendUvarint(dst, v)
	}
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(f.Data, castagnoli))
	return append(dst, f.Data...)
}

// decodeSnapFrame decodes a frame from the network. Data aliases b. Every
// error wraps ErrBadSnapshotFrame.
func decodeSnapFrame(b []byte) (snapFrame, error) {
	bad := func(format string, args ...any) (snapFrame, error) {
		return snapFrame{}, fmt.Errorf("%w: "+format, append([]any{ErrBadSnapshotFrame}, args...)...)
	}
	if len(b) < 10 {
		return bad("%d bytes", len(b))
	}
	if b[0] != snapFrameVersion {
		return bad("version %d", b[0])
	}
	f := snapFrame{Kind: b[1], Transfer: binary.BigEndian.Uint64(b[2:10])}
	if f.Kind < frameChunk || f.Kind > frameRefuse {
		return bad("kind %d", f.Kind)
	}
	b = b[10:]
	for _, p := range [...]*uint64{&f.Term, &f.Index, &f.SnapTerm, &f.Offset, &f.Total} {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return bad("bad integer")
		}
		*p, b = v, b[n:]
	}
	if len(b) < 4 {
		return bad("no checksum")
	}
	sum, data := binary.LittleEndian.Uint32(b), b[4:]
	if got := crc32.Checksum(data, castagnoli); got != sum {
		return bad("checksum %08x, want %08x", got, sum)
	}
	switch f.Kind {
	case frameChunk:
		if len(data) == 0 || f.Offset > f.Total || uint64(len(data)) > f.Total-f.Offset {
			return bad("chunk of %d bytes at %d of %d", len(data), f.Offset, f.Total)
		}
	case frameCommit:
		if len(data) == 0 || f.Offset != f.Total {
			return bad("commit of %d bytes at %d of %d", len(data), f.Offset, f.Total)
		}
	default:
		if len(data) != 0 || f.Offset > f.Total {
			return bad("acknowledgement of %d at %d of %d with %d bytes", f.Kind, f.Offset, f.Total, len(data))
		}
	}
	if len(data) > 0 {
		f.Data = data
	}
	return f, nil
}
