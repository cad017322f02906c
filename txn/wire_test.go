package txn_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/google/uuid"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/txn"
)

var someID = uuid.MustParse("6ba7b810-9dad-41d1-80b4-00c04fd430c8")

func TestMessageRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		msg  txn.Message
	}{
		{"prepare", txn.Message{Type: txn.MsgPrepare, Txn: someID, Coordinator: "c", Participants: []transport.NodeID{"p1", "p2"}, Ops: []byte{1, 2, 3}}},
		{"vote yes", txn.Message{Type: txn.MsgVote, Txn: someID, Outcome: txn.Committed}},
		{"vote no", txn.Message{Type: txn.MsgVote, Txn: someID, Outcome: txn.Aborted, Reason: "insufficient funds"}},
		{"decision", txn.Message{Type: txn.MsgDecision, Txn: someID, Outcome: txn.Aborted}},
		{"ack", txn.Message{Type: txn.MsgAck, Txn: someID}},
		{"query", txn.Message{Type: txn.MsgQuery, Txn: someID}},
		{"replicated prepare", txn.Message{Type: txn.MsgPrepare, Txn: someID, Coordinator: "r1", Participants: []transport.NodeID{"p1"}, Replicas: []transport.NodeID{"r1", "r2", "r3"}}},
		{"leader hint", txn.Message{Type: txn.MsgDecision, Txn: someID, Outcome: txn.Unknown, Coordinator: "r2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.msg.MarshalBinary()
			if err != nil {
				t.Fatalf("MarshalBinary() = %v", err)
			}
			got, err := txn.UnmarshalMessage(b)
			if err != nil {
				t.Fatalf("UnmarshalMessage() = %v", err)
			}
			if !reflect.DeepEqual(got, tt.msg) {
				t.Fatalf("round trip = %+v; want %+v", got, tt.msg)
			}
		})
	}
}

func TestMessageMarshalRejects(t *testing.T) {
	tests := []struct {
		name string
		msg  txn.Message
	}{
		{"no type", txn.Message{Txn: someID}},
		{"unknown type", txn.Message{Type: 99}},
		{"bad outcome", txn.Message{Type: txn.MsgVote, Outcome: 7}},
		{"empty participant", txn.Message{Type: txn.MsgPrepare, Participants: []transport.NodeID{""}}},
		{"long coordinator", txn.Message{Type: txn.MsgPrepare, Coordinator: transport.NodeID(bytes.Repeat([]byte("c"), 300))}},
		{"empty replica", txn.Message{Type: txn.MsgPrepare, Replicas: []transport.NodeID{"r1", ""}}},
		{"too many replicas", txn.Message{Type: txn.MsgPrepare, Replicas: make([]transport.NodeID, txn.MaxReplicas+1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.msg.MarshalBinary(); !errors.Is(err, txn.ErrInvalid) {
				t.Fatalf("MarshalBinary() = %v; want ErrInvalid", err)
			}
		})
	}
}

func TestUnmarshalRejects(t *testing.T) {
	good, _ := txn.Message{Type: txn.MsgAck, Txn: someID}.MarshalBinary()
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"bad version", append([]byte{9}, good[1:]...)},
		{"bad type", append([]byte{1, 0}, good[2:]...)},
		{"truncated", good[:10]},
		{"trailing", append(append([]byte(nil), good...), 0)},
		{"huge length", append(append([]byte(nil), good[:19]...), 0xff, 0xff, 0xff, 0xff, 0x0f)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := txn.UnmarshalMessage(tt.b); !errors.Is(err, txn.ErrMalformed) {
				t.Fatalf("UnmarshalMessage(%x) = %v; want ErrMalformed", tt.b, err)
			}
		})
	}
}

func TestFramedTornTail(t *testing.T) {
	recs := []txn.Record{
		{Type: txn.RecCommit, Txn: someID, Participants: []transport.NodeID{"a", "b"}},
		{Type: txn.RecPrepared, Txn: someID, Coordinator: "c", Participants: []transport.NodeID{"a"}, Data: []byte("intent")},
		{Type: txn.RecDone, Txn: someID, Outcome: txn.Committed},
	}
	b, err := txn.AppendFramed(nil, recs...)
	if err != nil {
		t.Fatal(err)
	}
	for cut := 0; cut <= len(b); cut++ {
		got, rest, err := txn.DecodeFramed(b[:cut])
		if err != nil {
			t.Fatalf("DecodeFramed(cut %d) = %v", cut, err)
		}
		if len(got) > 0 && !reflect.DeepEqual(got, recs[:len(got)]) {
			t.Fatalf("DecodeFramed(cut %d) = %+v; want a prefix of %+v", cut, got, recs)
		}
		if cut == len(b) && (len(got) != len(recs) || len(rest) != 0) {
			t.Fatalf("DecodeFramed(all) = %d records, %d rest; want %d, 0", len(got), len(rest), len(recs))
		}
	}
	flipped := append([]byte(nil), b...)
	flipped[len(flipped)-1] ^= 1
	if got, rest, _ := txn.DecodeFramed(flipped); len(got) != 2 || len(rest) == 0 {
		t.Fatalf("DecodeFramed(bit flip in last record) = %d records; want 2 and a rest", len(got))
	}
}

func FuzzUnmarshalMessage(f *testing.F) {
	for _, m := range []txn.Message{
		{Type: txn.MsgPrepare, Txn: someID, Coordinator: "c", Participants: []transport.NodeID{"p1", "p2"}, Ops: []byte{1}},
		{Type: txn.MsgVote, Txn: someID, Outcome: txn.Aborted, Reason: "no"},
		{Type: txn.MsgPrepare, Txn: someID, Coordinator: "r1", Participants: []transport.NodeID{"p1"}, Replicas: []transport.NodeID{"r1", "r2"}},
	} {
		b, _ := m.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := txn.UnmarshalMessage(b)
		if err != nil {
			return
		}
		again, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary of a decoded message = %v", err)
		}
		m2, err := txn.UnmarshalMessage(again)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("re-decode = %+v, %v; want %+v", m2, err, m)
		}
	})
}

func FuzzDecodeFramed(f *testing.F) {
	b, _ := txn.AppendFramed(nil, txn.Record{Type: txn.RecPrepared, Txn: someID, Coordinator: "c", Data: []byte("x")},
		txn.Record{Type: txn.RecDone, Txn: someID, Outcome: txn.Aborted})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, rest, err := txn.DecodeFramed(b)
		if err != nil {
			return
		}
		if len(rest) > len(b) {
			t.Fatalf("rest of %d bytes from %d", len(rest), len(b))
		}
		again, err := txn.AppendFramed(nil, recs...)
		if err != nil {
			t.Fatalf("AppendFramed of decoded records = %v", err)
		}
		recs2, rest2, err := txn.DecodeFramed(again)
		if err != nil || len(rest2) != 0 || len(recs2) != len(recs) {
			t.Fatalf("re-decode = %d records, %d rest, %v; want %d, 0, nil", len(recs2), len(rest2), err, len(recs))
		}
		for i := range recs {
			if recs[i].String() != recs2[i].String() || !bytes.Equal(recs[i].Data, recs2[i].Data) {
				t.Fatalf("record %d: %v, then %v", i, recs[i], recs2[i])
			}
		}
	})
}

func FuzzDecodeOps(f *testing.F) {
	b, _ := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: "a", Amount: -100}, txn.Op{Kind: txn.OpPut, Key: "b", Amount: 5})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		ops, err := txn.DecodeOps(b)
		if err != nil {
			return
		}
		again, err := txn.EncodeOps(ops...)
		if err != nil {
			t.Fatalf("EncodeOps of decoded ops = %v", err)
		}
		if _, err := txn.DecodeOps(again); err != nil {
			t.Fatalf("re-decode = %v", err)
		}
	})
}

func TestRecordRoundTripReplicated(t *testing.T) {
	for _, r := range []txn.Record{
		{Type: txn.RecPrepared, Txn: someID, Coordinator: "r1", Participants: []transport.NodeID{"p1", "p2"}, Replicas: []transport.NodeID{"r1", "r2", "r3"}, Data: []byte("intent")},
		{Type: txn.RecAbort, Txn: someID},
	} {
		b, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary(%v) = %v", r, err)
		}
		got, err := txn.UnmarshalRecord(b)
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip = %+v, %v; want %+v", got, err, r)
		}
	}
}
