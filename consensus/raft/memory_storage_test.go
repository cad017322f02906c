package raft

import (
	"errors"
	"testing"

	"github.com/distkit/distkit/transport"
	"pgregory.net/rapid"
)

func TestMemoryStorageBasics(t *testing.T) {
	s := NewMemoryStorage()
	if err := s.Append(logOf(1, 1, 2, 3, 3)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		got     func() (uint64, error)
		want    uint64
		wantErr error
	}{
		{"FirstIndex", s.FirstIndex, 1, nil},
		{"LastIndex", s.LastIndex, 5, nil},
		{"Term(0) placeholder", func() (uint64, error) { return s.Term(0) }, 0, nil},
		{"Term(3)", func() (uint64, error) { return s.Term(3) }, 2, nil},
		{"Term(6) beyond", func() (uint64, error) { return s.Term(6) }, 0, ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.got()
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("%s = %d, %v; want %d, %v", tt.name, got, err, tt.want, tt.wantErr)
			}
		})
	}
	if _, err := s.CreateSnapshot(3, Membership{Voters: []transport.NodeID{"a"}}, []byte("state")); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(3); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Term(2); !errors.Is(err, ErrCompacted) {
		t.Errorf("Term(2) after Compact(3) error = %v; want ErrCompacted", err)
	}
	if _, err := s.Entries(3, 5, 1<<20); !errors.Is(err, ErrCompacted) {
		t.Errorf("Entries(3, 5) after Compact(3) error = %v; want ErrCompacted", err)
	}
	if term, err := s.Term(3); term != 2 || err != nil {
		t.Errorf("Term(3) (the snapshot's entry) = %d, %v; want 2, nil", term, err)
	}
	if _, err := s.CreateSnapshot(2, Membership{}, nil); !errors.Is(err, ErrSnapshotOutOfDate) {
		t.Errorf("CreateSnapshot(2) after 3: error = %v; want ErrSnapshotOutOfDate", err)
	}
	if err := s.ApplySnapshot(Snapshot{Meta: SnapshotMeta{Index: 3, Term: 2}}); !errors.Is(err, ErrSnapshotOutOfDate) {
		t.Errorf("ApplySnapshot(3) over 3: error = %v; want ErrSnapshotOutOfDate", err)
	}
	if err := s.Append([]Entry{{Index: 9, Term: 3}}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Append with a gap: error = %v; want ErrUnavailable", err)
	}
	if err := s.Append([]Entry{{Index: 6, Term: 3}, {Index: 8, Term: 3}}); err == nil {
		t.Errorf("Append of non-consecutive entries: error = nil; want an error")
	}
}

// TestMemoryStorageModel checks MemoryStorage against a dumb reference: a
// map from index to term plus the compaction point.
func TestMemoryStorageModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := NewMemoryStorage()
		ref := map[uint64]uint64{0: 0}
		var first, last uint64 = 1, 0 // ref holds first-1 .. last
		for range rapid.IntRange(1, 30).Draw(t, "steps") {
			switch rapid.IntRange(0, 2).Draw(t, "op") {
			case 0: // append, possibly overwriting a suffix
				start := rapid.Uint64Range(first, last+1).Draw(t, "start")
				n := rapid.IntRange(1, 5).Draw(t, "n")
				ents := make([]Entry, n)
				for i := range ents {
					ents[i] = Entry{Index: start + uint64(i), Term: rapid.Uint64Range(1, 5).Draw(t, "term")}
				}
				if err := s.Append(ents); err != nil {
					t.Fatalf("Append(%d entries from %d): %v", n, start, err)
				}
				for i := start; i <= last; i++ {
					delete(ref, i)
				}
				for _, e := range ents {
					ref[e.Index] = e.Term
				}
				last = start + uint64(n) - 1
			case 1: // compact
				if last < first {
					continue
				}
				i := rapid.Uint64Range(first, last).Draw(t, "compact")
				if err := s.Compact(i); err != nil {
					t.Fatalf("Compact(%d): %v", i, err)
				}
				for j := first - 1; j < i; j++ {
					delete(ref, j)
				}
				first = i + 1
			case 2: // read a range
				if last < first {
					continue
				}
				lo := rapid.Uint64Range(first, last).Draw(t, "lo")
				hi := rapid.Uint64Range(lo, last+1).Draw(t, "hi")
				ents, err := s.Entries(lo, hi, 1<<30)
				if err != nil || uint64(len(ents)) != hi-lo {
					t.Fatalf("Entries(%d, %d) = %d entries, %v; want %d", lo, hi, len(ents), err, hi-lo)
				}
				for _, e := range ents {
					if e.Term != ref[e.Index] {
						t.Fatalf("Entries: index %d has term %d; want %d", e.Index, e.Term, ref[e.Index])
					}
				}
				snapshot := append([]Entry(nil), ents...)
				defer func() {
					for i := range ents {
						if ents[i].Index != snapshot[i].Index || ents[i].Term != snapshot[i].Term {
							t.Errorf("a slice returned by Entries changed later at index %d", snapshot[i].Index)
						}
					}
				}()
			}
			if f, _ := s.FirstIndex(); f != first {
				t.Fatalf("FirstIndex = %d; want %d", f, first)
			}
			if l, _ := s.LastIndex(); l != last {
				t.Fatalf("LastIndex = %d; want %d", l, last)
			}
			for i := first - 1; i <= last; i++ {
				if term, err := s.Term(i); err != nil || term != ref[i] {
					t.Fatalf("Term(%d) = %d, %v; want %d", i, term, err, ref[i])
				}
			}
			if first > 1 {
				if _, err := s.Term(first - 2); !errors.Is(err, ErrCompacted) {
					t.Fatalf("Term(%d) error = %v; want ErrCompacted", first-2, err)
				}
			}
			if _, err := s.Term(last + 1); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Term(%d) error = %v; want ErrUnavailable", last+1, err)
			}
		}
	})
}

// The zero MemoryStorage behaves like NewMemoryStorage's, method by method,
// instead of panicking on its missing placeholder entry.
func TestMemoryStorageZeroValue(t *testing.T) {
	tests := []struct {
		name string
		call func(s *MemoryStorage) (uint64, error)
	}{
		{"FirstIndex", (*MemoryStorage).FirstIndex},
		{"LastIndex", (*MemoryStorage).LastIndex},
		{"Term(0)", func(s *MemoryStorage) (uint64, error) { return s.Term(0) }},
		{"Term(1)", func(s *MemoryStorage) (uint64, error) { return s.Term(1) }},
		{"Entries(1, 1)", func(s *MemoryStorage) (uint64, error) { e, err := s.Entries(1, 1, 100); return uint64(len(e)), err }},
		{"Entries(1, 2)", func(s *MemoryStorage) (uint64, error) { e, err := s.Entries(1, 2, 100); return uint64(len(e)), err }},
		{"Append then LastIndex", func(s *MemoryStorage) (uint64, error) {
			if err := s.Append(logOf(1, 1)); err != nil {
				return 0, err
			}
			return s.LastIndex()
		}},
		{"Compact(1)", func(s *MemoryStorage) (uint64, error) { return 0, s.Compact(1) }},
		{"CreateSnapshot(1)", func(s *MemoryStorage) (uint64, error) {
			snap, err := s.CreateSnapshot(1, Membership{}, nil)
			return snap.Meta.Index, err
		}},
		{"ApplySnapshot(5)", func(s *MemoryStorage) (uint64, error) {
			if err := s.ApplySnapshot(Snapshot{Meta: SnapshotMeta{Index: 5, Term: 2}}); err != nil {
				return 0, err
			}
			return s.FirstIndex()
		}},
	}
	// kind reduces an error to the sentinel it wraps.
	kind := func(err error) error {
		for _, s := range []error{ErrCompacted, ErrUnavailable, ErrSnapshotOutOfDate} {
			if errors.Is(err, s) {
				return s
			}
		}
		return err
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, gotErr := tt.call(&MemoryStorage{})
			want, wantErr := tt.call(NewMemoryStorage())
			if got != want || kind(gotErr) != kind(wantErr) {
				t.Errorf("zero value: %d, %v; want %d, %v (as NewMemoryStorage)", got, gotErr, want, wantErr)
			}
		})
	}
}

// TestMemoryStorageSteadyStateGrowth checks that a log compacted every
// 10000 entries, keeping 1000, gets one array per compaction and never
// grows it while it grows back: growing by append copied the log a dozen
// times per cycle. With lag, each compaction comes a varying number of
// entries after its snapshot's index, as when the snapshot is written in
// the background.
func TestMemoryStorageSteadyStateGrowth(t *testing.T) {
	const batch, threshold, retain = 50, 10000, 1000
	for _, lag := range []bool{false, true} {
		s := NewMemoryStorage()
		ents := make([]Entry, batch)
		next := uint64(1)
		// cycle appends a cycle's entries and compacts; it returns how
		// often an Append had to replace the array.
		cycle := func(c int) (grown int) {
			delay := 0
			if lag {
				delay = batch * (c % 4) * 10 // 0 to 1500 entries late
			}
			for range (threshold + delay) / batch {
				if appendBatch(t, s, ents, next) {
					grown++
				}
				next += batch
			}
			snap := next - 1 - uint64(delay)
			if _, err := s.CreateSnapshot(snap, Membership{}, nil); err != nil {
				t.Fatal(err)
			}
			if err := s.Compact(snap - retain); err != nil {
				t.Fatal(err)
			}
			return grown
		}
		for c := range 12 {
			// The first cycles grow the array from nothing.
			if grown := cycle(c); c >= 2 && grown != 0 {
				t.Fatalf("lag %v: cycle %d grew the log's array %d times; want 0 (capacity %d after compaction)", lag, c, grown, cap(s.ents))
			}
		}
	}
}

// TestMemoryStorageEntriesAreCapped: appending to a slice Entries
// returned never writes into the log (its capacity ends at its length),
// and later Appends never change it.
func TestMemoryStorageEntriesAreCapped(t *testing.T) {
	s := NewMemoryStorage()
	for i := uint64(1); i <= 8; i++ {
		if err := s.Append([]Entry{{Term: 1, Index: i, Data: []byte{byte(i)}}}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Entries(2, 5, 1<<20)
	if err != nil || len(got) != 3 || cap(got) != len(got) {
		t.Fatalf("Entries(2, 5) = %d entries, capacity %d, %v; want 3, capacity 3", len(got), cap(got), err)
	}
	_ = append(got, Entry{Term: 9, Index: 5, Data: []byte("x")})
	if e, _ := s.Entries(5, 6, 1<<20); e[0].Term != 1 || e[0].Data[0] != 5 {
		t.Fatalf("appending to a returned slice changed entry 5: %+v", e[0])
	}
	if err := s.Append([]Entry{{Term: 2, Index: 3, Data: []byte("y")}}); err != nil { // overwrite from 3
		t.Fatal(err)
	}
	if got[1].Term != 1 || got[1].Data[0] != 3 {
		t.Fatalf("an overwriting Append changed a slice returned before: %+v", got[1])
	}
}

// TestMemoryStorageAppendDoubles: a log that is never compacted replaces
// its array about log2(n) times, not the dozens of times append's growth
// by a quarter would.
func TestMemoryStorageAppendDoubles(t *testing.T) {
	s := NewMemoryStorage()
	ents := make([]Entry, 50)
	grown := 0
	for next := uint64(1); next <= 100000; next += 50 {
		if appendBatch(t, s, ents, next) {
			grown++
		}
	}
	if grown > 16 {
		t.Fatalf("100000 entries replaced the log's array %d times; want at most 16 (doubling)", grown)
	}
}

// appendBatch appends len(ents) entries from index next, reusing ents, and
// reports whether the log's array was replaced.
func appendBatch(t *testing.T, s *MemoryStorage, ents []Entry, next uint64) (grew bool) {
	t.Helper()
	for i := range ents {
		ents[i] = Entry{Term: 1, Index: next + uint64(i)}
	}
	before := cap(s.ents)
	if err := s.Append(ents); err != nil {
		t.Fatal(err)
	}
	return cap(s.ents) != before
}
