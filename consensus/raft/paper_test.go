package raft

import (
	"fmt"
	"slices"
	"testing"

	"github.com/distkit/distkit/transport"
)

// Tests tied to sections of the Raft paper (Ongaro and Ousterhout, 2014)
// and of Ongaro's thesis.

// logOf builds entries with the given terms at indexes 1, 2, ...
func logOf(terms ...uint64) []Entry {
	ents := make([]Entry, len(terms))
	for i, t := range terms {
		ents[i] = Entry{Term: t, Index: uint64(i + 1), Data: fmt.Appendf(nil, "%d/%d", i+1, t)}
	}
	return ents
}

// newLogCluster builds a cluster whose nodes start with the given logs (by
// term) at the given current term.
func newLogCluster(t *testing.T, term uint64, logs [][]uint64, tweak func(*Config)) *testCluster {
	t.Helper()
	ids := make([]transport.NodeID, len(logs))
	for i := range ids {
		ids[i] = transport.NodeID(fmt.Sprintf("s%d", i+1))
	}
	return buildCluster(t, ids, func(i int, s *MemoryStorage) {
		if err := s.Append(logOf(logs[i]...)); err != nil {
			t.Fatal(err)
		}
		_ = s.SetHardState(HardState{Term: term})
	}, tweak)
}

// logTerms returns the terms of a node's log (storage plus unstable).
func (c *testCluster) logTerms(id transport.NodeID) []uint64 { return termsOf(c.nodes[id]) }

// §5.4.1: "the voter denies its vote if its own log is more up-to-date than
// that of the candidate": compare the last terms, then the lengths.
func TestElectionRestriction(t *testing.T) {
	tests := []struct {
		name             string
		voterLog         []uint64
		candLast         uint64 // candidate's last index
		candLastTerm     uint64
		wantVoteRejected bool
	}{
		{"empty voter", nil, 0, 0, false},
		{"higher last term wins though shorter", []uint64{1, 1, 1}, 1, 2, false},
		{"lower last term loses though longer", []uint64{1, 2}, 5, 1, true},
		{"same term longer wins", []uint64{1, 2}, 3, 2, false},
		{"same term same length wins", []uint64{1, 2}, 2, 2, false},
		{"same term shorter loses", []uint64{1, 2, 2}, 2, 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newLogCluster(t, 3, [][]uint64{tt.voterLog, nil, nil}, nil)
			voter := c.nodes["s1"]
			_ = voter.Step(Message{Type: MsgVote, From: "s2", To: "s1", Term: 4, Index: tt.candLast, LogTerm: tt.candLastTerm})
			rd, _ := voter.Ready()
			if len(rd.Messages) != 1 || rd.Messages[0].Type != MsgVoteResp {
				t.Fatalf("messages = %+v; want one MsgVoteResp", rd.Messages)
			}
			if got := rd.Messages[0].Reject; got != tt.wantVoteRejected {
				t.Errorf("vote rejected = %v; want %v", got, tt.wantVoteRejected)
			}
		})
	}
}

// §5.2: "each server will vote for at most one candidate in a given term",
// and the vote is in the HardState to persist before the reply is sent.
func TestOneVotePerTerm(t *testing.T) {
	tests := []struct {
		name       string
		from       transport.NodeID
		term       uint64
		wantReject bool
	}{
		{"same candidate again", "s2", 5, false},
		{"other candidate same term", "s3", 5, true},
		{"other candidate later term", "s3", 6, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newLogCluster(t, 4, [][]uint64{nil, nil, nil}, func(cfg *Config) { cfg.CheckQuorum = false })
			voter := c.nodes["s1"]
			_ = voter.Step(Message{Type: MsgVote, From: "s2", To: "s1", Term: 5})
			rd, _ := voter.Ready()
			if rd.HardState.Vote != "s2" || rd.HardState.Term != 5 || !rd.MustSync {
				t.Fatalf("after first vote: HardState = %+v, MustSync = %v; want vote s2 in term 5, synced", rd.HardState, rd.MustSync)
			}
			voter.Advance(rd)
			_ = voter.Step(Message{Type: MsgVote, From: tt.from, To: "s1", Term: tt.term})
			rd, _ = voter.Ready()
			if got := rd.Messages[0].Reject; got != tt.wantReject {
				t.Errorf("second vote rejected = %v; want %v", got, tt.wantReject)
			}
		})
	}
}

// Figure 8 and §5.4.2: "Raft never commits log entries from previous terms
// by counting replicas". S1 leads term 4 with entry 2 from term 2 stored on
// a majority; it must not count it committed, because S5 (last term 3) can
// still be elected by S2, S3 and S4 and overwrite it.
func TestFigure8(t *testing.T) {
	// Figure 8 (c): S1 [1 2] (leader, term 4), S2 [1 2], S3 [1 2] (just
	// replicated), S4 [1], S5 [1 3].
	c := newLogCluster(t, 4, [][]uint64{{1, 2}, {1, 2}, {1, 2}, {1}, {1, 3}}, nil)
	s1 := c.nodes["s1"].r
	s1.becomeCandidate() // term 5 for S1 in this replay; what matters is "not term 2"
	s1.becomeLeader()
	leaderTerm := s1.term
	// The leader's term-2 entry is on a majority (S1, S2, S3)...
	for _, id := range []transport.NodeID{"s2", "s3"} {
		s1.prs[id].match = 2
	}
	if s1.maybeCommit() || s1.log.committed != 0 {
		t.Fatalf("commit index = %d after a majority stored the term-2 entry; want 0 (§5.4.2)", s1.log.committed)
	}
	// ...and indeed S5 could win an election against S2, S3 and S4, so
	// committing entry 2 would have been unsafe.
	for _, id := range []transport.NodeID{"s2", "s3", "s4"} {
		if !c.nodes[id].r.log.isUpToDate(2, 3) {
			t.Errorf("%s would refuse S5 (last term 3); Figure 8 (d) says it votes for it", id)
		}
	}
	// Once an entry of the leader's own term is on a majority, it and
	// everything before it commit (Figure 8 (e)).
	last := s1.log.lastIndex()
	if got := s1.log.termOr0(last); got != leaderTerm {
		t.Fatalf("leader's last entry has term %d; want its own term %d (the no-op)", got, leaderTerm)
	}
	for _, id := range []transport.NodeID{"s1", "s2", "s3"} {
		s1.prs[id].match = last // S1's own copy counts once durable
	}
	if !s1.maybeCommit() || s1.log.committed != last {
		t.Errorf("commit index = %d once the term-%d entry is on a majority; want %d", s1.log.committed, leaderTerm, last)
	}
}

// Figure 7 and §5.3: "the leader handles inconsistencies by forcing the
// followers' logs to duplicate its own". Each follower log of Figure 7,
// missing entries or holding extra, conflicting ones, ends up equal to the
// leader's, using fast backtracking.
func TestFigure7FollowersConverge(t *testing.T) {
	leader := []uint64{1, 1, 1, 4, 4, 5, 5, 6, 6, 6}
	tests := []struct {
		name     string
		follower []uint64
	}{
		{"a: missing one", []uint64{1, 1, 1, 4, 4, 5, 5, 6, 6}},
		{"b: missing many", []uint64{1, 1, 1, 4}},
		{"c: one extra", []uint64{1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6}},
		{"d: extra of a later term", []uint64{1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7}},
		{"e: conflicting term 4 tail", []uint64{1, 1, 1, 4, 4, 4, 4}},
		{"f: conflicting terms 2 and 3", []uint64{1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3}},
		{"empty", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The leader and a voter that agrees with it (a quorum), and
			// the follower of the figure.
			c := newLogCluster(t, 7, [][]uint64{leader, leader, tt.follower}, nil)
			c.nodes["s1"].r.campaign(false, false)
			c.process()
			if st := c.nodes["s1"].Status(); st.Role != Leader {
				t.Fatalf("s1 is %v; want leader", st.Role)
			}
			want := append(slices.Clone(leader), 8) // the leader's no-op of term 8
			c.tickAll()
			if got := c.logTerms("s3"); !slices.Equal(got, want) {
				t.Errorf("follower log terms = %v; want the leader's %v", got, want)
			}
			if got := c.nodes["s3"].Status().Commit; got != uint64(len(want)) {
				t.Errorf("follower commit = %d; want %d", got, len(want))
			}
		})
	}
}

// §5.3 (fast backtracking, as the paper's last paragraphs of §5.3 suggest):
// the number of rejected MsgApps grows with the number of conflicting
// terms, not with the number of conflicting entries.
func TestFastBacktracking(t *testing.T) {
	leader := make([]uint64, 0, 200)
	for range 100 {
		leader = append(leader, 1)
	}
	for range 100 {
		leader = append(leader, 3)
	}
	follower := slices.Clone(leader[:100])
	for range 150 {
		follower = append(follower, 2)
	}
	c := newLogCluster(t, 3, [][]uint64{leader, leader, follower}, nil)
	rejects := 0
	c.drop = func(m Message) bool {
		if m.Type == MsgAppResp && m.Reject && m.From == "s3" {
			rejects++
		}
		return false
	}
	c.nodes["s1"].r.campaign(false, false)
	c.process()
	c.tickAll()
	if got, want := c.logTerms("s3"), c.logTerms("s1"); !slices.Equal(got, want) {
		t.Fatalf("follower did not converge: %d entries; leader has %d", len(got), len(want))
	}
	if rejects > 3 {
		t.Errorf("follower rejected %d MsgApps to repair 150 conflicting entries; want at most 3", rejects)
	}
}

// §5.4 Leader Completeness: a node that lacks a committed entry cannot be
// elected; the election restriction makes a majority refuse it.
func TestLeaderCompleteness(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.elect()
	if _, _, err := c.nodes[lead].Propose([]byte("committed")); err != nil {
		t.Fatal(err)
	}
	// The third node misses the entry: drop everything to it.
	var lagging transport.NodeID
	for _, id := range c.ids {
		if id != lead {
			lagging = id
			break
		}
	}
	c.drop = func(m Message) bool { return m.To == lagging }
	c.process()
	commit := c.nodes[lead].Status().Commit
	if commit < 2 {
		t.Fatalf("leader commit = %d; want the entry committed by the other two", commit)
	}
	// The leader dies. The lagging node campaigns; the other refuses it.
	c.nodes[lead] = nil
	c.drop = nil
	c.nodes[lagging].r.campaign(false, false)
	c.process()
	if st := c.nodes[lagging].Status(); st.Role == Leader {
		t.Fatalf("%s became leader without committed entry %d", lagging, commit)
	}
	newLead := c.elect()
	if newLead == lagging {
		t.Fatalf("%s became leader without committed entry %d", lagging, commit)
	}
	if got := c.nodes[newLead].Status().LastIndex; got < commit {
		t.Errorf("new leader's last index = %d; want at least the commit index %d", got, commit)
	}
}

// Thesis §9.6: with pre-vote and check-quorum, a node that was partitioned
// away (and kept timing out) rejoins without raising anyone's term or
// deposing the leader.
func TestPreVoteRejoinDoesNotDisrupt(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.elect()
	term := c.nodes[lead].Status().Term
	var loner transport.NodeID
	for _, id := range c.ids {
		if id != lead {
			loner = id
		}
	}
	c.drop = func(m Message) bool { return m.To == loner || m.From == loner }
	for range 100 {
		c.tickAll()
	}
	if got := c.nodes[loner].Status().Term; got != term {
		t.Errorf("partitioned node's term = %d; want unchanged %d (pre-vote fails without a quorum)", got, term)
	}
	c.drop = nil
	for range 50 {
		c.tickAll()
	}
	if st := c.nodes[lead].Status(); st.Role != Leader || st.Term != term {
		t.Errorf("after the rejoin the old leader is %v in term %d; want still leader in term %d", st.Role, st.Term, term)
	}
}

// Thesis §6.2: a leader that cannot hear from a quorum for an election
// timeout steps down (check-quorum).
func TestCheckQuorumStepsDown(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.elect()
	c.drop = func(m Message) bool { return m.To == lead || m.From == lead }
	for range 2 * DefaultConfig().ElectionTicks {
		c.nodes[lead].Tick()
		c.process()
	}
	if st := c.nodes[lead].Status(); st.Role == Leader {
		t.Errorf("isolated leader still leads after two election timeouts; want it to step down")
	}
}
