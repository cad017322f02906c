package session

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want Envelope
	}{
		{"register", AppendRegister(nil), Envelope{Kind: KindRegister}},
		{"command", AppendCommand(nil, 7, 3, 2, []byte("put x 1")), Envelope{Kind: KindCommand, Session: 7, Seq: 3, Acked: 2, Payload: []byte("put x 1")}},
		{"empty payload", AppendCommand(nil, 1<<40, 1<<50, 1, nil), Envelope{Kind: KindCommand, Session: 1 << 40, Seq: 1 << 50, Acked: 1, Payload: []byte{}}},
		{"close", AppendClose(nil, 9), Envelope{Kind: KindClose, Session: 9}},
		{"format 1 register", appendV1(KindRegister), Envelope{Kind: KindRegister}},
		{"format 1 command", appendV1(KindCommand, 7, 300, 2, 'p', 'u', 't'), Envelope{Kind: KindCommand, Session: 7, Seq: 300, Acked: 2, Payload: []byte("put")}},
		{"format 1 close", appendV1(KindClose, 1<<40), Envelope{Kind: KindClose, Session: 1 << 40}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !Stamp(tt.b, 12345) {
				t.Fatalf("Stamp(%x) = false; want true", tt.b)
			}
			tt.want.Time = 12345
			got, err := Parse(tt.b)
			if err != nil {
				t.Fatalf("Parse(%x) = %v", tt.b, err)
			}
			if got.Kind != tt.want.Kind || got.Time != tt.want.Time || got.Session != tt.want.Session ||
				got.Seq != tt.want.Seq || got.Acked != tt.want.Acked || !bytes.Equal(got.Payload, tt.want.Payload) {
				t.Fatalf("Parse = %+v; want %+v", got, tt.want)
			}
		})
	}
}

// appendV1 returns a format 1 envelope of kind k: the header, then
// fields as uvarints, then the bytes of rest.
func appendV1(k Kind, fields ...uint64) []byte {
	b := append([]byte{Magic[0], Magic[1], Magic[2], formatVarint, byte(k)}, make([]byte, 8)...)
	n := min(len(fields), map[Kind]int{KindRegister: 0, KindCommand: 3, KindClose: 1}[k])
	for _, f := range fields[:n] {
		b = binary.AppendUvarint(b, f)
	}
	for _, c := range fields[n:] {
		b = append(b, byte(c))
	}
	return b
}

func TestParseRefusesMalformed(t *testing.T) {
	cmd := AppendCommand(nil, 7, 3, 2, nil)
	v3 := AppendCommand(nil, 7, 3, 2, []byte("x"))
	v3[len(Magic)-1] = 3
	v0 := appendV1(KindCommand, 7, 3, 2, 'x')
	v0[len(Magic)-1] = 0
	v0fixed := AppendCommand(nil, 7, 3, 2, []byte("payload"))
	v0fixed[len(Magic)-1] = 0
	tests := []struct {
		name string
		b    []byte
	}{
		{"plain", []byte("put x 1")},
		{"magic only", Magic[:]},
		{"short header", cmd[:headerLen-1]},
		{"unknown kind", append(append(Magic[:], 9), make([]byte, 8)...)},
		{"unknown format", v3},
		{"truncated command", cmd[:headerLen+1]},
		{"command one byte short", cmd[:commandLen-1]},
		{"close one byte short", AppendClose(nil, 9)[:headerLen+7]},
		{"close with trailing bytes", append(AppendClose(nil, 9), 0)},
		{"truncated format 1 command", appendV1(KindCommand, 7, 300)[:headerLen+2]},
		// Long enough for ParseInto's fast path, which takes commands only.
		{"close with 24 trailing bytes", append(AppendClose(nil, 9), 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1)},
		{"register with 24 trailing bytes", append(AppendRegister(nil), 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1)},
		{"format 0 command", v0},
		{"format 0 command, fixed fields", v0fixed},
		{"format 1 seq zero", appendV1(KindCommand, 7, 0, 0)},
		{"seq zero", AppendCommand(nil, 7, 0, 0, nil)},
		{"session zero", AppendCommand(nil, 0, 1, 1, nil)},
		{"close of session zero", AppendClose(nil, 0)},
		{"register with trailing bytes", append(AppendRegister(nil), 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse(tt.b); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse(%x) = %v; want ErrMalformed", tt.b, err)
			}
		})
	}
	if Stamp([]byte("put x 1"), 1) {
		t.Fatalf("Stamp changed a plain command")
	}
}

// FuzzParse: any bytes parse or are refused with ErrMalformed, never panic;
// what parses re-encodes to an envelope that parses the same.
func FuzzParse(f *testing.F) {
	f.Add(AppendRegister(nil))
	f.Add(AppendCommand(nil, 7, 3, 2, []byte("x")))
	f.Add(AppendClose(nil, 9))
	f.Add([]byte("plain"))
	f.Add(appendV1(KindCommand, 7, 300, 2, 'x'))
	f.Add(appendV1(KindClose, 9))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse error %v does not wrap ErrMalformed", err)
			}
			return
		}
		var again []byte
		switch e.Kind {
		case KindRegister:
			again = AppendRegister(nil)
		case KindCommand:
			again = AppendCommand(nil, e.Session, e.Seq, e.Acked, e.Payload)
		case KindClose:
			again = AppendClose(nil, e.Session)
		}
		Stamp(again, e.Time)
		e2, err := Parse(again)
		if err != nil || e2.Kind != e.Kind || e2.Time != e.Time || e2.Session != e.Session || e2.Seq != e.Seq ||
			e2.Acked != e.Acked || !bytes.Equal(e2.Payload, e.Payload) {
			t.Fatalf("re-encoded %+v parses as %+v, %v", e, e2, err)
		}
	})
}

// FuzzUvarint: the envelope's fast uvarint decoder agrees with
// encoding/binary's on every input, including overlong and truncated ones.
func FuzzUvarint(f *testing.F) {
	for _, v := range []uint64{0, 1, 127, 128, 300, 16383, 16384, 1 << 21, 1<<28 - 1, 1 << 28, 1 << 40, ^uint64(0)} {
		f.Add(binary.AppendUvarint(nil, v))
	}
	f.Add([]byte{0x80, 0x00}) // overlong zero
	f.Add([]byte{0xff})       // truncated
	f.Fuzz(func(t *testing.T, b []byte) {
		v, rest, ok := uvarint(b)
		want, n := binary.Uvarint(b)
		if ok != (n > 0) || (ok && (v != want || len(rest) != len(b)-n)) {
			t.Fatalf("uvarint(%x) = %d, %d bytes left, %v; binary.Uvarint = %d, %d", b, v, len(rest), ok, want, n)
		}
	})
}

// BenchmarkParseInto measures decoding a command envelope, which every
// replica does for every session command, with a session ID and sequence
// numbers of three bytes each (a long-lived session in a long log): in the
// current format, and in format 1 (uvarints), which is still read.
func BenchmarkParseInto(b *testing.B) {
	payload := make([]byte, 128)
	for _, f := range []struct {
		name string
		cmd  []byte
	}{
		{"fixed", AppendCommand(nil, 1<<20, 1<<20+5, 1<<20, payload)},
		{"varint", append(appendV1(KindCommand, 1<<20, 1<<20+5, 1<<20), payload...)},
	} {
		Stamp(f.cmd, 1)
		b.Run(f.name, func(b *testing.B) {
			var e Envelope
			for b.Loop() {
				if err := ParseInto(&e, f.cmd); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestMaxCommandOverhead: every command envelope adds exactly
// MaxCommandOverhead bytes to its payload, whatever its numbers.
func TestMaxCommandOverhead(t *testing.T) {
	payload := []byte("payload")
	for _, v := range []uint64{1, 1 << 7, 1 << 21, 1 << 35, 1 << 63, ^uint64(0)} {
		if got := len(AppendCommand(nil, ID(v), v, v, payload)) - len(payload); got != MaxCommandOverhead {
			t.Errorf("AppendCommand with numbers %d adds %d bytes; want MaxCommandOverhead, %d", v, got, MaxCommandOverhead)
		}
	}
}

// TestMagicWords holds the constants the hot paths compare with equal to
// Magic, and IsEnvelope to the marker bytes alone.
func TestMagicWords(t *testing.T) {
	if got := binary.BigEndian.Uint32(Magic[:]); got != markerWord || got&^0xff != marker {
		t.Fatalf("Magic reads %#08x; markerWord is %#08x, marker %#08x", got, markerWord, marker)
	}
	for i := range 3 {
		cmd := append([]byte(nil), Magic[:]...)
		cmd[i] ^= 0x20
		if IsEnvelope(cmd) {
			t.Fatalf("IsEnvelope(%q) = true with marker byte %d changed", cmd, i)
		}
	}
	for _, format := range []byte{0, formatVarint, formatFixed, 9} {
		if cmd := []byte{Magic[0], Magic[1], Magic[2], format}; !IsEnvelope(cmd) {
			t.Fatalf("IsEnvelope(%q) = false; want true for any format byte", cmd)
		}
	}
	if IsEnvelope(Magic[:3]) {
		t.Fatal("IsEnvelope of three bytes = true; want false")
	}
}
