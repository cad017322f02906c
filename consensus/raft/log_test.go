package raft

import (
	"testing"

	"pgregory.net/rapid"
)

// TestRaftLogModel checks the core's log view (Storage plus the unstable
// tail, with Ready/Advance cycles in between) against a plain slice of
// terms: appends that truncate, persisting in arbitrary steps, and
// snapshots replacing everything.
func TestRaftLogModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		st := NewMemoryStorage()
		l, err := newRaftLog(st, 0)
		if err != nil {
			t.Fatal(err)
		}
		// ref[i] is the term at index base+i; base is the snapshot index.
		var base uint64
		ref := []uint64{0}
		refLast := func() uint64 { return base + uint64(len(ref)) - 1 }
		for range rapid.IntRange(1, 40).Draw(t, "steps") {
			switch rapid.IntRange(0, 3).Draw(t, "op") {
			case 0, 1: // append at or after the commit index, maybe truncating
				start := rapid.Uint64Range(max(l.committed, base)+1, refLast()+1).Draw(t, "start")
				n := rapid.IntRange(1, 4).Draw(t, "n")
				ents := make([]Entry, n)
				for i := range ents {
					ents[i] = Entry{Index: start + uint64(i), Term: rapid.Uint64Range(1, 9).Draw(t, "term")}
				}
				l.append(ents)
				ref = ref[:start-base]
				for _, e := range ents {
					ref = append(ref, e.Term)
				}
			case 2: // a Ready/Advance cycle: persist what is new
				u := &l.unstable
				if u.snapshot != nil && !u.snapInProgress {
					snap := u.snapshot
					u.snapInProgress = true
					if err := st.ApplySnapshot(*snap); err != nil {
						t.Fatalf("ApplySnapshot: %v", err)
					}
					u.snapshotStable(snap)
				}
				if ents := u.newEntries(); len(ents) > 0 {
					u.inProgress = ents[len(ents)-1].Index
					if err := st.Append(ents); err != nil {
						t.Fatalf("Append: %v", err)
					}
					last := ents[len(ents)-1]
					u.stableTo(last.Index, last.Term)
				}
				if rapid.Bool().Draw(t, "commit") && refLast() > l.committed {
					l.commitTo(rapid.Uint64Range(l.committed+1, refLast()).Draw(t, "commitTo"))
				}
			case 3: // a snapshot from the leader replaces the log
				idx := refLast() + rapid.Uint64Range(1, 5).Draw(t, "ahead")
				term := rapid.Uint64Range(1, 9).Draw(t, "snapTerm")
				l.restore(&Snapshot{Meta: SnapshotMeta{Index: idx, Term: term}})
				base, ref = idx, []uint64{term}
			}
			if got := l.lastIndex(); got != refLast() {
				t.Fatalf("lastIndex = %d; want %d", got, refLast())
			}
			if got := l.firstIndex(); got != base+1 {
				t.Fatalf("firstIndex = %d; want %d", got, base+1)
			}
			for i := base; i <= refLast(); i++ {
				if got := l.termOr0(i); got != ref[i-base] {
					t.Fatalf("term(%d) = %d; want %d", i, got, ref[i-base])
				}
			}
			if refLast() > base {
				lo := rapid.Uint64Range(base+1, refLast()).Draw(t, "lo")
				ents, err := l.slice(lo, refLast()+1, 1<<30)
				if err != nil || uint64(len(ents)) != refLast()+1-lo {
					t.Fatalf("slice(%d, %d) = %d entries, %v; want %d", lo, refLast()+1, len(ents), err, refLast()+1-lo)
				}
				for _, e := range ents {
					if e.Term != ref[e.Index-base] {
						t.Fatalf("slice: index %d has term %d; want %d", e.Index, e.Term, ref[e.Index-base])
					}
				}
			}
		}
	})
}
