package raft

import (
	"slices"
	"testing"

	"github.com/distkit/distkit/transport"
)

// Follower-side rules of AppendEntries and InstallSnapshot at their edges:
// stale and duplicated messages, snapshots that are older than what the
// follower holds, and pre-votes that must leave no trace.

// newFollower returns node s1 of a three-node cluster (s1, s2, s3) in term
// `term`, whose log holds entries with the given terms at indexes 1, 2, ...
// and whose commit index is commit. s2 is its leader.
func newFollower(t *testing.T, term uint64, logTerms []uint64, commit uint64) (*RawNode, *MemoryStorage) {
	t.Helper()
	s := NewMemoryStorage()
	if err := s.Append(logOf(logTerms...)); err != nil {
		t.Fatal(err)
	}
	_ = s.SetHardState(HardState{Term: term, Commit: commit})
	cfg := DefaultConfig()
	cfg.ID, cfg.Peers, cfg.Storage = "s1", []transport.NodeID{"s1", "s2", "s3"}, s
	rn, err := NewRawNode(cfg)
	if err != nil {
		t.Fatalf("NewRawNode: %v", err)
	}
	return rn, s
}

// drain hands rn's Ready to a MemoryStorage the way a caller would and
// returns it, with a copy of its Messages (Advance recycles the array).
func drain(t *testing.T, rn *RawNode, s *MemoryStorage) Ready {
	t.Helper()
	rd, err := rn.Ready()
	if err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if rd.Snapshot != nil {
		if err := s.ApplySnapshot(*rd.Snapshot); err != nil {
			t.Fatalf("ApplySnapshot: %v", err)
		}
	}
	if err := s.Append(rd.Entries); err != nil {
		t.Fatalf("Append: %v", err)
	}
	if !rd.HardState.IsZero() {
		_ = s.SetHardState(rd.HardState)
	}
	msgs := slices.Clone(rd.Messages)
	rn.Advance(rd)
	rd.Messages = msgs
	return rd
}

// termsOf returns the terms of rn's log, from its first index.
func termsOf(rn *RawNode) []uint64 {
	l := rn.r.log
	var terms []uint64
	for i := l.firstIndex(); i <= l.lastIndex(); i++ {
		terms = append(terms, l.termOr0(i))
	}
	return terms
}

// §5.3: "If an existing entry conflicts with a new one (same index but
// different terms), delete the existing entry and all that follow it" —
// and only then. A late or duplicated AppendEntries whose entries the
// follower already holds must not cut off the entries after them, which the
// follower may already have acknowledged (the leader counted them towards
// a commit).
func TestAppendTruncatesOnlyOnConflict(t *testing.T) {
	tests := []struct {
		name     string
		prev     uint64   // MsgApp Index
		prevTerm uint64   // MsgApp LogTerm
		ents     []uint64 // terms of the entries from prev+1
		commit   uint64   // MsgApp Commit
		// Follower: log [1 1 2 2 2], commit 2, term 2.
		wantLog    []uint64
		wantReject bool
		wantIndex  uint64 // Index of the MsgAppResp
		wantCommit uint64
	}{
		{"duplicate of a prefix", 2, 1, []uint64{2, 2}, 2, []uint64{1, 1, 2, 2, 2}, false, 4, 2},
		{"duplicate below the commit index", 0, 0, []uint64{1, 1}, 2, []uint64{1, 1, 2, 2, 2}, false, 2, 2},
		{"straddling the commit index", 1, 1, []uint64{1, 2, 2}, 3, []uint64{1, 1, 2, 2, 2}, false, 4, 3},
		{"empty probe at a match", 3, 2, nil, 5, []uint64{1, 1, 2, 2, 2}, false, 3, 3},
		{"commit only up to the last new entry", 4, 2, nil, 5, []uint64{1, 1, 2, 2, 2}, false, 4, 4},
		{"extends the log", 5, 2, []uint64{2}, 6, []uint64{1, 1, 2, 2, 2, 2}, false, 6, 6},
		{"conflict truncates the suffix", 3, 2, []uint64{3}, 2, []uint64{1, 1, 2, 3}, false, 4, 2},
		{"mismatch at prev rejects", 4, 3, []uint64{3}, 5, []uint64{1, 1, 2, 2, 2}, true, 4, 2},
		{"gap rejects", 7, 2, []uint64{2}, 8, []uint64{1, 1, 2, 2, 2}, true, 7, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rn, s := newFollower(t, 3, []uint64{1, 1, 2, 2, 2}, 2)
			ents := make([]Entry, len(tt.ents))
			for i, term := range tt.ents {
				ents[i] = Entry{Index: tt.prev + 1 + uint64(i), Term: term}
			}
			m := Message{Type: MsgApp, From: "s2", To: "s1", Term: 3, Index: tt.prev, LogTerm: tt.prevTerm, Entries: ents, Commit: tt.commit}
			if err := rn.Step(m); err != nil {
				t.Fatalf("Step: %v", err)
			}
			rd := drain(t, rn, s)
			if len(rd.Messages) != 1 || rd.Messages[0].Type != MsgAppResp {
				t.Fatalf("messages = %+v; want one MsgAppResp", rd.Messages)
			}
			resp := rd.Messages[0]
			if resp.Reject != tt.wantReject || resp.Index != tt.wantIndex {
				t.Errorf("response reject = %v, index = %d; want %v, %d", resp.Reject, resp.Index, tt.wantReject, tt.wantIndex)
			}
			if got := termsOf(rn); !slices.Equal(got, tt.wantLog) {
				t.Errorf("log terms = %v; want %v", got, tt.wantLog)
			}
			if got := rn.Status().Commit; got != tt.wantCommit {
				t.Errorf("commit = %d; want %d", got, tt.wantCommit)
			}
		})
	}
}

// §7: a follower ignores a snapshot it already has all of (its index is at
// or below the commit index), and a snapshot whose last entry the follower
// holds with the same term only advances the commit index: "If existing
// log entry has same index and term as snapshot's last included entry,
// retain log entries following it and reply". Only a snapshot that
// conflicts with (or reaches beyond) the log replaces it.
func TestInstallSnapshotEdges(t *testing.T) {
	tests := []struct {
		name        string
		index, term uint64
		wantRestore bool
		wantLog     []uint64 // terms from the first index after the Ready
		wantCommit  uint64
		wantIndex   uint64 // Index of the MsgAppResp
	}{
		{"older than the commit index", 2, 1, false, []uint64{1, 1, 2, 2, 2}, 3, 3},
		{"at the commit index", 3, 2, false, []uint64{1, 1, 2, 2, 2}, 3, 3},
		{"matches a log entry past the commit", 4, 2, false, []uint64{1, 1, 2, 2, 2}, 4, 4},
		{"conflicts with the log", 4, 3, true, nil, 4, 4},
		{"beyond the log", 9, 3, true, nil, 9, 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rn, s := newFollower(t, 3, []uint64{1, 1, 2, 2, 2}, 3)
			meta := SnapshotMeta{Index: tt.index, Term: tt.term, Membership: Membership{Voters: []transport.NodeID{"s1", "s2", "s3"}}}
			m := Message{Type: MsgSnap, From: "s2", To: "s1", Term: 3, Snapshot: &meta, Data: []byte("state"), Last: true}
			if err := rn.Step(m); err != nil {
				t.Fatalf("Step: %v", err)
			}
			rd := drain(t, rn, s)
			if got := rd.Snapshot != nil; got != tt.wantRestore {
				t.Errorf("Ready.Snapshot present = %v; want %v", got, tt.wantRestore)
			}
			if len(rd.Messages) != 1 || rd.Messages[0].Type != MsgAppResp || rd.Messages[0].Index != tt.wantIndex {
				t.Errorf("messages = %+v; want one MsgAppResp with index %d", rd.Messages, tt.wantIndex)
			}
			if got := termsOf(rn); !slices.Equal(got, tt.wantLog) {
				t.Errorf("log terms = %v; want %v", got, tt.wantLog)
			}
			if st := rn.Status(); st.Commit != tt.wantCommit {
				t.Errorf("commit = %d; want %d", st.Commit, tt.wantCommit)
			}
		})
	}
}

// Thesis §9.6: answering a pre-vote changes nothing on the voter — not its
// term, not its vote, not its election timer — whether it grants it or not.
func TestPreVoteLeavesNoTrace(t *testing.T) {
	tests := []struct {
		name        string
		lastIndex   uint64
		lastTerm    uint64
		wantGranted bool
	}{
		{"granted", 5, 2, true},
		{"refused: log behind", 1, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rn, s := newFollower(t, 3, []uint64{1, 1, 2, 2, 2}, 3)
			for range 3 {
				rn.Tick()
			}
			elapsed := rn.r.electionElapsed
			m := Message{Type: MsgPreVote, From: "s3", To: "s1", Term: 4, Index: tt.lastIndex, LogTerm: tt.lastTerm}
			if err := rn.Step(m); err != nil {
				t.Fatalf("Step: %v", err)
			}
			rd := drain(t, rn, s)
			if !rd.HardState.IsZero() || rd.MustSync {
				t.Errorf("HardState = %+v, MustSync = %v; want nothing to persist", rd.HardState, rd.MustSync)
			}
			if len(rd.Messages) != 1 || rd.Messages[0].Type != MsgPreVoteResp || rd.Messages[0].Reject == tt.wantGranted {
				t.Errorf("messages = %+v; want one MsgPreVoteResp, granted %v", rd.Messages, tt.wantGranted)
			}
			if st := rn.Status(); st.Term != 3 || st.Vote != "" || rn.r.electionElapsed != elapsed {
				t.Errorf("term %d, vote %q, election elapsed %d; want 3, \"\", %d", st.Term, st.Vote, rn.r.electionElapsed, elapsed)
			}
		})
	}
}
