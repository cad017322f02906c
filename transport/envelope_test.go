package transport

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		env  envelope
	}{
		{"request", envelope{kind: kindRequest, id: 42, timeout: 1500 * time.Microsecond, service: "kv.get", body: []byte("key")}},
		{"request without deadline", envelope{kind: kindRequest, id: 1<<64 - 1, service: "x", body: []byte{}}},
		{"request with empty service", envelope{kind: kindRequest, id: 0, timeout: time.Hour, service: "", body: []byte{1, 2, 3}}},
		{"response", envelope{kind: kindResponse, id: 7, body: []byte("value")}},
		{"empty response", envelope{kind: kindResponse, id: 8, body: []byte{}}},
		{"error", envelope{kind: kindError, id: 9, code: CodePanic, body: []byte("panic: boom")}},
		{"cancel", envelope{kind: kindCancel, id: 10, body: []byte{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := appendEnvelope(nil, &tt.env)
			if len(buf) > envelopeSize(&tt.env) {
				t.Errorf("encoded %d bytes; envelopeSize promised at most %d", len(buf), envelopeSize(&tt.env))
			}
			got, err := decodeEnvelope(buf)
			if err != nil {
				t.Fatalf("decodeEnvelope(%x) = %v", buf, err)
			}
			if got.kind != tt.env.kind || got.id != tt.env.id || got.timeout != tt.env.timeout ||
				got.service != tt.env.service || got.code != tt.env.code || !bytes.Equal(got.body, tt.env.body) {
				t.Errorf("decodeEnvelope(appendEnvelope(%+v)) = %+v", tt.env, got)
			}
		})
	}
}

func TestEnvelopeTimeoutRoundsUp(t *testing.T) {
	env := envelope{kind: kindRequest, id: 1, timeout: time.Nanosecond, service: "s"}
	got, err := decodeEnvelope(appendEnvelope(nil, &env))
	if err != nil || got.timeout != time.Microsecond {
		t.Errorf("a 1ns budget decodes as %v, %v; want 1µs, nil (never 'no deadline')", got.timeout, err)
	}
}

func TestDecodeEnvelopeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"one byte", []byte{envelopeVersion}},
		{"wrong version", []byte{9, byte(kindResponse), 1}},
		{"unknown kind", []byte{envelopeVersion, 99, 1}},
		{"missing id", []byte{envelopeVersion, byte(kindResponse)}},
		{"overlong id", append([]byte{envelopeVersion, byte(kindResponse)}, bytes.Repeat([]byte{0xff}, 11)...)},
		{"request without timeout", []byte{envelopeVersion, byte(kindRequest), 1}},
		{"request without service length", []byte{envelopeVersion, byte(kindRequest), 1, 0}},
		{"service longer than the envelope", []byte{envelopeVersion, byte(kindRequest), 1, 0, 5, 'a'}},
		{"service longer than the limit", append([]byte{envelopeVersion, byte(kindRequest), 1, 0, 0x80, 0x02}, make([]byte, 300)...)},
		{"huge service length", []byte{envelopeVersion, byte(kindRequest), 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"error without code", []byte{envelopeVersion, byte(kindError), 1}},
		{"cancel with trailing bytes", []byte{envelopeVersion, byte(kindCancel), 1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := decodeEnvelope(tt.in); !errors.Is(err, errBadEnvelope) {
				t.Errorf("decodeEnvelope(%x) = %+v, %v; want errBadEnvelope", tt.in, got, err)
			}
		})
	}
}

// FuzzDecodeEnvelope checks that the decoder never panics and that whatever
// it accepts re-encodes to an envelope that decodes the same way.
func FuzzDecodeEnvelope(f *testing.F) {
	for _, e := range []envelope{
		{kind: kindRequest, id: 42, timeout: time.Second, service: "kv.get", body: []byte("key")},
		{kind: kindResponse, id: 7, body: []byte("value")},
		{kind: kindError, id: 9, code: CodeHandler, body: []byte("nope")},
		{kind: kindCancel, id: 10},
	} {
		f.Add(appendEnvelope(nil, &e))
	}
	f.Add([]byte{envelopeVersion, byte(kindRequest), 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		first, err := decodeEnvelope(in)
		if err != nil {
			return
		}
		again, err := decodeEnvelope(appendEnvelope(nil, &first))
		if err != nil {
			t.Fatalf("re-encoding of %+v does not decode: %v", first, err)
		}
		if again.kind != first.kind || again.id != first.id || again.timeout != first.timeout ||
			again.service != first.service || again.code != first.code || !bytes.Equal(again.body, first.body) {
			t.Fatalf("decode(encode(%+v)) = %+v", first, again)
		}
	})
}
