package clock

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

func TestLamportRules(t *testing.T) {
	tests := []struct {
		name  string
		start uint64 // clock value before the operation
		op    func(c *Lamport) (uint64, error)
		want  uint64
	}{
		{"tick from zero", 0, func(c *Lamport) (uint64, error) { return c.Tick(), nil }, 1},
		{"send ticks", 5, func(c *Lamport) (uint64, error) { return c.Send(), nil }, 6},
		{"receive behind", 5, func(c *Lamport) (uint64, error) { return c.Receive(2) }, 6},
		{"receive equal", 5, func(c *Lamport) (uint64, error) { return c.Receive(5) }, 6},
		{"receive ahead", 5, func(c *Lamport) (uint64, error) { return c.Receive(9) }, 10},
		{"receive max", 0, func(c *Lamport) (uint64, error) { return c.Receive(MaxCounter) }, MaxCounter + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Lamport
			c.now.Store(tt.start)
			got, err := tt.op(&c)
			if err != nil {
				t.Fatalf("op from %d: unexpected error %v", tt.start, err)
			}
			if got != tt.want || c.Current() != tt.want {
				t.Errorf("op from %d = %d (Current %d); want %d", tt.start, got, c.Current(), tt.want)
			}
		})
	}
}

func TestLamportReceiveRejectsHugeTimestamp(t *testing.T) {
	var c Lamport
	c.Tick()
	_, err := c.Receive(MaxCounter + 1)
	if !errors.Is(err, ErrTimestampTooLarge) {
		t.Fatalf("Receive(MaxCounter+1) error = %v; want ErrTimestampTooLarge", err)
	}
	if got := c.Current(); got != 1 {
		t.Errorf("Current() after rejected Receive = %d; want 1 (unchanged)", got)
	}
}

// TestLamportConcurrent hammers one clock from several goroutines: every
// event must get a distinct timestamp, each goroutine must see its own
// timestamps increase, and a receive must land above the received value.
func TestLamportConcurrent(t *testing.T) {
	const goroutines, perG = 4, 2000
	var c Lamport
	results := make([][]uint64, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var prev uint64
			for i := range perG {
				var ts uint64
				switch i % 3 {
				case 0:
					ts = c.Tick()
				case 1:
					ts = c.Send()
				default:
					remote := uint64(i * 3)
					var err error
					if ts, err = c.Receive(remote); err != nil {
						t.Errorf("Receive(%d): %v", remote, err)
						return
					}
					if ts <= remote {
						t.Errorf("Receive(%d) = %d; want > %d", remote, ts, remote)
					}
				}
				if ts <= prev {
					t.Errorf("goroutine %d: timestamp %d after %d; want increasing", g, ts, prev)
				}
				prev = ts
				results[g] = append(results[g], ts)
			}
		}()
	}
	wg.Wait()
	seen := make(map[uint64]bool, goroutines*perG)
	for _, r := range results {
		for _, ts := range r {
			if seen[ts] {
				t.Fatalf("timestamp %d issued twice", ts)
			}
			seen[ts] = true
		}
	}
}

// TestLamportReceiveIsAtomic runs receives of a timestamp behind the clock
// from several goroutines at once. Each is one event that raises the clock
// by exactly 1, so the clock must end at the number of events: a receive
// that read the clock and wrote it back without a compare-and-swap would
// lose concurrent events. A lost update shows only when the goroutines
// really interleave, which a busy machine may not give them in one round:
// rounds run until the goroutines have seen each other's events often
// enough (a timestamp that jumps by more than 1), or a bound on rounds.
// It never fails on correct code.
func TestLamportReceiveIsAtomic(t *testing.T) {
	const goroutines, perG, maxRounds, wantInterleavings = 4, 100_000, 20, 10_000
	var c Lamport
	interleavings := 0
	for round := 1; round <= maxRounds && interleavings < wantInterleavings; round++ {
		var ready atomic.Int32 // the goroutines start together, so they overlap
		jumps := make([]int, goroutines)
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ready.Add(1); ready.Load() < goroutines; {
					runtime.Gosched()
				}
				prev := c.Current()
				for range perG {
					ts, err := c.Receive(0)
					if err != nil {
						t.Errorf("Receive(0): %v", err)
						return
					}
					if ts <= prev {
						t.Errorf("goroutine %d: Receive(0) = %d after %d; want increasing", g, ts, prev)
						return
					}
					if ts > prev+1 {
						jumps[g]++ // another goroutine's event came in between
					}
					prev = ts
				}
			}()
		}
		wg.Wait()
		if got, want := c.Current(), uint64(round*goroutines*perG); got != want {
			t.Fatalf("Current() after %d concurrent receives (round %d) = %d; want %d (events were lost)", want, round, got, want)
		}
		for _, j := range jumps {
			interleavings += j
		}
	}
	t.Logf("%d interleaved receives seen", interleavings)
}

func TestStampCompare(t *testing.T) {
	tests := []struct {
		a, b Stamp
		want int
	}{
		{Stamp{1, "b"}, Stamp{2, "a"}, -1},
		{Stamp{2, "a"}, Stamp{1, "b"}, 1},
		{Stamp{3, "a"}, Stamp{3, "b"}, -1},
		{Stamp{3, "b"}, Stamp{3, "a"}, 1},
		{Stamp{3, "a"}, Stamp{3, "a"}, 0},
	}
	for _, tt := range tests {
		if got := tt.a.Compare(tt.b); got != tt.want {
			t.Errorf("%v.Compare(%v) = %d; want %d", tt.a, tt.b, got, tt.want)
		}
		if got := tt.a.Less(tt.b); got != (tt.want < 0) {
			t.Errorf("%v.Less(%v) = %v; want %v", tt.a, tt.b, got, tt.want < 0)
		}
	}
	if got := (Stamp{7, "p1"}).String(); got != "7@p1" {
		t.Errorf("String() = %q; want %q", got, "7@p1")
	}
}
