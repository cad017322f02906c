package raft

import (
	"errors"
	"slices"
	"testing"
)

// Rules of the core that no chaos run reaches (they are defences that a
// correct leader never tests) or that only one careful schedule reaches,
// each pinned by a direct test. Each is recorded as a mutation in
// internal/mutate/testdata/raft-rules.mut.

// Figure 2, AppendEntries rule 5: "If leaderCommit > commitIndex, set
// commitIndex = min(leaderCommit, index of last new entry)". A follower
// holding stale entries from an old term past the point the leader's
// message covers must not commit them on the leader's word: the leader's
// commit index speaks of its own log, which may differ there.
func TestRulesFollowerCommitsOnlyThroughLastNewEntry(t *testing.T) {
	tests := []struct {
		name       string
		ents       []Entry // carried by the MsgApp, after prevIndex 3 (term 1)
		wantCommit uint64
	}{
		{"heartbeat-like append with no entries", nil, 3},
		{"one new entry", []Entry{{Index: 4, Term: 3}}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// s1 holds [1 1 1 2 2]: entries 4 and 5 of term 2 came from a
			// deposed leader and are not committed (commit 2).
			rn, s := newFollower(t, 3, []uint64{1, 1, 1, 2, 2}, 2)
			err := rn.Step(Message{Type: MsgApp, From: "s2", To: "s1", Term: 3, Index: 3, LogTerm: 1,
				Entries: tt.ents, Commit: 5})
			if err != nil {
				t.Fatalf("Step: %v", err)
			}
			drain(t, rn, s)
			if got := rn.r.log.committed; got != tt.wantCommit {
				t.Errorf("commit index = %d after MsgApp(prev 3, %d entries, leader commit 5); want %d, the last entry the message vouched for",
					got, len(tt.ents), tt.wantCommit)
			}
		})
	}
}

// §5.3 and Leader Completeness: entries at or below the commit index are
// never replaced. handleAppend already skips the part of a message at or
// below the commit index (a late duplicate), so only a broken leader could
// make the log itself meet such a conflict; raftLog.maybeAppend refuses it
// with an error rather than truncate committed data, and this test calls
// it directly, as the defence it is.
func TestRulesNoTruncationAtOrBelowCommit(t *testing.T) {
	for _, conflictAt := range []uint64{2, 3} {
		rn, _ := newFollower(t, 3, []uint64{1, 1, 1, 1}, 3)
		before := termsOf(rn)
		// prev (1, term 1) matches; the entries conflict from conflictAt on.
		var ents []Entry
		for i := uint64(2); i <= 4; i++ {
			term := uint64(1)
			if i >= conflictAt {
				term = 3
			}
			ents = append(ents, Entry{Index: i, Term: term})
		}
		_, _, _, err := rn.r.log.maybeAppend(1, 1, 4, ents)
		if !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("conflict at %d (commit 3): maybeAppend = %v; want ErrInvalidMessage", conflictAt, err)
		}
		if got := termsOf(rn); !slices.Equal(got, before) || rn.r.log.committed != 3 {
			t.Errorf("conflict at %d (commit 3): log terms %v, commit %d; want %v, 3 (nothing committed replaced)",
				conflictAt, got, rn.r.log.committed, before)
		}
	}
	// Through the message path the committed prefix is skipped, and only
	// the entry past the commit index is taken.
	rn, s := newFollower(t, 3, []uint64{1, 1, 1, 1}, 3)
	ents := []Entry{{Index: 2, Term: 1}, {Index: 3, Term: 1}, {Index: 4, Term: 3}}
	if err := rn.Step(Message{Type: MsgApp, From: "s2", To: "s1", Term: 3, Index: 1, LogTerm: 1, Entries: ents, Commit: 4}); err != nil {
		t.Fatalf("Step: %v", err)
	}
	drain(t, rn, s)
	if got := termsOf(rn); !slices.Equal(got, []uint64{1, 1, 1, 3}) {
		t.Errorf("log terms %v; want [1 1 1 3]", got)
	}
}

// §7: a follower never installs a snapshot older than its commit index.
// Installing it would move the log (and the commit index) back to the
// snapshot and discard committed entries the follower already applied.
// handleSnapshot answers such a snapshot before restore is reached; restore
// refuses it too, and that is what this test pins: the follower has itself
// compacted past the old snapshot, so the log cannot vouch for it.
func TestRulesRestoreRefusesSnapshotOlderThanCommit(t *testing.T) {
	rn, s := newFollower(t, 3, []uint64{1, 1, 2, 2, 3, 3}, 6)
	if err := s.Compact(4); err != nil {
		t.Fatal(err)
	}
	rn.r.log.applied = 6
	old := &Snapshot{Meta: SnapshotMeta{Index: 2, Term: 1, Membership: rn.r.conf.Clone()}}
	if rn.r.restore(old) {
		t.Errorf("restore(snapshot at 2) with commit index 6 = true; want false")
	}
	if got, last := rn.r.log.committed, rn.r.log.lastIndex(); got != 6 || last != 6 {
		t.Errorf("after an old snapshot: commit %d, last index %d; want 6, 6 (nothing lost)", got, last)
	}
	// And through the message path: the answer says where the follower is.
	if err := rn.Step(Message{Type: MsgSnap, From: "s2", To: "s1", Term: 3, Snapshot: &old.Meta, Last: true}); err != nil {
		t.Fatalf("Step(MsgSnap): %v", err)
	}
	rd := drain(t, rn, s)
	if rd.Snapshot != nil || rn.r.log.committed != 6 {
		t.Errorf("MsgSnap at 2 with commit 6: Ready.Snapshot = %v, commit %d; want none, 6", rd.Snapshot, rn.r.log.committed)
	}
}

// Thesis §4.2.3 and §9.6 (check-quorum's vote lease): a follower that
// heard from its leader within the minimum election timeout neither grants
// a vote for a higher term nor adopts that term. Without it a node that
// rejoins after a partition, with a higher term, deposes a healthy leader.
func TestRulesVoteLeaseWithCheckQuorum(t *testing.T) {
	rn, s := newFollower(t, 3, []uint64{1, 2, 3}, 3)
	if !rn.r.cfg.CheckQuorum {
		t.Fatal("DefaultConfig has CheckQuorum off; this test is about it on")
	}
	// s1 hears its leader s2.
	if err := rn.Step(Message{Type: MsgHeartbeat, From: "s2", To: "s1", Term: 3, Commit: 3}); err != nil {
		t.Fatal(err)
	}
	drain(t, rn, s)
	// s3, back from a partition with a higher term and an up-to-date log,
	// asks for a vote.
	if err := rn.Step(Message{Type: MsgVote, From: "s3", To: "s1", Term: 7, Index: 3, LogTerm: 3}); err != nil {
		t.Fatal(err)
	}
	rd := drain(t, rn, s)
	for _, m := range rd.Messages {
		if m.Type == MsgVoteResp && !m.Reject {
			t.Errorf("s1 granted s3 a vote for term 7 one tick after hearing its leader")
		}
	}
	if rn.r.term != 3 || rn.r.lead != "s2" {
		t.Errorf("s1 is in term %d following %q; want term 3 following s2 (the vote request ignored)", rn.r.term, rn.r.lead)
	}
	// Once the lease is over (an election timeout without the leader), the
	// same request is granted.
	for range rn.r.cfg.ElectionTicks {
		rn.Tick()
	}
	drain(t, rn, s)
	if err := rn.Step(Message{Type: MsgVote, From: "s3", To: "s1", Term: 7, Index: 3, LogTerm: 3}); err != nil {
		t.Fatal(err)
	}
	rd = drain(t, rn, s)
	granted := slices.ContainsFunc(rd.Messages, func(m Message) bool { return m.Type == MsgVoteResp && !m.Reject })
	if !granted || rn.r.term != 7 {
		t.Errorf("after an election timeout without the leader: granted %v, term %d; want a vote for s3 in term 7", granted, rn.r.term)
	}
}
