package election

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func TestWireRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		msg  message
	}{
		{"heartbeat", message{kind: kindHeartbeat, view: Leader{ID: "n3", Epoch: 7}, inner: []byte{1, 2, 3}}},
		{"heartbeat no view", message{kind: kindHeartbeat, inner: []byte{}}},
		{"election", message{kind: kindElection, view: Leader{ID: "n1", Epoch: 1}}},
		{"ok", message{kind: kindOK, view: Leader{Epoch: 1 << 60}}},
		{"coordinator", message{kind: kindCoordinator, view: Leader{ID: "n5", Epoch: 2}}},
		{"ring election", message{kind: kindRingElection, view: Leader{ID: "a", Epoch: 3}, round: 4, candidate: "zz"}},
		{"ring elected", message{kind: kindRingElected, view: Leader{ID: "zz", Epoch: 4}}},
		{"restored view", message{kind: kindHeartbeat, view: Leader{Epoch: 9}, unknown: true, inner: []byte{4}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.msg.encode()
			got, err := decode(b)
			if err != nil {
				t.Fatalf("decode(encode(%+v)) error %v", tt.msg, err)
			}
			if !equalMsg(got, tt.msg) {
				t.Errorf("decode(encode(%+v)) = %+v", tt.msg, got)
			}
		})
	}
}

func TestWireRejects(t *testing.T) {
	long := append([]byte{byte(kindElection), 0, 0x80, 0x02}, bytes.Repeat([]byte{'x'}, 256)...)
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"kind zero", []byte{0, 0, 0}},
		{"unknown kind", []byte{byte(kindLimit), 0, 0}},
		{"truncated epoch", []byte{byte(kindOK), 0x80}},
		{"missing id", []byte{byte(kindOK), 1}},
		{"id past end", []byte{byte(kindOK), 1, 5, 'a'}},
		{"id too long", long},
		{"trailing bytes", []byte{byte(kindOK), 1, 0, 9}},
		{"ring without candidate", []byte{byte(kindRingElection), 1, 0, 2}},
		{"unknown view naming a leader", []byte{byte(kindOK) | flagUnknown, 1, 1, 'a'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodeNoPanic(tt.b); !errors.Is(err, ErrMalformed) {
				t.Errorf("decode(%x) error = %v; want ErrMalformed", tt.b, err)
			}
		})
	}
}

// decodeNoPanic calls decode(b), turning a panic into an error that wraps
// no sentinel, so that a decoder that panics on bad input fails the test
// by an assertion.
func decodeNoPanic(b []byte) (m message, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("decode panicked: %v", p)
		}
	}()
	return decode(b)
}

func equalMsg(a, b message) bool {
	return a.kind == b.kind && a.view == b.view && a.unknown == b.unknown && a.round == b.round && a.candidate == b.candidate && bytes.Equal(a.inner, b.inner)
}

// FuzzDecode: decode never panics, and whatever it accepts re-encodes to
// a message that decodes to the same thing.
func FuzzDecode(f *testing.F) {
	for _, m := range []message{
		{kind: kindHeartbeat, view: Leader{ID: "n3", Epoch: 7}, inner: []byte{1, 2, 3}},
		{kind: kindCoordinator, view: Leader{ID: "n5", Epoch: 2}},
		{kind: kindRingElection, view: Leader{ID: "a", Epoch: 3}, round: 4, candidate: "zz"},
	} {
		f.Add(m.encode())
	}
	f.Add([]byte{})
	f.Add([]byte{byte(kindOK), 0x80, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("decode error %v does not wrap ErrMalformed", err)
			}
			return
		}
		again, err := decode(m.encode())
		if err != nil || !equalMsg(again, m) {
			t.Fatalf("re-decode of %+v = %+v, %v", m, again, err)
		}
	})
}

func TestDescribeMessage(t *testing.T) {
	tests := []struct {
		msg  message
		want string
	}{
		{message{kind: kindHeartbeat, inner: []byte{1}}, "HEARTBEAT"},
		{message{kind: kindElection}, "ELECTION"},
		{message{kind: kindOK}, "OK"},
		{message{kind: kindCoordinator, view: Leader{ID: "n5", Epoch: 3}}, "COORDINATOR n5@3"},
		{message{kind: kindCoordinator, view: Leader{Epoch: 3}}, "COORDINATOR none@3"},
		{message{kind: kindRingElection, round: 4, candidate: "n3"}, "RING-ELECTION round 4 best n3"},
		{message{kind: kindRingElected, view: Leader{ID: "n3", Epoch: 4}}, "RING-ELECTED n3@4"},
	}
	for _, tt := range tests {
		if got := DescribeMessage(tt.msg.encode()); got != tt.want {
			t.Errorf("DescribeMessage(%v) = %q; want %q", tt.msg.kind, got, tt.want)
		}
	}
	if got := DescribeMessage([]byte{0xff}); got != "malformed" {
		t.Errorf("DescribeMessage(garbage) = %q; want \"malformed\"", got)
	}
}
