package clock

import (
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

var hlcEpoch = time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)

func newTestHLC(t testing.TB, src Source, maxOffset time.Duration) *HLC {
	t.Helper()
	h, err := NewHLC(HLCConfig{Source: src, MaxOffset: maxOffset})
	if err != nil {
		t.Fatalf("NewHLC: %v", err)
	}
	return h
}

func ts(t testing.TB, wall time.Time, logical uint16) Timestamp {
	t.Helper()
	x, err := NewTimestamp(wall, logical)
	if err != nil {
		t.Fatalf("NewTimestamp(%v, %d): %v", wall, logical, err)
	}
	return x
}

func TestHLCConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  HLCConfig
		want error
	}{
		{"default", DefaultHLCConfig(), nil},
		{"nil source", HLCConfig{MaxOffset: time.Second}, ErrInvalidConfig},
		{"nil func", HLCConfig{Source: Func(nil), MaxOffset: time.Second}, ErrInvalidConfig},
		{"nil manual", HLCConfig{Source: (*Manual)(nil), MaxOffset: time.Second}, ErrInvalidConfig},
		{"zero offset", HLCConfig{Source: System{}}, ErrInvalidConfig},
		{"negative offset", HLCConfig{Source: System{}, MaxOffset: -time.Second}, ErrInvalidConfig},
	}
	for _, tt := range tests {
		if err := tt.cfg.Validate(); !errors.Is(err, tt.want) {
			t.Errorf("%s: Validate() = %v; want %v", tt.name, err, tt.want)
		}
		if _, err := NewHLC(tt.cfg); !errors.Is(err, tt.want) {
			t.Errorf("%s: NewHLC() error = %v; want %v", tt.name, err, tt.want)
		}
	}
}

// TestHLCRules walks the paper's update rules one event at a time.
func TestHLCRules(t *testing.T) {
	m := NewManual(hlcEpoch)
	h := newTestHLC(t, m, time.Second)
	wall := func(d time.Duration) time.Time { return hlcEpoch.Add(d) }
	tests := []struct {
		name string
		step func() (Timestamp, error)
		want Timestamp
	}{
		{"first event takes physical time", func() (Timestamp, error) { return h.Now(), nil }, ts(t, wall(0), 0)},
		{"same physical time: logical counts", func() (Timestamp, error) { return h.Now(), nil }, ts(t, wall(0), 1)},
		{"physical time moves: logical resets", func() (Timestamp, error) {
			m.Advance(time.Millisecond)
			return h.Now(), nil
		}, ts(t, wall(time.Millisecond), 0)},
		{"remote ahead within offset: adopt its wall, logical+1", func() (Timestamp, error) {
			return h.Update(ts(t, wall(500*time.Millisecond), 7))
		}, ts(t, wall(500*time.Millisecond), 8)},
		{"remote behind: local logical+1", func() (Timestamp, error) {
			return h.Update(ts(t, wall(0), 9))
		}, ts(t, wall(500*time.Millisecond), 9)},
		{"remote same wall, larger logical", func() (Timestamp, error) {
			return h.Update(ts(t, wall(500*time.Millisecond), 20))
		}, ts(t, wall(500*time.Millisecond), 21)},
		{"physical catches up past l", func() (Timestamp, error) {
			m.Advance(time.Second)
			return h.Now(), nil
		}, ts(t, wall(time.Second+time.Millisecond), 0)},
		{"wall clock jumps back an hour: l holds, logical counts", func() (Timestamp, error) {
			m.Advance(-time.Hour)
			return h.Now(), nil
		}, ts(t, wall(time.Second+time.Millisecond), 1)},
		{"receive with physical ahead of l and remote: take physical, logical 0", func() (Timestamp, error) {
			m.Advance(time.Hour + time.Second)
			return h.Update(ts(t, wall(0), 3))
		}, ts(t, wall(2*time.Second+time.Millisecond), 0)},
	}
	for _, tt := range tests {
		got, err := tt.step()
		if err != nil {
			t.Fatalf("%s: unexpected error %v", tt.name, err)
		}
		if got != tt.want {
			t.Errorf("%s: got %v; want %v", tt.name, got, tt.want)
		}
	}
}

func TestHLCUpdateRejectsBeyondMaxOffset(t *testing.T) {
	// The physical clock reads exactly MaxOffset before a multiple of
	// WallResolution, so that a timestamp can sit exactly at the limit.
	edgeWall := hlcEpoch.Truncate(WallResolution)
	m := NewManual(edgeWall.Add(-250 * time.Millisecond))
	h := newTestHLC(t, m, 250*time.Millisecond)
	before := h.Now()
	remote := ts(t, m.Now().Add(time.Second), 0)
	_, err := h.Update(remote)
	if !errors.Is(err, ErrOffsetExceeded) {
		t.Fatalf("Update(%v) error = %v; want ErrOffsetExceeded", remote, err)
	}
	var oe *OffsetError
	if !errors.As(err, &oe) || oe.Remote != remote || oe.MaxOffset != 250*time.Millisecond {
		t.Errorf("Update(%v) error = %#v; want an *OffsetError naming the remote and the limit", remote, err)
	}
	if got := h.Current(); got != before {
		t.Errorf("Current() after rejected Update = %v; want unchanged %v", got, before)
	}
	// One WallResolution beyond the limit is refused; exactly at the limit
	// the timestamp is accepted.
	beyond := ts(t, edgeWall.Add(WallResolution), 0)
	if _, err := h.Update(beyond); !errors.Is(err, ErrOffsetExceeded) {
		t.Errorf("Update(%v) one WallResolution beyond MaxOffset: error %v; want ErrOffsetExceeded", beyond, err)
	}
	edge := ts(t, edgeWall, 0)
	if got := time.Duration(edge.WallTime() - m.Now().UnixNano()); got != 250*time.Millisecond {
		t.Fatalf("test setup: edge timestamp is %v ahead; want exactly 250ms", got)
	}
	if _, err := h.Update(edge); err != nil {
		t.Errorf("Update(%v) at exactly MaxOffset ahead: %v; want success", edge, err)
	}
}

// TestHLCUpdateCannotRatchet sends a chain of timestamps, each within
// MaxOffset of the receiver's own wall part but further ahead of its
// physical clock, which does not move: the offset is measured against the
// physical clock, so only the first is accepted and the clock never ends up
// more than MaxOffset ahead of real time.
func TestHLCUpdateCannotRatchet(t *testing.T) {
	const maxOffset = 100 * time.Millisecond
	m := NewManual(hlcEpoch)
	h := newTestHLC(t, m, maxOffset)
	pt := m.Now()
	accepted := 0
	for i := range 5 {
		remote := ts(t, h.Current().Time().Add(90*time.Millisecond), 0)
		if i == 0 {
			remote = ts(t, pt.Add(90*time.Millisecond), 0)
		}
		if _, err := h.Update(remote); err == nil {
			accepted++
		} else if !errors.Is(err, ErrOffsetExceeded) {
			t.Fatalf("Update(%v): error %v; want nil or ErrOffsetExceeded", remote, err)
		}
		if ahead := h.Current().Time().Sub(pt); ahead > maxOffset {
			t.Fatalf("after %d updates the clock is %v ahead of the physical clock; want ≤ %v", i+1, ahead, maxOffset)
		}
	}
	if accepted != 1 {
		t.Errorf("accepted %d of 5 chained timestamps; want 1 (each later one is more than %v ahead of the physical clock)", accepted, maxOffset)
	}
}

// TestHLCSaturatesAtTheEndOfTime drives a clock to the top of the range
// (year 2262), by local events and by receiving the largest valid
// timestamp: it saturates at the largest packed value instead of issuing a
// timestamp with the top bit set, which UnpackTimestamp would refuse.
func TestHLCSaturatesAtTheEndOfTime(t *testing.T) {
	top, err := UnpackTimestamp(maxPacked)
	if err != nil {
		t.Fatalf("UnpackTimestamp(maxPacked): %v", err)
	}
	valid := func(what string, got, prev Timestamp) {
		t.Helper()
		if _, err := UnpackTimestamp(got.Pack()); err != nil {
			t.Fatalf("%s = %#x; want a valid timestamp: %v", what, got.Pack(), err)
		}
		if got.Less(prev) {
			t.Fatalf("%s = %v after %v; want no step backwards", what, got, prev)
		}
	}

	// Local events: 65,536 share the last wall tick, then the counter has
	// nowhere to carry.
	h := newTestHLC(t, NewManual(maxWallTime), time.Second)
	prev := h.Now()
	for range 1<<logicalBits + 2 {
		got := h.Now()
		valid("Now() at the end of time", got, prev)
		prev = got
	}
	if prev != top {
		t.Errorf("Now() after saturation = %v; want the largest timestamp %v", prev, top)
	}

	// A receive of the largest timestamp.
	h = newTestHLC(t, NewManual(maxWallTime), time.Second)
	before := h.Now()
	got, err := h.Update(top)
	if err != nil {
		t.Fatalf("Update(%v): %v", top, err)
	}
	valid("Update(largest timestamp)", got, before)
	valid("Now() after Update(largest timestamp)", h.Now(), got)
}

// TestHLCMonotonicUnderBackwardsClock drives an HLC with a physical clock
// that jumps randomly forward and backward, mixing in remote updates: every
// timestamp must exceed the previous one and every received one.
func TestHLCMonotonicUnderBackwardsClock(t *testing.T) {
	for seed := range int64(seedCount(20, 500)) {
		rng := rand.New(rand.NewPCG(uint64(seed), 1))
		m := NewManual(hlcEpoch)
		h := newTestHLC(t, m, time.Hour)
		var prev Timestamp
		for i := range 2000 {
			m.Advance(time.Duration(rng.Int64N(int64(2*time.Millisecond))) - time.Millisecond)
			if rng.IntN(50) == 0 {
				m.Advance(-time.Duration(rng.Int64N(int64(time.Minute)))) // NTP step backwards
			}
			var got Timestamp
			if rng.IntN(3) == 0 {
				remote := ts(t, m.Now().Add(time.Duration(rng.Int64N(int64(time.Second)))-time.Second/2), uint16(rng.UintN(1<<16)))
				var err error
				if got, err = h.Update(remote); err != nil {
					t.Fatalf("seed %d event %d: Update(%v): %v", seed, i, remote, err)
				}
				if !remote.Less(got) {
					t.Fatalf("seed %d event %d: Update(%v) = %v; want greater than remote", seed, i, remote, got)
				}
			} else {
				got = h.Now()
			}
			if !prev.Less(got) {
				t.Fatalf("seed %d event %d: %v after %v; want strictly increasing (replay with seed %d)", seed, i, got, prev, seed)
			}
			prev = got
		}
	}
}

// TestHLCLogicalCarry checks that when 65,536 events share one wall tick the
// counter carries into the wall part instead of wrapping.
func TestHLCLogicalCarry(t *testing.T) {
	m := NewManual(hlcEpoch)
	h := newTestHLC(t, m, time.Second)
	first := h.Now()
	var last Timestamp
	for range 1 << 16 {
		last = h.Now()
	}
	if last.WallTime() != first.WallTime()+int64(WallResolution) || last.Logical() != 0 {
		t.Errorf("after 65,537 events at one instant got %v; want wall %d, logical 0", last, first.WallTime()+int64(WallResolution))
	}
}

// TestHLCBoundedSkew simulates nodes whose physical clocks differ by at most
// eps and exchange messages with random delays. The paper's bound
// must hold: l − pt ≤ eps at every node and every event, and with
// MaxOffset = eps no honest message is ever rejected.
func TestHLCBoundedSkew(t *testing.T) {
	const eps = 5 * time.Millisecond
	for seed := range int64(seedCount(30, 1000)) {
		rng := rand.New(rand.NewPCG(uint64(seed), 2))
		const n = 4
		var now time.Duration // true time since hlcEpoch
		skew := make([]time.Duration, n)
		clocks := make([]*HLC, n)
		for i := range n {
			skew[i] = time.Duration(rng.Int64N(int64(eps)))
			clocks[i] = newTestHLC(t, Func(func() time.Time { return hlcEpoch.Add(now + skew[i]) }), eps)
		}
		type msg struct {
			to  int
			at  time.Duration
			val Timestamp
		}
		var inflight []msg
		for ev := range 3000 {
			now += time.Duration(rng.Int64N(int64(200 * time.Microsecond)))
			p := rng.IntN(n)
			var got Timestamp
			switch k := rng.IntN(3); {
			case k == 0 && len(inflight) > 0:
				j := rng.IntN(len(inflight))
				m := inflight[j]
				if m.at > now {
					got = clocks[p].Now()
					break
				}
				inflight = append(inflight[:j], inflight[j+1:]...)
				p = m.to
				var err error
				if got, err = clocks[p].Update(m.val); err != nil {
					t.Fatalf("seed %d event %d: honest message rejected: %v (replay with seed %d)", seed, ev, err, seed)
				}
			case k == 1:
				got = clocks[p].Now()
				delay := time.Duration(rng.Int64N(int64(10 * time.Millisecond)))
				inflight = append(inflight, msg{to: rng.IntN(n), at: now + delay, val: got})
			default:
				got = clocks[p].Now()
			}
			pt := hlcEpoch.Add(now + skew[p]).UnixNano()
			if drift := time.Duration(got.WallTime() - pt); drift > eps {
				t.Fatalf("seed %d event %d: node %d l - pt = %v; want ≤ %v (replay with seed %d)", seed, ev, p, drift, eps, seed)
			}
		}
	}
}

func TestHLCConcurrentNowIsUnique(t *testing.T) {
	h := newTestHLC(t, System{}, time.Second)
	const goroutines, perG = 4, 2000
	out := make([][]Timestamp, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perG {
				out[g] = append(out[g], h.Now())
			}
		}()
	}
	wg.Wait()
	seen := map[Timestamp]bool{}
	for g, r := range out {
		for i, x := range r {
			if i > 0 && !r[i-1].Less(x) {
				t.Fatalf("goroutine %d: %v after %v; want increasing", g, x, r[i-1])
			}
			if seen[x] {
				t.Fatalf("timestamp %v issued twice", x)
			}
			seen[x] = true
		}
	}
}

func TestTimestampPacking(t *testing.T) {
	wall := hlcEpoch.Add(123456789 * time.Nanosecond)
	x := ts(t, wall, 42)
	if got, want := x.WallTime(), wall.UnixNano()&^int64(WallResolution-1); got != want {
		t.Errorf("WallTime() = %d; want %d (rounded down to WallResolution)", got, want)
	}
	if x.Logical() != 42 {
		t.Errorf("Logical() = %d; want 42", x.Logical())
	}
	y, err := UnpackTimestamp(x.Pack())
	if err != nil || y != x {
		t.Errorf("UnpackTimestamp(Pack(%v)) = %v, %v; want %v", x, y, err, x)
	}
	if _, err := UnpackTimestamp(1 << 63); !errors.Is(err, ErrInvalidTimestamp) {
		t.Errorf("UnpackTimestamp(1<<63) error = %v; want ErrInvalidTimestamp", err)
	}
	for _, bad := range []time.Time{time.Unix(-1, 0), time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if _, err := NewTimestamp(bad, 0); !errors.Is(err, ErrInvalidTimestamp) {
			t.Errorf("NewTimestamp(%v) error = %v; want ErrInvalidTimestamp", bad, err)
		}
	}
	if got, want := ts(t, time.Unix(0, 1<<32), 3).String(), "4.294967296,3"; got != want {
		t.Errorf("String() = %q; want %q", got, want)
	}
}

func TestTimestampCompare(t *testing.T) {
	a, b, c := ts(t, hlcEpoch, 5), ts(t, hlcEpoch, 6), ts(t, hlcEpoch.Add(time.Millisecond), 0)
	tests := []struct {
		x, y Timestamp
		want int
	}{
		{a, a, 0}, {a, b, -1}, {b, a, 1}, {b, c, -1}, {c, a, 1}, {Timestamp{}, a, -1},
	}
	for _, tt := range tests {
		if got := tt.x.Compare(tt.y); got != tt.want {
			t.Errorf("%v.Compare(%v) = %d; want %d", tt.x, tt.y, got, tt.want)
		}
		if got, want := tt.x.Less(tt.y), tt.want < 0; got != want {
			t.Errorf("%v.Less(%v) = %v; want %v", tt.x, tt.y, got, want)
		}
		if got, want := tt.x.Pack() < tt.y.Pack(), tt.want < 0; got != want {
			t.Errorf("Pack(%v) < Pack(%v) = %v; want %v (packed order must match)", tt.x, tt.y, got, want)
		}
	}
}

func TestHLCClampsPhysicalClock(t *testing.T) {
	m := NewManual(time.Unix(-100, 0))
	h := newTestHLC(t, m, time.Second)
	if got := h.Now(); got.WallTime() != 0 {
		t.Errorf("Now() with a pre-epoch clock = %v; want wall 0", got)
	}
	m.Set(time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC))
	got := h.Now()
	if got.Pack() > maxPacked {
		t.Errorf("Now() with a clock past 2262 = %#x; want ≤ %#x", got.Pack(), uint64(maxPacked))
	}
	if again := h.Now(); again.Less(got) {
		t.Errorf("Now() after saturation went backwards: %v after %v", again, got)
	}
}

// TestHLCClampsPhysicalClockAtTheEdges reads physical clocks at the edges of
// the range a Timestamp holds: the last second before 2262's limit is read
// as the largest wall time (time.UnixNano would overflow there), the first
// second before 1970 as the epoch.
func TestHLCClampsPhysicalClockAtTheEdges(t *testing.T) {
	lastSecond := int64(maxPacked) / int64(time.Second)
	tests := []struct {
		name     string
		physical time.Time
		wantWall int64
	}{
		{"last second, its final nanosecond", time.Unix(lastSecond, 999_999_999), int64(maxPacked &^ logicalMask)},
		{"last second, past the largest wall time", time.Unix(lastSecond, 900_000_000), int64(maxPacked &^ logicalMask)},
		{"one nanosecond before 1970", time.Unix(0, -1), 0},
		{"a second before 1970", time.Unix(-1, 0), 0},
	}
	for _, tt := range tests {
		h := newTestHLC(t, NewManual(tt.physical), time.Second)
		if got := h.Now(); got.WallTime() != tt.wantWall || got.Pack() > maxPacked {
			t.Errorf("%s: Now() with physical clock %v = packed %#x; want wall %d", tt.name, tt.physical, got.Pack(), tt.wantWall)
		}
	}
}

func TestHLCZeroValue(t *testing.T) {
	var h HLC
	a := h.Now()
	if d := time.Since(a.Time()); d < 0 || d > time.Hour {
		t.Errorf("zero HLC Now() = %v; want about the system time", a)
	}
	if got, want := h.MaxOffset(), DefaultHLCConfig().MaxOffset; got != want {
		t.Errorf("zero HLC MaxOffset() = %v; want %v", got, want)
	}
	far, err := NewTimestamp(time.Now().Add(time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Update(far); !errors.Is(err, ErrOffsetExceeded) {
		t.Errorf("zero HLC Update(an hour ahead) error = %v; want ErrOffsetExceeded", err)
	}
}

// FuzzHLCUpdate feeds arbitrary packed timestamps, as they would arrive off
// the wire, to UnpackTimestamp and Update: no panic, and either a clean
// rejection that leaves the clock unchanged or a result above both the
// remote timestamp and everything issued before.
func FuzzHLCUpdate(f *testing.F) {
	now := ts(f, hlcEpoch, 0).Pack()
	for _, p := range []uint64{0, 1, now, now + 1<<20, now + 1<<40, maxPacked, maxPacked + 1, 1<<64 - 1} {
		f.Add(p, uint8(3))
	}
	f.Fuzz(func(t *testing.T, packed uint64, nows uint8) {
		remote, err := UnpackTimestamp(packed)
		if err != nil {
			if !errors.Is(err, ErrInvalidTimestamp) {
				t.Fatalf("UnpackTimestamp(%#x) error %v; want ErrInvalidTimestamp", packed, err)
			}
			return
		}
		if remote.Pack() != packed {
			t.Fatalf("UnpackTimestamp(%#x).Pack() = %#x", packed, remote.Pack())
		}
		h := newTestHLC(t, NewManual(hlcEpoch), time.Second)
		for range nows % 8 {
			h.Now()
		}
		before := h.Current()
		got, err := h.Update(remote)
		if err != nil {
			if !errors.Is(err, ErrOffsetExceeded) || h.Current() != before {
				t.Fatalf("Update(%v) error %v, clock %v -> %v; want ErrOffsetExceeded and no change", remote, err, before, h.Current())
			}
			return
		}
		if !remote.Less(got) || !before.Less(got) || h.Current() != got {
			t.Fatalf("Update(%v) from %v = %v (Current %v); want above both", remote, before, got, h.Current())
		}
	})
}

// TestSystemWallMatchesTimeNow checks the fast wall-clock read the HLC uses
// for System against time.Now (loosely: this is not a timing assertion, only
// a check that both read the same clock in the same unit).
func TestSystemWallMatchesTimeNow(t *testing.T) {
	a := time.Now().UnixNano()
	w := systemWallNanos()
	b := time.Now().UnixNano()
	if w < a-int64(time.Minute) || w > b+int64(time.Minute) {
		t.Errorf("systemWallNanos() = %d; want about time.Now() (%d … %d)", w, a, b)
	}
}
