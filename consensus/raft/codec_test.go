package raft

import (
	"errors"
	"reflect"
	"testing"

	"github.com/distkit/distkit/transport"
)

func sampleMessages() []Message {
	return []Message{
		{Type: MsgVote, From: "a", To: "b", Term: 7, Index: 12, LogTerm: 6},
		{Type: MsgPreVoteResp, From: "b", To: "a", Term: 8, Reject: true},
		{Type: MsgApp, From: "leader", To: "f", Term: 3, Index: 9, LogTerm: 2, Commit: 8, Entries: []Entry{
			{Term: 3, Index: 10, Type: EntryNoop},
			{Term: 3, Index: 11, Type: EntryNormal, Data: []byte("set x=1")},
		}},
		{Type: MsgAppResp, From: "f", To: "leader", Term: 3, Index: 9, Reject: true, RejectHint: 4, LogTerm: 2},
		{Type: MsgHeartbeat, From: "l", To: "f", Term: 1 << 40, Commit: 1<<63 + 5},
		{Type: MsgSnap, From: "l", To: "f", Term: 4, Snapshot: &SnapshotMeta{Index: 100, Term: 3, Membership: Membership{Voters: []transport.NodeID{"l", "f", "g"}}}, Offset: 4096, Data: []byte{1, 2, 3}, Last: true},
		{Type: MsgSnapResp, From: "f", To: "l", Term: 4, Index: 4099, Snapshot: &SnapshotMeta{Index: 100, Term: 3}},
		{Type: MsgReadIndex, From: "f", To: "l", Term: 4, Context: []byte("ctx")},
		{Type: MsgReadIndexResp, From: "l", To: "f", Term: 4, Index: 77, Context: []byte("ctx")},
		{Type: MsgTimeoutNow, From: "l", To: "f", Term: 4, Index: 77},
		{Type: MsgVote, From: "f", To: "g", Term: 5, Index: 77, LogTerm: 4, Transfer: true},
		{Type: MsgHeartbeat, From: "l", To: "f", Term: 4, Commit: 70, Context: []byte{3}},
		{Type: MsgSnap, From: "l", To: "f", Term: 4, Snapshot: &SnapshotMeta{Index: 100, Term: 3, Membership: Membership{
			Voters: []transport.NodeID{"l", "g"}, Learners: []transport.NodeID{"x"}, OutgoingVoters: []transport.NodeID{"l", "f", "g"}, AutoLeave: true,
		}}, Data: []byte{1}},
		{Type: MsgApp, From: "l", To: "f", Term: 4, Index: 5, LogTerm: 4, Entries: []Entry{
			{Term: 4, Index: 6, Type: EntryConfChange, Data: mustConfEntry(ConfChangeEntry{
				Change:     ConfChange{Changes: []ConfChangeOp{{Type: ConfAddLearner, Node: "x"}}},
				Membership: Membership{Voters: []transport.NodeID{"l", "f", "g"}, Learners: []transport.NodeID{"x"}},
			})},
		}},
	}
}

func mustConfEntry(e ConfChangeEntry) []byte {
	b, err := e.AppendBinary(nil)
	if err != nil {
		panic(err)
	}
	return b
}

func TestMessageRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		t.Run(m.Type.String(), func(t *testing.T) {
			b, err := m.Marshal()
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if len(b) != m.Size() {
				t.Errorf("len(Marshal()) = %d; Size() = %d", len(b), m.Size())
			}
			var got Message
			if err := got.Unmarshal(b); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Errorf("round trip = %+v; want %+v", got, m)
			}
		})
	}
}

func TestUnmarshalRejectsBadInput(t *testing.T) {
	good, _ := (&Message{Type: MsgApp, From: "a", To: "b", Term: 1, Entries: []Entry{{Term: 1, Index: 1, Data: []byte("x")}}}).Marshal()
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"bad version", []byte{9, 1, 0}},
		{"bad type", []byte{wireVersion, 0, 0}},
		{"reserved type", []byte{wireVersion, byte(maxMessageType) + 1, 0}},
		{"bad flags", []byte{wireVersion, byte(MsgApp), 0x80}},
		{"truncated", good[:len(good)-3]},
		{"trailing", append(append([]byte(nil), good...), 0)},
		{"membership flag without snapshot", []byte{wireVersion, byte(MsgApp), flagMembership}},
		{"bad snapshot membership", func() []byte {
			m := Message{Type: MsgSnap, From: "a", To: "b", Term: 2, Snapshot: &SnapshotMeta{Index: 1, Term: 1, Membership: Membership{Voters: []transport.NodeID{"a"}, Learners: []transport.NodeID{"a"}}}}
			b, _ := m.Marshal()
			return b
		}()},
		{"huge entry count", []byte{wireVersion, byte(MsgApp), 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Message
			if err := m.Unmarshal(tt.in); !errors.Is(err, ErrInvalidMessage) {
				t.Errorf("Unmarshal(%x) error = %v; want ErrInvalidMessage", tt.in, err)
			}
		})
	}
}

func TestMarshalRejectsNonConsecutiveEntries(t *testing.T) {
	m := Message{Type: MsgApp, Entries: []Entry{{Index: 1}, {Index: 3}}}
	if _, err := m.Marshal(); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("Marshal error = %v; want ErrInvalidMessage", err)
	}
}

func FuzzMessageUnmarshal(f *testing.F) {
	for _, m := range sampleMessages() {
		b, _ := m.Marshal()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Message
		if err := m.Unmarshal(b); err != nil {
			if !errors.Is(err, ErrInvalidMessage) {
				t.Fatalf("Unmarshal error %v does not wrap ErrInvalidMessage", err)
			}
			return
		}
		// Whatever decodes must re-encode to an equivalent message.
		again, err := m.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a decoded message: %v", err)
		}
		var m2 Message
		if err := m2.Unmarshal(again); err != nil {
			t.Fatalf("Unmarshal of a re-encoded message: %v", err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("re-encoding changed the message:\n%+v\n%+v", m, m2)
		}
	})
}
