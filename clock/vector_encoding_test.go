package clock

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"
)

func sameEntries(a, b *Vector) bool { return slices.Equal(a.entriesOrNil(), b.entriesOrNil()) }

func encodingSamples(t testing.TB) []*Vector {
	withTimes := NewVector()
	withTimes.TickAt("a", time.Unix(1_700_000_000, 5))
	withTimes.Tick("b")
	withTimes.TickAt("c", time.Unix(-5, 0)) // before the epoch: a negative varint
	big := NewVector()
	for i := range 200 {
		big.Tick(NodeID(rune('A' + i)))
	}
	huge := vec(t, "x", MaxCounter)
	return []*Vector{NewVector(), vec(t, "", 1), vec(t, "a", 1, "b", 300, "node-3", 70000), withTimes, big, huge}
}

func TestVectorBinaryRoundTrip(t *testing.T) {
	for _, v := range encodingSamples(t) {
		data, err := v.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary(%v): %v", v, err)
		}
		got := NewVector()
		if err := got.UnmarshalBinary(data); err != nil {
			t.Fatalf("UnmarshalBinary(MarshalBinary(%v)): %v", v, err)
		}
		if !sameEntries(got, v) {
			t.Errorf("binary round trip of %v = %v; want the same entries", v, got)
		}
	}
}

func TestVectorBinaryIsCompact(t *testing.T) {
	v := vec(t, "n1", 5, "n2", 7, "n3", 1, "n4", 120)
	data, _ := v.MarshalBinary()
	// 2 header bytes, 1 count byte, 4 × (1 length + 2 ID + 1 counter).
	if got, want := len(data), 3+4*4; got != want {
		t.Errorf("len(MarshalBinary(%v)) = %d; want %d", v, got, want)
	}
}

func TestVectorJSONRoundTrip(t *testing.T) {
	for _, v := range encodingSamples(t) {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal(%v): %v", v, err)
		}
		got := NewVector()
		if err := json.Unmarshal(data, got); err != nil {
			t.Fatalf("json.Unmarshal(%s): %v", data, err)
		}
		if !sameEntries(got, v) {
			t.Errorf("JSON round trip of %v via %s = %v; want the same entries", v, data, got)
		}
	}
}

func TestVectorJSONForm(t *testing.T) {
	v := vec(t, "b", 1, "a", 2)
	v.TickAt("c", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	data, _ := json.Marshal(v)
	want := `[{"node":"a","counter":2},{"node":"b","counter":1},{"node":"c","counter":1,"updated":"2026-01-02T03:04:05Z"}]`
	if string(data) != want {
		t.Errorf("json.Marshal(%v) = %s; want %s", v, data, want)
	}
	var u Vector
	if err := u.UnmarshalJSON([]byte(`[{"node":"z","counter":1},{"node":"y","counter":4}]`)); err != nil {
		t.Fatalf("UnmarshalJSON of unsorted entries: %v", err)
	}
	if got := u.String(); got != "{y:4 z:1}" {
		t.Errorf("UnmarshalJSON of unsorted entries = %s; want {y:4 z:1}", got)
	}
}

func TestVectorMarshalJSONRejectsInvalidUTF8(t *testing.T) {
	v := NewVector()
	v.Tick("\xff")
	if _, err := json.Marshal(v); !errors.Is(err, ErrInvalidNodeID) {
		t.Errorf("json.Marshal of node \"\\xff\": error %v; want ErrInvalidNodeID", err)
	}
}

// unmarshalBinaryNoPanic calls v.UnmarshalBinary(data), turning a panic
// into an error that wraps no sentinel, so that a decoder that panics on
// bad input fails the test by an assertion.
func unmarshalBinaryNoPanic(v *Vector, data []byte) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("UnmarshalBinary panicked: %v", p)
		}
	}()
	return v.UnmarshalBinary(data)
}

func TestVectorUnmarshalBinaryRejects(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"header only", []byte{1, 0}, ErrMalformed},
		{"bad version", []byte{2, 0, 0}, ErrMalformed},
		{"unknown flag", []byte{1, 2, 0}, ErrMalformed},
		{"count beyond input", []byte{1, 0, 5, 1, 'a', 1}, ErrMalformed},
		{"truncated node", []byte{1, 0, 1, 5, 'a', 1}, ErrMalformed},
		{"missing counter", []byte{1, 0, 1, 1, 'a'}, ErrMalformed},
		{"zero counter", []byte{1, 0, 1, 1, 'a', 0}, ErrMalformed},
		{"counter too large", append([]byte{1, 0, 1, 1, 'a'}, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01), ErrTimestampTooLarge},
		{"unsorted", []byte{1, 0, 2, 1, 'b', 1, 1, 'a', 1}, ErrMalformed},
		{"duplicate", []byte{1, 0, 2, 1, 'a', 1, 1, 'a', 2}, ErrMalformed},
		{"non-minimal count", []byte{1, 0, 0x81, 0x00, 1, 'a', 1}, ErrMalformed},
		{"non-minimal counter", []byte{1, 0, 1, 1, 'a', 0x81, 0x00}, ErrMalformed},
		{"trailing byte", []byte{1, 0, 1, 1, 'a', 1, 9}, ErrMalformed},
		{"flag without times", []byte{1, 1, 1, 1, 'a', 1, 0}, ErrMalformed},
		{"missing time", []byte{1, 1, 1, 1, 'a', 1}, ErrMalformed},
		{"non-minimal time", []byte{1, 1, 1, 1, 'a', 1, 0x82, 0x00}, ErrMalformed},
		{"varint overflow", []byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := vec(t, "keep", 1)
			err := unmarshalBinaryNoPanic(v, tt.data)
			if !errors.Is(err, tt.want) {
				t.Errorf("UnmarshalBinary(%x) error = %v; want %v", tt.data, err, tt.want)
			}
			if got := v.String(); got != "{keep:1}" {
				t.Errorf("UnmarshalBinary(%x) changed the clock to %s; want it unchanged", tt.data, got)
			}
		})
	}
}

// TestVectorUnmarshalBinaryBoundsAllocation feeds encodings whose entry
// count promises more entries than the input holds: each is refused with
// ErrMalformed, and decoding allocates about the input's size, not what
// the forged count asks for (which only the million entries would show).
// It reads the process's allocation counter: no test of this package runs
// in parallel with it.
func TestVectorUnmarshalBinaryBoundsAllocation(t *testing.T) {
	const limit = 64 << 10 // bytes: generous for a decode of a few bytes
	tests := []struct {
		name  string
		count uint64
	}{
		{"a million entries", 1 << 20},
		{"three entries in room for one", 3},
	}
	for _, tt := range tests {
		data := binary.AppendUvarint([]byte{vectorVersion, 0}, tt.count)
		data = append(data, 1, 'a', 1) // room for one entry only
		var v Vector
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := unmarshalBinaryNoPanic(&v, data)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: UnmarshalBinary(%x) error = %v; want ErrMalformed", tt.name, data, err)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > limit {
			t.Errorf("%s: UnmarshalBinary(%x) allocated %d bytes; want ≤ %d", tt.name, data, got, limit)
		}
	}
}

func TestVectorUnmarshalJSONRejects(t *testing.T) {
	tests := []struct {
		name string
		data string
		want error
	}{
		{"not json", `[{`, ErrMalformed},
		{"object", `{"a":1}`, ErrMalformed},
		{"unknown field", `[{"node":"a","counter":1,"extra":true}]`, ErrMalformed},
		{"zero counter", `[{"node":"a","counter":0}]`, ErrMalformed},
		{"negative counter", `[{"node":"a","counter":-1}]`, ErrMalformed},
		{"counter too large", `[{"node":"a","counter":9223372036854775808}]`, ErrTimestampTooLarge},
		{"duplicate node", `[{"node":"a","counter":1},{"node":"a","counter":2}]`, ErrMalformed},
		{"time after 2262", `[{"node":"a","counter":1,"updated":"9999-01-01T00:00:00Z"}]`, ErrMalformed},
		{"time before 1678", `[{"node":"a","counter":1,"updated":"1000-01-01T00:00:00Z"}]`, ErrMalformed},
		{"trailing data", `[] []`, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := vec(t, "keep", 1)
			err := v.UnmarshalJSON([]byte(tt.data))
			if !errors.Is(err, tt.want) {
				t.Errorf("UnmarshalJSON(%s) error = %v; want %v", tt.data, err, tt.want)
			}
			if got := v.String(); got != "{keep:1}" {
				t.Errorf("UnmarshalJSON(%s) changed the clock to %s; want it unchanged", tt.data, got)
			}
		})
	}
}

// FuzzVectorUnmarshalBinary checks that decoding never panics, that anything
// accepted is canonical (re-encodes to the same bytes) and satisfies the
// Vector invariants, and that a decoded clock survives a JSON round trip.
func FuzzVectorUnmarshalBinary(f *testing.F) {
	for _, v := range encodingSamples(f) {
		data, _ := v.MarshalBinary()
		f.Add(data)
	}
	f.Add([]byte{1, 0, 2, 1, 'b', 1, 1, 'a', 1})
	f.Add([]byte{1, 1, 1, 1, 'a', 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var v Vector
		if err := v.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTimestampTooLarge) {
				t.Fatalf("UnmarshalBinary(%x) error %v wraps no sentinel", data, err)
			}
			return
		}
		checkInvariants(t, &v)
		again, _ := v.MarshalBinary()
		if !bytes.Equal(again, data) {
			t.Fatalf("UnmarshalBinary accepted non-canonical %x; re-encodes to %x", data, again)
		}
		js, err := json.Marshal(&v)
		if errors.Is(err, ErrInvalidNodeID) {
			return // JSON cannot carry non-UTF-8 node IDs; the binary form can
		}
		if err != nil {
			t.Fatalf("json.Marshal(%v): %v", &v, err)
		}
		var w Vector
		if err := json.Unmarshal(js, &w); err != nil {
			t.Fatalf("json.Unmarshal(%s): %v", js, err)
		}
		if w.Compare(&v) != Equal {
			t.Fatalf("JSON round trip of %v = %v", &v, &w)
		}
	})
}

// FuzzVectorUnmarshalJSON checks that decoding never panics and that
// anything accepted satisfies the invariants and round-trips through both
// encodings.
func FuzzVectorUnmarshalJSON(f *testing.F) {
	for _, v := range encodingSamples(f) {
		data, _ := json.Marshal(v)
		f.Add(data)
	}
	f.Add([]byte(`[{"node":"a","counter":1},{"node":"a","counter":2}]`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var v Vector
		if err := v.UnmarshalJSON(data); err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTimestampTooLarge) {
				t.Fatalf("UnmarshalJSON(%q) error %v wraps no sentinel", data, err)
			}
			return
		}
		checkInvariants(t, &v)
		bin, _ := v.MarshalBinary()
		var w Vector
		if err := w.UnmarshalBinary(bin); err != nil {
			t.Fatalf("UnmarshalBinary(MarshalBinary(%v)): %v", &v, err)
		}
		if !sameEntries(&v, &w) {
			t.Fatalf("binary round trip of %v = %v", &v, &w)
		}
	})
}

func checkInvariants(t *testing.T, v *Vector) {
	t.Helper()
	for i, e := range v.entries {
		if e.counter == 0 || e.counter > MaxCounter {
			t.Fatalf("decoded entry %q has counter %d", e.node, e.counter)
		}
		if i > 0 && v.entries[i-1].node >= e.node {
			t.Fatalf("decoded entries not strictly sorted: %q then %q", v.entries[i-1].node, e.node)
		}
	}
}
