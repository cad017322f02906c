package clock

import (
	"cmp"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
)

// A hybrid logical clock (HLC; Kulkarni, Demirbas et al., "Logical
// Physical Clocks", OPODIS 2014) stamps events with the pair (l, c): l is
// the largest wall time the node has heard of and c a logical counter that
// orders events sharing the same l. Like a Lamport clock it satisfies the
// clock condition (e → f ⇒ hlc(e) < hlc(f)); unlike one, l stays within
// the clock skew ε of physical time, so timestamps can be read as dates and
// used for snapshot reads, TTLs and bounded-staleness checks. CockroachDB's
// hlc package popularised the design, together with the rule that a remote
// timestamp further ahead than a maximum offset is rejected instead of
// dragging the local clock forward.
//
// This implementation keeps the whole state in 64 bits, as the paper
// suggests (48 bits of l and 16 bits of c, the shape of an NTP timestamp):
// l is a wall time in nanoseconds rounded down to a multiple of
// WallResolution (65.536 µs), and c lives in the 16 low bits freed by the
// rounding. The packed value is the timestamp: comparing timestamps is
// comparing integers, and the clock advances with one compare-and-swap.

// WallResolution is the granularity of a Timestamp's wall time: the packed
// form keeps wall nanoseconds with the low 16 bits cleared.
const WallResolution = time.Duration(1 << logicalBits)

const (
	logicalBits = 16
	logicalMask = 1<<logicalBits - 1
	// maxPacked is the largest valid packed timestamp: the top bit is clear
	// so the wall time fits an int64 (Unix nanoseconds, up to year 2262).
	maxPacked = 1<<63 - 1
)

// The range of wall times a Timestamp can hold.
var (
	unixEpoch   = time.Unix(0, 0)
	maxWallTime = time.Unix(0, maxPacked)
)

// Timestamp is a hybrid logical clock timestamp: a wall time (rounded down
// to WallResolution) and a logical counter. The zero Timestamp is smaller
// than every timestamp an HLC issues. Timestamps are small values; copy
// them freely and compare them with Compare (or ==).
type Timestamp struct {
	packed uint64 // wall nanoseconds &^ logicalMask | logical
}

// NewTimestamp returns the timestamp with wall time wall (rounded down to
// WallResolution) and logical counter logical. It returns an error wrapping
// ErrInvalidTimestamp if wall is before the Unix epoch or after 2262.
func NewTimestamp(wall time.Time, logical uint16) (Timestamp, error) {
	if wall.Before(unixEpoch) || wall.After(maxWallTime) {
		return Timestamp{}, fmt.Errorf("%w: wall time %v outside 1970–2262", ErrInvalidTimestamp, wall)
	}
	return Timestamp{packed: uint64(wall.UnixNano())&^logicalMask | uint64(logical)}, nil
}

// UnpackTimestamp returns the timestamp whose packed form is p. It returns
// an error wrapping ErrInvalidTimestamp if the top bit of p is set, which no
// Pack result ever has.
func UnpackTimestamp(p uint64) (Timestamp, error) {
	if p > maxPacked {
		return Timestamp{}, fmt.Errorf("%w: packed value %#x has the top bit set", ErrInvalidTimestamp, p)
	}
	return Timestamp{packed: p}, nil
}

// Pack returns the 64-bit form of t: wall nanoseconds in the high 48 bits
// (rounded to WallResolution), the logical counter in the low 16. Packed
// timestamps order like timestamps, so they can be compared, stored in a
// signed or unsigned 64-bit column, or encoded big-endian as sortable keys.
func (t Timestamp) Pack() uint64 { return t.packed }

// WallTime returns the wall-time part in Unix nanoseconds, a multiple of
// WallResolution.
func (t Timestamp) WallTime() int64 { return int64(t.packed &^ logicalMask) }

// Logical returns the logical counter.
func (t Timestamp) Logical() uint16 { return uint16(t.packed & logicalMask) }

// Time returns the wall-time part as a time.Time.
func (t Timestamp) Time() time.Time { return time.Unix(0, t.WallTime()) }

// IsZero reports whether t is the zero Timestamp.
func (t Timestamp) IsZero() bool { return t.packed == 0 }

// Compare returns -1 if t is earlier than o, +1 if later and 0 if equal:
// wall times first, then logical counters.
func (t Timestamp) Compare(o Timestamp) int { return cmp.Compare(t.packed, o.packed) }

// Less reports whether t is earlier than o.
func (t Timestamp) Less(o Timestamp) bool { return t.packed < o.packed }

// String formats t as "seconds.nanoseconds,logical", for example
// "1764115200.000065536,3".
func (t Timestamp) String() string {
	w := t.WallTime()
	ns := strconv.FormatInt(w%1e9, 10)
	return strconv.FormatInt(w/1e9, 10) + "." + "000000000"[len(ns):] + ns + "," + strconv.FormatUint(uint64(t.Logical()), 10)
}

// HLCConfig configures a hybrid logical clock.
type HLCConfig struct {
	// Source reads the node's physical clock. Required. With System the
	// HLC reads only the wall clock (not also the monotonic clock, as
	// time.Now does), which halves the cost of a timestamp on linux/amd64.
	Source Source
	// MaxOffset is the largest clock skew the deployment tolerates between
	// any two nodes. Update rejects a remote timestamp whose wall time is
	// more than MaxOffset ahead of the local physical clock, so one node
	// with a runaway clock cannot push everyone's timestamps into the
	// future. Must be positive.
	MaxOffset time.Duration
}

// DefaultHLCConfig returns a configuration reading the system clock with
// CockroachDB's default maximum offset of 500 ms.
func DefaultHLCConfig() HLCConfig {
	return HLCConfig{Source: System{}, MaxOffset: 500 * time.Millisecond}
}

// Validate reports whether the configuration is usable.
func (c HLCConfig) Validate() error {
	switch src := c.Source.(type) {
	case nil:
		return fmt.Errorf("%w: HLCConfig.Source is nil", ErrInvalidConfig)
	case Func:
		if src == nil {
			return fmt.Errorf("%w: HLCConfig.Source is a nil Func", ErrInvalidConfig)
		}
	case *Manual:
		if src == nil {
			return fmt.Errorf("%w: HLCConfig.Source is a nil *Manual", ErrInvalidConfig)
		}
	}
	if c.MaxOffset <= 0 {
		return fmt.Errorf("%w: HLCConfig.MaxOffset must be positive, got %v", ErrInvalidConfig, c.MaxOffset)
	}
	return nil
}

// OffsetError is the error HLC.Update returns for a remote timestamp too
// far ahead of the local clock. It wraps ErrOffsetExceeded.
type OffsetError struct {
	Remote    Timestamp     // the rejected timestamp
	Physical  time.Time     // the local physical clock when it was rejected
	MaxOffset time.Duration // the configured limit
}

// Error describes how far ahead the remote timestamp was.
func (e *OffsetError) Error() string {
	ahead := time.Duration(e.Remote.WallTime() - e.Physical.UnixNano())
	return fmt.Sprintf("%v: remote %v is %v ahead of the local clock, more than the maximum offset %v",
		ErrOffsetExceeded, e.Remote, ahead, e.MaxOffset)
}

// Unwrap returns ErrOffsetExceeded.
func (e *OffsetError) Unwrap() error { return ErrOffsetExceeded }

// HLC is a hybrid logical clock. Create one with NewHLC; the zero value is
// also usable and behaves like NewHLC(DefaultHLCConfig()): the system clock
// and a 500 ms maximum offset.
//
// An HLC is safe for concurrent use and lock-free: each call reads the
// physical clock once and publishes the new state with a compare-and-swap.
// Its timestamps never go backwards, even when the physical clock does; the
// wall part then stays put while the logical counter advances. If 65,536
// events share one wall tick the counter carries into the wall part, moving
// it one WallResolution ahead of the physical clock — harmless, and only
// reachable at over a billion events per second.
//
// The state lives in memory. A node that restarts must not issue
// timestamps below those it issued before: either wait out MaxOffset before
// serving (CockroachDB's approach) or persist an upper bound and pass it to
// Update after NewHLC.
type HLC struct {
	source    Source        // nil means System, read through systemWallNanos
	maxOffset int64         // nanoseconds
	last      atomic.Uint64 // packed form of the latest timestamp issued
}

// NewHLC returns a hybrid logical clock, or an error wrapping
// ErrInvalidConfig if cfg is invalid.
func NewHLC(cfg HLCConfig) (*HLC, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &HLC{source: cfg.Source, maxOffset: int64(cfg.MaxOffset)}
	if _, ok := cfg.Source.(System); ok {
		h.source = nil // take the fast path in physical
	}
	return h, nil
}

// physical reads the physical clock as Unix nanoseconds, clamped to the
// range a Timestamp can hold.
func (h *HLC) physical() int64 {
	if h.source == nil {
		// The system clock (NewHLC stores nil for System, and the zero HLC
		// has nil): read only the wall clock, which is all an HLC needs.
		return clampWall(systemWallNanos())
	}
	now := h.source.Now()
	// Range-check the seconds first: UnixNano is undefined outside
	// 1678–2262, and Unix is cheaper than comparing time.Times.
	switch sec := now.Unix(); {
	case sec < 0:
		return 0
	case sec >= maxPacked/int64(time.Second):
		return maxPacked
	}
	return now.UnixNano()
}

func clampWall(ns int64) int64 { return max(ns, 0) }

// advance moves the state to max(last+1, floor), the paper's rules in
// packed form: when the physical time (or a remote l) is ahead, l jumps to
// it and c resets to 0; otherwise l stays and c counts up, carrying into l
// on overflow.
func (h *HLC) advance(floor uint64) Timestamp {
	for {
		old := h.last.Load()
		if old >= maxPacked { // year 2262: saturate rather than wrap
			return Timestamp{packed: old}
		}
		next := max(old+1, floor)
		if h.last.CompareAndSwap(old, next) {
			return Timestamp{packed: next}
		}
	}
}

// Now returns a timestamp for a local or send event (the paper's "send or
// local event" rule): strictly greater than every timestamp this clock has
// issued or received.
func (h *HLC) Now() Timestamp {
	pt := h.physical()
	return h.advance(uint64(pt) &^ logicalMask)
}

// Update records the receipt of a message stamped remote and returns the
// receive event's timestamp, strictly greater than both remote and every
// timestamp issued so far (the paper's "receive event of message m" rule).
//
// If remote's wall time is more than MaxOffset ahead of the local physical
// clock, Update returns an *OffsetError (wrapping ErrOffsetExceeded) and
// leaves the clock unchanged: either that node's clock or ours is broken,
// and adopting its time would break the bound l − pt ≤ ε for every node
// that hears from us.
func (h *HLC) Update(remote Timestamp) (Timestamp, error) {
	if h == nil {
		return Timestamp{}, fmt.Errorf("%w: nil *HLC (its zero value is ready to use)", ErrInvalidConfig)
	}
	pt := h.physical()
	if remote.WallTime()-pt > h.maxOffsetNanos() {
		return Timestamp{}, &OffsetError{Remote: remote, Physical: time.Unix(0, pt), MaxOffset: h.MaxOffset()}
	}
	floor := uint64(pt) &^ logicalMask
	if remote.packed < maxPacked {
		floor = max(floor, remote.packed+1)
	} else {
		floor = maxPacked
	}
	return h.advance(floor), nil
}

// Current returns the latest timestamp issued or received, without
// recording an event. It is the zero Timestamp before the first event.
// A nil *HLC reads as a clock that has issued nothing.
func (h *HLC) Current() Timestamp {
	if h == nil {
		return Timestamp{}
	}
	return Timestamp{packed: h.last.Load()}
}

// MaxOffset returns the configured maximum clock offset.
// A nil *HLC reports the default.
func (h *HLC) MaxOffset() time.Duration {
	if h == nil {
		return DefaultHLCConfig().MaxOffset
	}
	return time.Duration(h.maxOffsetNanos())
}

func (h *HLC) maxOffsetNanos() int64 {
	if h.maxOffset == 0 { // the zero HLC
		return int64(DefaultHLCConfig().MaxOffset)
	}
	return h.maxOffset
}
