package session

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
)

// tableVersion is the version of the table encoding. Layout (version 1):
// the version byte; varint now; varint nextSweep; uvarint session count;
// per session in ascending ID order: uvarint ID, varint lastActive, uvarint
// acked, uvarint result count, then per result in ascending seq order:
// uvarint seq, uvarint length, the bytes. Equal tables encode to equal
// bytes, so replicas' snapshots can be compared.
const tableVersion = 1

// AppendBinary appends the table's encoding to dst. The encoding holds the
// sessions and the table's time, not the Config.
func (t *Table) AppendBinary(dst []byte) ([]byte, error) {
	if !t.made() {
		return dst, errNoTable
	}
	dst = append(dst, tableVersion)
	dst = binary.AppendVarint(dst, t.now)
	dst = binary.AppendVarint(dst, t.nextSweep)
	dst = binary.AppendUvarint(dst, uint64(len(t.sessions)))
	for _, id := range slices.Sorted(maps.Keys(t.sessions)) {
		s := t.sessions[id]
		dst = binary.AppendUvarint(dst, uint64(id))
		dst = binary.AppendVarint(dst, s.lastActive)
		dst = binary.AppendUvarint(dst, s.acked)
		first, n := s.cached()
		dst = binary.AppendUvarint(dst, uint64(n))
		for i := first; i < first+n; i++ { // ascending seq order
			r := s.results.at(i)
			dst = binary.AppendUvarint(dst, r.seq)
			dst = binary.AppendUvarint(dst, uint64(len(r.val)))
			dst = append(dst, r.val...)
		}
	}
	return dst, nil
}

// MarshalBinary returns the table's encoding (see AppendBinary).
func (t *Table) MarshalBinary() ([]byte, error) { return t.AppendBinary(nil) }

// UnmarshalBinary replaces the table's sessions and time with those
// encoded in b (by AppendBinary, possibly on another replica). Data that
// does not decode exactly (unknown version, truncation, trailing bytes,
// unsorted or duplicate IDs or sequence numbers) is refused with an error
// wrapping ErrMalformed, and the table is left unchanged. The Config is
// kept: a table restored with a smaller MaxSessions evicts at the next
// registration.
func (t *Table) UnmarshalBinary(b []byte) error {
	if !t.made() {
		return errNoTable
	}
	d := decoder{b: b}
	if v := d.byte(); d.err == nil && v != tableVersion {
		return fmt.Errorf("%w: table encoding version %d; want %d", ErrMalformed, v, tableVersion)
	}
	now, nextSweep := d.varint(), d.varint()
	count := d.count(4) // a session takes at least 4 bytes
	sessions := make(map[ID]*entry, count)
	var prev ID
	for i := 0; i < count && d.err == nil; i++ {
		id := ID(d.uvarint())
		s := &entry{lastActive: d.varint(), acked: d.uvarint()}
		n := d.count(2) // a result takes at least 2 bytes
		if d.err != nil {
			break
		}
		if id == 0 || (i > 0 && id <= prev) || s.acked == 0 || s.lastActive > now {
			return fmt.Errorf("%w: session %d out of order or inconsistent (after %d, acked %d, active %d, now %d)",
				ErrMalformed, id, prev, s.acked, s.lastActive, now)
		}
		var prevSeq uint64
		for j := 0; j < n && d.err == nil; j++ {
			seq := d.uvarint()
			r := d.bytes()
			if d.err == nil && (seq < s.acked || (j > 0 && seq <= prevSeq)) {
				return fmt.Errorf("%w: session %d: result for seq %d out of order (after %d, acked %d)", ErrMalformed, id, seq, prevSeq, s.acked)
			}
			s.results.push(seq, r)
			prevSeq = seq
		}
		sessions[id], prev = s, id
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return fmt.Errorf("%w: session table: %v", ErrMalformed, d.err)
	}
	t.now, t.nextSweep, t.sessions, t.last = now, nextSweep, sessions, nil
	return nil
}

// decoder reads varints from b, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = fmt.Errorf("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("truncated or overlong varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("truncated or overlong varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a count of items taking at least minSize bytes each, and
// refuses one the remaining bytes cannot hold (so a corrupt count cannot
// make the decoder allocate without bound).
func (d *decoder) count(minSize int) int {
	v := d.uvarint()
	if d.err == nil && v > uint64(len(d.b)/minSize) {
		d.err = fmt.Errorf("count %d exceeds the %d bytes left", v, len(d.b))
		return 0
	}
	return int(v)
}

func (d *decoder) bytes() []byte {
	n := d.count(1)
	if d.err != nil {
		return nil
	}
	v := make([]byte, n)
	copy(v, d.b)
	d.b = d.b[n:]
	return v
}
