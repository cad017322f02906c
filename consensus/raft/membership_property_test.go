package raft

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/distkit/distkit/transport"
	"pgregory.net/rapid"
)

// majorities enumerates every majority (as a bit set over ids) of voters.
func majorities(voters, ids []transport.NodeID) []uint64 {
	var out []uint64
	for set := uint64(0); set < 1<<len(ids); set++ {
		n := 0
		for i, id := range ids {
			if set&(1<<i) != 0 && slices.Contains(voters, id) {
				n++
			}
		}
		if n >= quorum(len(voters)) {
			out = append(out, set)
		}
	}
	return out
}

// TestMembershipApplyProperties checks, for random sequences of changes,
// that every membership Apply produces is valid and that a configuration
// change never lets two disjoint groups decide (thesis §4.2, §4.3): every
// group that can decide in the old configuration intersects every group
// that can decide in the new one. In a joint configuration deciding needs
// majorities of both halves, which is what makes bigger changes safe.
func TestMembershipApplyProperties(t *testing.T) {
	pool := []transport.NodeID{"a", "b", "c", "d", "e", "f", "g"}
	// deciders returns the groups (bit sets over pool) that can decide.
	deciders := func(m Membership) []uint64 {
		in := majorities(m.Voters, pool)
		if !m.Joint() {
			return in
		}
		out := majorities(m.OutgoingVoters, pool)
		var both []uint64
		for _, x := range in {
			if slices.Contains(out, x) {
				both = append(both, x)
			}
		}
		return both
	}
	rapid.Check(t, func(t *rapid.T) {
		m := Membership{Voters: []transport.NodeID{"a", "b", "c"}}
		for step := range 12 {
			var cc ConfChange
			if m.Joint() {
				cc.LeaveJoint = true
			} else {
				n := rapid.IntRange(1, 3).Draw(t, fmt.Sprintf("changes%d", step))
				for i := range n {
					cc.Changes = append(cc.Changes, ConfChangeOp{
						Type: ConfChangeType(rapid.IntRange(1, int(maxConfChangeType)).Draw(t, fmt.Sprintf("type%d.%d", step, i))),
						Node: rapid.SampledFrom(pool).Draw(t, fmt.Sprintf("node%d.%d", step, i)),
					})
				}
				cc.ExplicitLeave = rapid.Bool().Draw(t, fmt.Sprintf("explicit%d", step))
			}
			next, err := m.Apply(cc)
			if err != nil {
				if !errors.Is(err, ErrInvalidConfChange) {
					t.Fatalf("Apply(%+v) on %+v: %v; want ErrInvalidConfChange or success", cc, m, err)
				}
				continue
			}
			if err := next.Validate(); err != nil {
				t.Fatalf("Apply(%+v) on %+v = %+v, which fails Validate: %v", cc, m, next, err)
			}
			for _, x := range deciders(m) {
				for _, y := range deciders(next) {
					if x&y == 0 {
						t.Fatalf("Apply(%+v): %+v -> %+v lets disjoint groups %b and %b decide", cc, m, next, x, y)
					}
				}
			}
			m = next
		}
	})
}
