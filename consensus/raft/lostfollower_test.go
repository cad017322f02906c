package raft

import "testing"

// A follower that lost its state (an in-memory node restarted under the
// same ID) rejects the leader's probe with a hint below the match index
// it once acknowledged. The leader must probe below that match, or the
// follower never catches up: the next probe would stay at match+1 forever.
// A rejection that does not concern the current probe is still ignored.
// Recorded as raft-probe-floor-at-match in
// internal/mutate/testdata/raft-rules.mut.
func TestLostFollowerProbesBelowMatch(t *testing.T) {
	tests := []struct {
		name            string
		match, next     uint64
		rejected, probe uint64
		wantOK          bool
		wantMatch       uint64
		wantNext        uint64
	}{
		{"log shorter than the next probe", 5, 9, 8, 6, true, 5, 7},
		{"log empty: match forgotten, probe from the start", 21, 22, 21, 0, true, 0, 1},
		{"log ends below match", 21, 22, 21, 10, true, 0, 11},
		{"stale rejection of another probe", 21, 22, 15, 0, false, 21, 22},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := progress{match: tt.match, next: tt.next, state: ProgressProbe, probeSent: true}
			ok := p.maybeDecrTo(tt.rejected, tt.probe)
			if ok != tt.wantOK || p.match != tt.wantMatch || p.next != tt.wantNext {
				t.Errorf("maybeDecrTo(%d, %d) from match %d next %d = %v, match %d, next %d; want %v, match %d, next %d",
					tt.rejected, tt.probe, tt.match, tt.next, ok, p.match, p.next, tt.wantOK, tt.wantMatch, tt.wantNext)
			}
		})
	}
}
