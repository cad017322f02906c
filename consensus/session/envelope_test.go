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

func TestParseRefusesMalformed(t *testing.T) {
	cmd := AppendCommand(nil, 7, 3, 2, nil)
	tests := []struct {
		name string
		b    []byte
	}{
		{"plain", []byte("put x 1")},
		{"magic only", Magic[:]},
		{"short header", cmd[:headerLen-1]},
		{"unknown kind", append(append(Magic[:], 9), make([]byte, 8)...)},
		{"truncated command", cmd[:headerLen+1]},
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
// numbers of three bytes each (a long-lived session in a long log).
func BenchmarkParseInto(b *testing.B) {
	cmd := AppendCommand(nil, 1<<20, 1<<20+5, 1<<20, make([]byte, 128))
	Stamp(cmd, 1)
	var e Envelope
	for b.Loop() {
		if err := ParseInto(&e, cmd); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMaxCommandOverhead: no command envelope adds more than
// MaxCommandOverhead bytes to its payload, and the largest adds exactly
// that.
func TestMaxCommandOverhead(t *testing.T) {
	payload := []byte("payload")
	for _, v := range []uint64{1, 1 << 7, 1 << 21, 1 << 35, 1 << 63, ^uint64(0)} {
		if got := len(AppendCommand(nil, ID(v), v, v, payload)) - len(payload); got > MaxCommandOverhead {
			t.Errorf("AppendCommand with numbers %d adds %d bytes; MaxCommandOverhead is %d", v, got, MaxCommandOverhead)
		}
	}
	max := ^uint64(0)
	if got := len(AppendCommand(nil, ID(max), max, max, payload)) - len(payload); got != MaxCommandOverhead {
		t.Errorf("the largest numbers add %d bytes; want MaxCommandOverhead, %d", got, MaxCommandOverhead)
	}
}
