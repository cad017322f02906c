package raft

import (
	"fmt"
	"slices"
)

// maxPlausible bounds terms and indexes in messages. Real values never get
// near it (a billion entries a second for a century is about 2^62), and
// arithmetic on index+1 or term+1 must not overflow.
const maxPlausible = 1 << 62

// validate rejects messages the core cannot interpret safely.
func (r *raft) validate(m *Message) error {
	if m.Term > maxPlausible || m.LogTerm > maxPlausible || m.Index > maxPlausible ||
		m.Commit > maxPlausible || m.RejectHint > maxPlausible ||
		(m.Snapshot != nil && (m.Snapshot.Index > maxPlausible || m.Snapshot.Term > maxPlausible)) ||
		m.Index+uint64(len(m.Entries)) > maxPlausible {
		return fmt.Errorf("%w: %v with an implausible term or index", ErrInvalidMessage, m.Type)
	}
	switch {
	case m.Type == 0 || m.Type > maxMessageType:
		return fmt.Errorf("%w: type %d", ErrInvalidMessage, m.Type)
	case m.Type == MsgTimeoutNow || m.Type == MsgReadIndex || m.Type == MsgReadIndexResp:
		return fmt.Errorf("%w: %v", ErrUnsupported, m.Type)
	case m.From == "":
		return fmt.Errorf("%w: %v without sender", ErrInvalidMessage, m.Type)
	case m.From == r.id:
		return fmt.Errorf("%w: %v from this node itself", ErrInvalidMessage, m.Type)
	case !slices.Contains(r.voters, m.From):
		// Membership is static in this release: a stranger (another
		// cluster, a misconfigured node) must not vote or lead here.
		return fmt.Errorf("%w: %v from %q, which is not a member %v", ErrInvalidMessage, m.Type, m.From, r.voters)
	case m.To != r.id:
		return fmt.Errorf("%w: %v addressed to %q, this node is %q", ErrInvalidMessage, m.Type, m.To, r.id)
	case m.Term == 0 && !(m.Reject && (m.Type == MsgVoteResp || m.Type == MsgPreVoteResp)):
		// Term 0 precedes every election; only a brand-new node refusing
		// a vote can speak from it.
		return fmt.Errorf("%w: %v with term 0", ErrInvalidMessage, m.Type)
	case m.Type == MsgSnap && m.Snapshot == nil:
		return fmt.Errorf("%w: MsgSnap without snapshot metadata", ErrInvalidMessage)
	case m.Type == MsgSnap && (m.Snapshot.Index == 0 || m.Snapshot.Term == 0 || m.Snapshot.Term > m.Term):
		return fmt.Errorf("%w: MsgSnap with snapshot at index %d term %d (message term %d)", ErrInvalidMessage, m.Snapshot.Index, m.Snapshot.Term, m.Term)
	case m.Type == MsgSnapResp && m.Snapshot == nil:
		return fmt.Errorf("%w: MsgSnapResp without snapshot metadata", ErrInvalidMessage)
	}
	if len(m.Entries) > 0 && m.Type != MsgApp {
		return fmt.Errorf("%w: %v with entries", ErrInvalidMessage, m.Type)
	}
	prevTerm := m.LogTerm
	for i := range m.Entries {
		e := &m.Entries[i]
		if e.Index != m.Index+1+uint64(i) {
			return fmt.Errorf("%w: MsgApp entry %d has index %d; want %d", ErrInvalidMessage, i, e.Index, m.Index+1+uint64(i))
		}
		// Terms never decrease along a log and never exceed the leader's.
		if e.Term < prevTerm || e.Term > m.Term || e.Type > maxEntryType {
			return fmt.Errorf("%w: MsgApp entry %d has term %d type %d (previous term %d, message term %d)", ErrInvalidMessage, e.Index, e.Term, e.Type, prevTerm, m.Term)
		}
		prevTerm = e.Term
	}
	return nil
}
