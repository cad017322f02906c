package lock

import (
	"errors"
	"reflect"
	"testing"
)

func TestResponseRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		resp Response
		err  error
		want error
	}{
		{"granted", Response{Granted: true, Grant: Grant{Name: "x", Session: 3, Owner: "n1", Token: 9}}, nil, nil},
		{"keepalive with held grants", Response{Held: []Grant{{Name: "a", Token: 1}, {Name: "b", Token: 4}}}, nil, nil},
		{"locked", Response{}, ErrLocked, ErrLocked},
		{"not holder", Response{}, ErrNotHolder, ErrNotHolder},
		{"no session", Response{}, ErrNoSession, ErrNoSession},
		{"invalid", Response{}, ErrInvalidArgument, ErrInvalidArgument},
	}
	for _, tt := range tests {
		got, err := decodeResponse(appendResponse(nil, tt.resp, tt.err))
		if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Errorf("%s: decode error = %v; want %v", tt.name, err, tt.want)
		}
		if tt.want == nil && !reflect.DeepEqual(got, tt.resp) {
			t.Errorf("%s: decoded %+v; want %+v", tt.name, got, tt.resp)
		}
	}
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add(appendResponse(nil, Response{Granted: true, Grant: Grant{Name: "x", Session: 3, Owner: "n1", Token: 9}}, nil))
	f.Add(appendResponse(nil, Response{}, ErrLocked))
	f.Add(notLeaderResponse("s2"))
	f.Fuzz(func(t *testing.T, b []byte) {
		resp, err := decodeResponse(b)
		if err != nil {
			return
		}
		again, err := decodeResponse(appendResponse(nil, resp, nil))
		if err != nil || !reflect.DeepEqual(again, resp) {
			t.Fatalf("round trip of %+v = %+v, %v", resp, again, err)
		}
	})
}

func FuzzDecodeCommand(f *testing.F) {
	f.Add(encodeCommand(t0Internal, Request{Op: opTick}))
	f.Add(encodeCommand(t0Internal, Request{Op: OpAcquire, Session: 1, Name: "x"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		sm, _ := NewStateMachine(DefaultTableConfig())
		// Apply must never panic on a bad command: it returns an error result.
		sm.Apply(consensusEntry(b))
	})
}

// TestDecodeResponseRejectsMalformed: a client decodes answers from the
// network, so a malformed one fails with ErrCorrupt (never a panic, never
// a made-up outcome).
func TestDecodeResponseRejectsMalformed(t *testing.T) {
	granted := appendResponse(nil, Response{Granted: true, Grant: Grant{Name: "x", Session: 3, Owner: "n1", Token: 9}}, nil)
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"an unknown code", []byte{codeOther + 1, 0}},
		{"a granted flag of 2", []byte{codeOK, 2, 0}},
		{"no granted flag", []byte{codeOK}},
		{"a truncated grant", granted[:len(granted)-2]},
		{"a trailing byte", append(granted[:len(granted):len(granted)], 0)},
		{"more held grants than bytes", []byte{codeOK, 0, 9, 1, 'a', 1}},
		{"a truncated error text", []byte{codeLocked, 5, 'a'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := decodeResponseNoPanic(tt.b)
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("decodeResponse(%x) = %+v, %v; want ErrCorrupt", tt.b, resp, err)
			}
		})
	}
}

func decodeResponseNoPanic(b []byte) (resp Response, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New("decodeResponse panicked")
		}
	}()
	return decodeResponse(b)
}
