package clock

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// The binary encoding of a Vector (MarshalBinary, AppendBinary,
// UnmarshalBinary) is compact and canonical — one clock has exactly one
// encoding, so encodings can be compared or hashed:
//
//	version  1 byte   vectorVersion (1)
//	flags    1 byte   bit 0: entries carry update times; other bits 0
//	count    uvarint  number of entries
//	count × entry, in strictly ascending node order:
//	  len      uvarint  length of the node ID
//	  node     len bytes
//	  counter  uvarint  1 … MaxCounter
//	  updated  varint   Unix nanoseconds (only if flag bit 0 is set)
//
// Every varint is minimal. A four-node clock with small counters and short
// IDs takes a few bytes per node.
const (
	vectorVersion    = 1
	flagUpdated      = 1 << 0
	vectorHeaderSize = 2
	minEntrySize     = 2 // a zero-length node ID and a one-byte counter
)

func errCounterTooLarge(node NodeID, c uint64) error {
	return fmt.Errorf("%w: node %q counter %d, limit %d", ErrTimestampTooLarge, node, c, uint64(MaxCounter))
}

func sortEntries(es []entry) {
	slices.SortFunc(es, func(a, b entry) int { return strings.Compare(string(a.node), string(b.node)) })
}

// MarshalBinary returns the canonical binary encoding of v. It never fails;
// the error is there to satisfy encoding.BinaryMarshaler.
func (v *Vector) MarshalBinary() ([]byte, error) {
	return v.AppendBinary(nil)
}

// AppendBinary appends the canonical binary encoding of v to b.
func (v *Vector) AppendBinary(b []byte) ([]byte, error) {
	es := v.entriesOrNil()
	var flags byte
	for _, e := range es {
		if e.updated != 0 {
			flags |= flagUpdated
			break
		}
	}
	b = append(b, vectorVersion, flags)
	b = binary.AppendUvarint(b, uint64(len(es)))
	for _, e := range es {
		b = binary.AppendUvarint(b, uint64(len(e.node)))
		b = append(b, e.node...)
		b = binary.AppendUvarint(b, e.counter)
		if flags&flagUpdated != 0 {
			b = binary.AppendVarint(b, e.updated)
		}
	}
	return b, nil
}

// UnmarshalBinary replaces v's contents with the clock encoded in data. It
// accepts only the canonical encoding that MarshalBinary produces and
// returns an error wrapping ErrMalformed (or ErrTimestampTooLarge) for
// anything else, leaving v unchanged. v does not retain data.
func (v *Vector) UnmarshalBinary(data []byte) error {
	es, err := decodeVector(data)
	if err != nil {
		return err
	}
	v.entries = es
	return nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// decoder reads varints and checks they are minimal, so that decoding and
// re-encoding gives back the same bytes.
type decoder struct {
	data []byte
	off  int
}

func (d *decoder) uvarint(what string) (uint64, error) {
	x, n := binary.Uvarint(d.data[d.off:])
	if n <= 0 {
		return 0, malformed("bad %s at offset %d", what, d.off)
	}
	if n != uvarintLen(x) {
		return 0, malformed("non-minimal %s at offset %d", what, d.off)
	}
	d.off += n
	return x, nil
}

func (d *decoder) varint(what string) (int64, error) {
	x, n := binary.Varint(d.data[d.off:])
	if n <= 0 {
		return 0, malformed("bad %s at offset %d", what, d.off)
	}
	ux := uint64(x) << 1 // zig-zag, as binary.PutVarint does
	if x < 0 {
		ux = ^ux
	}
	if n != uvarintLen(ux) {
		return 0, malformed("non-minimal %s at offset %d", what, d.off)
	}
	d.off += n
	return x, nil
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

func decodeVector(data []byte) ([]entry, error) {
	if len(data) < vectorHeaderSize+1 {
		return nil, malformed("%d bytes is too short", len(data))
	}
	if data[0] != vectorVersion {
		return nil, malformed("unknown version %d", data[0])
	}
	flags := data[1]
	if flags&^flagUpdated != 0 {
		return nil, malformed("unknown flags %#x", flags)
	}
	d := &decoder{data: data, off: vectorHeaderSize}
	count, err := d.uvarint("entry count")
	if err != nil {
		return nil, err
	}
	// Bound the allocation by what the input can hold, so a forged count
	// cannot make us allocate more than the message itself.
	if count > uint64(len(data)-d.off)/minEntrySize {
		return nil, malformed("entry count %d exceeds input size %d", count, len(data))
	}
	es := make([]entry, 0, count)
	// One copy of the input holds every node ID: the IDs are substrings of
	// it, so decoding costs two allocations whatever the clock's size.
	text := string(data)
	anyUpdated := false
	for k := uint64(0); k < count; k++ {
		n, err := d.uvarint("node length")
		if err != nil {
			return nil, err
		}
		if n > uint64(len(data)-d.off) {
			return nil, malformed("node length %d exceeds remaining %d bytes", n, len(data)-d.off)
		}
		node := NodeID(text[d.off : d.off+int(n)])
		d.off += int(n)
		if len(es) > 0 && es[len(es)-1].node >= node {
			return nil, malformed("node %q out of order or repeated", node)
		}
		c, err := d.uvarint("counter")
		if err != nil {
			return nil, err
		}
		if c == 0 {
			return nil, malformed("node %q has counter 0", node)
		}
		if c > MaxCounter {
			return nil, errCounterTooLarge(node, c)
		}
		e := entry{node: node, counter: c}
		if flags&flagUpdated != 0 {
			if e.updated, err = d.varint("update time"); err != nil {
				return nil, err
			}
			anyUpdated = anyUpdated || e.updated != 0
		}
		es = append(es, e)
	}
	if d.off != len(data) {
		return nil, malformed("%d trailing bytes", len(data)-d.off)
	}
	if flags&flagUpdated != 0 && !anyUpdated {
		return nil, malformed("update-time flag set but no entry has one")
	}
	return es, nil
}

// jsonEntry is one element of the JSON form of a Vector.
type jsonEntry struct {
	Node    NodeID    `json:"node"`
	Counter uint64    `json:"counter"`
	Updated time.Time `json:"updated,omitzero"`
}

// Update times must survive a round trip through Unix nanoseconds.
var (
	minUpdated = time.Unix(0, -1<<63)
	maxUpdated = time.Unix(0, 1<<63-1)
)

// MarshalJSON encodes v as an array of entries in ascending node order,
// for example [{"node":"a","counter":2},{"node":"b","counter":1}]. Entries
// ticked with TickAt carry an "updated" RFC 3339 time. A node ID that is
// not valid UTF-8 gives an error wrapping ErrInvalidNodeID.
func (v *Vector) MarshalJSON() ([]byte, error) {
	es := v.entriesOrNil()
	out := make([]jsonEntry, len(es))
	for i, e := range es {
		if !utf8.ValidString(string(e.node)) {
			return nil, fmt.Errorf("%w: %q is not valid UTF-8 and cannot be encoded as JSON", ErrInvalidNodeID, e.node)
		}
		out[i] = jsonEntry{Node: e.node, Counter: e.counter}
		if e.updated != 0 {
			out[i].Updated = time.Unix(0, e.updated).UTC()
		}
	}
	return json.Marshal(out)
}

// UnmarshalJSON replaces v's contents with the clock in data, the form
// MarshalJSON produces. Entries may come in any order. It returns an error
// wrapping ErrMalformed for unknown fields, repeated nodes, zero counters or
// update times outside the years 1678–2262, and ErrTimestampTooLarge for
// counters above MaxCounter, leaving v unchanged. A JSON null leaves v
// unchanged, following the encoding/json convention.
func (v *Vector) UnmarshalJSON(data []byte) error {
	if string(bytes.TrimSpace(data)) == "null" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var in []jsonEntry
	if err := dec.Decode(&in); err != nil {
		return malformed("%v", err)
	}
	if dec.More() {
		return malformed("trailing data after the array")
	}
	if in == nil {
		return malformed("want an array of entries")
	}
	es := make([]entry, 0, len(in))
	for _, je := range in {
		switch {
		case je.Counter == 0:
			return malformed("node %q has counter 0", je.Node)
		case je.Counter > MaxCounter:
			return errCounterTooLarge(je.Node, je.Counter)
		case !je.Updated.IsZero() && (je.Updated.Before(minUpdated) || je.Updated.After(maxUpdated)):
			return malformed("node %q update time %v out of range", je.Node, je.Updated)
		}
		e := entry{node: je.Node, counter: je.Counter}
		if !je.Updated.IsZero() {
			e.updated = je.Updated.UnixNano()
		}
		es = append(es, e)
	}
	sortEntries(es)
	for i := 1; i < len(es); i++ {
		if es[i].node == es[i-1].node {
			return malformed("node %q repeated", es[i].node)
		}
	}
	v.entries = es
	return nil
}
