package netfault

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestQueueMatchesReference drives a Queue and a dumb reference (a slice
// kept sorted by due time, stable for equal times) with the same random
// pushes, pops and drains, and compares every answer.
func TestQueueMatchesReference(t *testing.T) {
	type entry struct {
		at time.Duration
		v  int
	}
	rapid.Check(t, func(t *rapid.T) {
		var q Queue[int]
		var ref []entry // sorted by at; equal ats in push order
		next := 0
		for range rapid.IntRange(0, 200).Draw(t, "steps") {
			switch rapid.IntRange(0, 9).Draw(t, "op") {
			case 0, 1, 2, 3, 4: // push; few distinct times, so ties are common
				at := time.Duration(rapid.IntRange(0, 5).Draw(t, "at"))
				q.Push(at, next)
				i := len(ref)
				for i > 0 && ref[i-1].at > at {
					i--
				}
				ref = slices.Insert(ref, i, entry{at, next})
				next++
			case 5, 6, 7, 8: // pop
				if len(ref) == 0 {
					continue
				}
				at, v := q.Pop()
				if want := ref[0]; at != want.at || v != want.v {
					t.Fatalf("Pop() = %v, %d; want %v, %d", at, v, want.at, want.v)
				}
				ref = ref[1:]
			case 9: // drain
				var got []int
				q.Drain(func(v *int) { got = append(got, *v) })
				var want []int
				for _, e := range ref {
					want = append(want, e.v)
				}
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Fatalf("Drain visited %v; want %v", got, want)
				}
				ref = nil
			}
			if q.Len() != len(ref) {
				t.Fatalf("Len() = %d; want %d", q.Len(), len(ref))
			}
			at, ok := q.Next()
			if wantOK := len(ref) > 0; ok != wantOK || (ok && at != ref[0].at) {
				t.Fatalf("Next() = %v, %v; want the earliest due time of %v", at, ok, ref)
			}
		}
	})
}

func BenchmarkQueue(b *testing.B) {
	for _, n := range []int{16, 1024} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			var q Queue[[4]uint64]
			for i := range n {
				q.Push(time.Duration(i*7919%n), [4]uint64{})
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				at, v := q.Pop()
				q.Push(at+time.Duration(i%n), v)
			}
		})
	}
}
