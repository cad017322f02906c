package raft

import (
	"errors"
	"slices"
	"testing"

	"github.com/distkit/distkit/transport"
)

// Tests of membership changes as plain data (thesis §4.2 and §4.3).

func ids(s ...transport.NodeID) []transport.NodeID { return s }

func TestMembershipApply(t *testing.T) {
	abc := Membership{Voters: ids("a", "b", "c")}
	withLearner := Membership{Voters: ids("a", "b", "c"), Learners: ids("l")}
	joint := Membership{Voters: ids("a", "d", "e"), OutgoingVoters: ids("a", "b", "c"), AutoLeave: true}
	tests := []struct {
		name    string
		from    Membership
		cc      ConfChange
		want    Membership
		wantErr error
	}{
		// §4.2: one voter more or less needs no joint phase.
		{"add one voter: simple", abc, ConfChange{Changes: []ConfChangeOp{{ConfAddVoter, "d"}}}, Membership{Voters: ids("a", "b", "c", "d")}, nil},
		{"remove one voter: simple", abc, ConfChange{Changes: []ConfChangeOp{{ConfRemove, "b"}}}, Membership{Voters: ids("a", "c")}, nil},
		{"add a learner: simple", abc, ConfChange{Changes: []ConfChangeOp{{ConfAddLearner, "l"}}}, withLearner, nil},
		{"promote a learner: simple", withLearner, ConfChange{Changes: []ConfChangeOp{{ConfPromote, "l"}}}, Membership{Voters: ids("a", "b", "c", "l")}, nil},
		{"remove a learner: simple", withLearner, ConfChange{Changes: []ConfChangeOp{{ConfRemove, "l"}}}, abc, nil},
		{"learners change freely with one voter", withLearner, ConfChange{Changes: []ConfChangeOp{{ConfRemove, "l"}, {ConfAddLearner, "m"}, {ConfAddVoter, "d"}}}, Membership{Voters: ids("a", "b", "c", "d"), Learners: ids("m")}, nil},
		// §4.3: more than one voter changing goes through C_old,new.
		{"replace a voter: joint", abc, ConfChange{Changes: []ConfChangeOp{{ConfAddVoter, "d"}, {ConfRemove, "b"}}}, Membership{Voters: ids("a", "c", "d"), OutgoingVoters: ids("a", "b", "c"), AutoLeave: true}, nil},
		{"grow by two: joint", abc, ConfChange{Changes: []ConfChangeOp{{ConfAddVoter, "d"}, {ConfAddVoter, "e"}}}, Membership{Voters: ids("a", "b", "c", "d", "e"), OutgoingVoters: ids("a", "b", "c"), AutoLeave: true}, nil},
		{"explicit leave forces joint", abc, ConfChange{Changes: []ConfChangeOp{{ConfAddVoter, "d"}}, ExplicitLeave: true}, Membership{Voters: ids("a", "b", "c", "d"), OutgoingVoters: ids("a", "b", "c")}, nil},
		{"leave joint", joint, ConfChange{LeaveJoint: true}, Membership{Voters: ids("a", "d", "e")}, nil},
		{"change inside joint", joint, ConfChange{Changes: []ConfChangeOp{{ConfAddVoter, "f"}}}, Membership{}, ErrConfChangeInProgress},
		{"leave joint outside joint", abc, ConfChange{LeaveJoint: true}, Membership{}, ErrInvalidConfChange},
		{"leave joint with changes", joint, ConfChange{LeaveJoint: true, Changes: []ConfChangeOp{{ConfRemove, "a"}}}, Membership{}, ErrInvalidConfChange},
		{"no changes", abc, ConfChange{}, Membership{}, ErrInvalidConfChange},
		{"add an existing voter", abc, ConfChange{Changes: []ConfChangeOp{{ConfAddVoter, "a"}}}, Membership{}, ErrInvalidConfChange},
		{"add an existing learner as voter", withLearner, ConfChange{Changes: []ConfChangeOp{{ConfAddVoter, "l"}}}, Membership{}, ErrInvalidConfChange},
		{"promote a voter", abc, ConfChange{Changes: []ConfChangeOp{{ConfPromote, "a"}}}, Membership{}, ErrInvalidConfChange},
		{"remove a stranger", abc, ConfChange{Changes: []ConfChangeOp{{ConfRemove, "x"}}}, Membership{}, ErrInvalidConfChange},
		{"remove every voter", Membership{Voters: ids("a")}, ConfChange{Changes: []ConfChangeOp{{ConfRemove, "a"}}}, Membership{}, ErrInvalidConfChange},
		{"same node twice", abc, ConfChange{Changes: []ConfChangeOp{{ConfAddLearner, "x"}, {ConfPromote, "x"}}}, Membership{}, ErrInvalidConfChange},
		{"empty node", abc, ConfChange{Changes: []ConfChangeOp{{ConfAddVoter, ""}}}, Membership{}, ErrInvalidConfChange},
		{"unknown type", abc, ConfChange{Changes: []ConfChangeOp{{9, "x"}}}, Membership{}, ErrInvalidConfChange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.from.Apply(tt.cc)
			if !errors.Is(err, tt.wantErr) || !got.Equal(tt.want) {
				t.Errorf("Apply(%+v) = %+v, %v; want %+v, %v", tt.cc, got, err, tt.want, tt.wantErr)
			}
			if err == nil {
				if verr := got.Validate(); verr != nil {
					t.Errorf("Apply result fails Validate: %v", verr)
				}
			}
		})
	}
}

// §4.3: in C_old,new, elections (and commits) need separate majorities of
// both configurations.
func TestJointVoteResult(t *testing.T) {
	joint := Membership{Voters: ids("a", "d", "e"), OutgoingVoters: ids("a", "b", "c")}
	tests := []struct {
		name              string
		m                 Membership
		votes             map[transport.NodeID]bool
		wantWon, wantLost bool
	}{
		{"simple majority", Membership{Voters: ids("a", "b", "c")}, map[transport.NodeID]bool{"a": true, "b": true}, true, false},
		{"simple minority pending", Membership{Voters: ids("a", "b", "c")}, map[transport.NodeID]bool{"a": true}, false, false},
		{"simple lost", Membership{Voters: ids("a", "b", "c")}, map[transport.NodeID]bool{"a": true, "b": false, "c": false}, false, true},
		{"joint: both majorities", joint, map[transport.NodeID]bool{"a": true, "b": true, "d": true}, true, false},
		{"joint: new majority only", joint, map[transport.NodeID]bool{"a": true, "d": true, "e": true}, false, false},
		{"joint: old majority only", joint, map[transport.NodeID]bool{"a": true, "b": true, "c": true}, false, false},
		{"joint: new half lost", joint, map[transport.NodeID]bool{"a": true, "b": true, "d": false, "e": false}, false, true},
		{"joint: old half lost", joint, map[transport.NodeID]bool{"a": true, "d": true, "b": false, "c": false}, false, true},
		{"learner votes do not count", Membership{Voters: ids("a", "b", "c"), Learners: ids("l")}, map[transport.NodeID]bool{"a": true, "l": true}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			won, lost := tt.m.jointVoteResult(tt.votes)
			if won != tt.wantWon || lost != tt.wantLost {
				t.Errorf("jointVoteResult(%v) = %v, %v; want %v, %v", tt.votes, won, lost, tt.wantWon, tt.wantLost)
			}
		})
	}
}

func TestMembershipValidate(t *testing.T) {
	tests := []struct {
		name string
		m    Membership
		ok   bool
	}{
		{"empty (a joining node)", Membership{}, true},
		{"voters", Membership{Voters: ids("a", "b")}, true},
		{"joint", Membership{Voters: ids("a"), OutgoingVoters: ids("b"), AutoLeave: true}, true},
		{"duplicate voter", Membership{Voters: ids("a", "a")}, false},
		{"empty id", Membership{Voters: ids("")}, false},
		{"learner and voter", Membership{Voters: ids("a"), Learners: ids("a")}, false},
		{"learner and outgoing voter", Membership{Voters: ids("a"), OutgoingVoters: ids("b"), Learners: ids("b")}, false},
		{"auto leave outside joint", Membership{Voters: ids("a"), AutoLeave: true}, false},
		{"learners without voters", Membership{Learners: ids("a")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.m.Validate(); (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalidConfChange)) {
				t.Errorf("Validate(%+v) = %v; want ok=%v", tt.m, err, tt.ok)
			}
		})
	}
}

func TestConfChangeEntryRoundTrip(t *testing.T) {
	entries := []ConfChangeEntry{
		{Change: ConfChange{Changes: []ConfChangeOp{{ConfAddVoter, "d"}, {ConfRemove, "b"}}}, Membership: Membership{Voters: ids("a", "c", "d"), OutgoingVoters: ids("a", "b", "c"), AutoLeave: true}},
		{Change: ConfChange{LeaveJoint: true}, Membership: Membership{Voters: ids("a", "c", "d"), Learners: ids("l")}},
		{Change: ConfChange{Changes: []ConfChangeOp{{ConfAddLearner, "l"}}, ExplicitLeave: true}, Membership: Membership{Voters: ids("a"), Learners: ids("l"), OutgoingVoters: ids("a")}},
	}
	for _, e := range entries {
		b, err := e.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		var got ConfChangeEntry
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("UnmarshalBinary: %v", err)
		}
		if !got.Membership.Equal(e.Membership) || !slices.Equal(got.Change.Changes, e.Change.Changes) ||
			got.Change.LeaveJoint != e.Change.LeaveJoint || got.Change.ExplicitLeave != e.Change.ExplicitLeave {
			t.Errorf("round trip of %+v gave %+v", e, got)
		}
		for cut := range len(b) {
			if err := got.UnmarshalBinary(b[:cut]); !errors.Is(err, ErrInvalidConfChange) {
				t.Errorf("UnmarshalBinary(truncated to %d) = %v; want ErrInvalidConfChange", cut, err)
			}
		}
	}
}

func FuzzConfChangeEntry(f *testing.F) {
	e := ConfChangeEntry{Change: ConfChange{Changes: []ConfChangeOp{{ConfAddVoter, "d"}}}, Membership: Membership{Voters: ids("a", "d"), Learners: ids("l")}}
	b, _ := e.AppendBinary(nil)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var e ConfChangeEntry
		if err := e.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrInvalidConfChange) {
				t.Fatalf("UnmarshalBinary error %v does not wrap ErrInvalidConfChange", err)
			}
			return
		}
		if err := e.Membership.Validate(); err != nil {
			t.Fatalf("decoded an invalid membership: %v", err)
		}
		again, err := e.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		var e2 ConfChangeEntry
		if err := e2.UnmarshalBinary(again); err != nil || !e2.Membership.Equal(e.Membership) {
			t.Fatalf("re-decoding %x: %v", again, err)
		}
	})
}
