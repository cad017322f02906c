package consensus

// A SessionMachine with a codec of its own (found by review of the seventh
// session of issue 13: no test used one that caches nil).

import (
	"io"
	"strings"
	"testing"

	"github.com/distkit/distkit/consensus/session"
)

// tagCodec is a ResultCodec that caches nil and strings in its own format.
type tagCodec struct{}

func (tagCodec) EncodeResult(v any) ([]byte, error) {
	if v == nil {
		return []byte("N"), nil
	}
	return []byte("S" + v.(string)), nil
}

func (tagCodec) DecodeResult(b []byte) (any, error) {
	if string(b) == "N" {
		return nil, nil
	}
	if len(b) > 0 && b[0] == 'S' {
		return string(b[1:]), nil
	}
	return "garbage:" + string(b), nil
}

// nilOrStringSM answers "nil" with nil and anything else with the command.
type nilOrStringSM struct{ applied int }

func (m *nilOrStringSM) Apply(e Entry) any {
	m.applied++
	if string(e.Command) == "nil" {
		return nil
	}
	return strings.ToUpper(string(e.Command))
}
func (*nilOrStringSM) Snapshot(io.Writer) error  { return nil }
func (*nilOrStringSM) Restore(r io.Reader) error { return nil }

// TestSessionMachineCustomCodecDuplicates: with a codec other than BasicResults, a
// duplicate is answered with what the codec decodes, equal to the first
// answer, for a nil result and a string result alike.
func TestSessionMachineCustomCodecDuplicates(t *testing.T) {
	cfg := DefaultSessionConfig()
	cfg.Codec = tagCodec{}
	sm := &nilOrStringSM{}
	m, err := WithSessions(sm, cfg)
	if err != nil {
		t.Fatal(err)
	}
	l := &sessionLog{m: m}
	id := l.apply(session.AppendRegister(nil), 1).(SessionID)
	for seq, payload := range []string{"nil", "abc"} {
		cmd := session.AppendCommand(nil, id, uint64(seq+1), 1, []byte(payload))
		first, dup := l.apply(cmd, 2), l.apply(cmd, 3)
		if first != dup {
			t.Fatalf("%q: first answer %#v, duplicate %#v; want equal", payload, first, dup)
		}
	}
	if sm.applied != 2 {
		t.Fatalf("applied %d; want 2", sm.applied)
	}
}
