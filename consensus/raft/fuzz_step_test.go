package raft

import (
	"encoding/binary"
	"testing"

	"github.com/distkit/distkit/transport"
)

// FuzzStep feeds a node arbitrary (decodable) messages, as a hostile or
// buggy peer could, interleaved with ticks and proposals, and runs the
// caller's duties after each. The node must never panic: bad input is an
// error or is ignored.
func FuzzStep(f *testing.F) {
	for _, m := range sampleMessages() {
		m.To = "a"
		if m.From == "" || m.From == "a" {
			m.From = "b"
		}
		b, _ := m.Marshal()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		st := NewMemoryStorage()
		cfg := DefaultConfig()
		cfg.ID, cfg.Peers, cfg.Storage = "a", []transport.NodeID{"a", "b", "c"}, st
		cfg.MaxMsgBytes = 64
		rn, err := NewRawNode(cfg)
		if err != nil {
			t.Fatal(err)
		}
		peers := []transport.NodeID{"b", "c"}
		// Long inputs add little and make minimization slow.
		input = input[:min(len(input), 256)]
		for len(input) > 0 {
			// Each record: a control byte, a length, then a message.
			ctl := input[0]
			input = input[1:]
			n, k := binary.Uvarint(input)
			if k <= 0 || n > uint64(len(input)-k) {
				n, k = uint64(len(input)), 0
			}
			payload := input[k : k+int(n)]
			input = input[k+int(n):]
			switch ctl % 8 {
			case 0:
				rn.Tick()
			case 1:
				_, _, _ = rn.Propose(payload)
			case 2:
				_ = rn.ReadIndex(payload)
			case 3:
				var ce ConfChangeEntry
				if ce.UnmarshalBinary(payload) == nil {
					_, _, _ = rn.ProposeConfChange(ce.Change)
				} else {
					_ = rn.TransferLeadership(transport.NodeID(payload))
				}
			default:
				var m Message
				if m.Unmarshal(payload) != nil {
					continue
				}
				// Aim most messages at the node from a member, so that they
				// get past validation and exercise the protocol.
				if ctl&8 != 0 {
					m.To, m.From = "a", peers[int(ctl>>4)%2]
				}
				_ = rn.Step(m)
			}
			for rounds := 0; rn.HasReady(); rounds++ {
				if rounds > 1000 {
					t.Fatalf("HasReady stays true: %+v", rn.Status())
				}
				rd, err := rn.Ready()
				if err != nil {
					t.Fatalf("Ready: %v", err)
				}
				if rd.Snapshot != nil {
					_ = st.ApplySnapshot(*rd.Snapshot)
				}
				if err := st.Append(rd.Entries); err != nil {
					t.Fatalf("Append(Ready.Entries): %v", err)
				}
				if !rd.HardState.IsZero() {
					_ = st.SetHardState(rd.HardState)
				}
				for i := range rd.Messages {
					if _, err := rd.Messages[i].Marshal(); err != nil {
						t.Fatalf("the core produced an unencodable message %+v: %v", rd.Messages[i], err)
					}
				}
				rn.Advance(rd)
			}
			_ = rn.Status()
		}
	})
}
