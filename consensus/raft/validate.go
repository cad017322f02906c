package raft

import (
	"fmt"
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
	case m.From == "":
		return fmt.Errorf("%w: %v without sender", ErrInvalidMessage, m.Type)
	case m.From == r.id:
		return fmt.Errorf("%w: %v from this node itself", ErrInvalidMessage, m.Type)
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
	case m.Transfer && m.Type != MsgVote:
		return fmt.Errorf("%w: %v marked as a transfer campaign", ErrInvalidMessage, m.Type)
	}
	// Messages from nodes outside this node's configuration are accepted:
	// this node's view may lag (a node that joins learns the configuration
	// from the leader's messages; a learner hears from a leader it has no
	// entry for yet). That is safe: a leader only counts members' answers,
	// a candidate only members' votes, and a removed node cannot disrupt
	// (it stops campaigning once it has its removal; before that its log
	// lacks the entry, and pre-vote and the check-quorum lease turn it
	// down). Keeping other clusters out is the runtime's job (cluster IDs).
	if m.Type == MsgSnap {
		if err := m.Snapshot.Membership.Validate(); err != nil {
			return fmt.Errorf("%w: MsgSnap: %w", ErrInvalidMessage, err)
		}
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
		if e.Type == EntryConfChange {
			// The configuration takes effect on append: refuse one that
			// could not be applied rather than log a broken membership.
			var ce ConfChangeEntry
			if err := ce.UnmarshalBinary(e.Data); err != nil {
				return fmt.Errorf("%w: MsgApp entry %d: %w", ErrInvalidMessage, e.Index, err)
			}
		}
		prevTerm = e.Term
	}
	return nil
}
