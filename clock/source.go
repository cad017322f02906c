package clock

import (
	"sync"
	"time"
)

// Source tells the wall time. Everything in distkit that needs the time of
// day takes a Source, so tests can substitute a Manual clock.
//
// Implementations are safe for concurrent use.
type Source interface {
	// Now returns the current time.
	Now() time.Time
}

// System is the Source backed by the operating system's clock (time.Now).
// Its zero value is ready to use.
type System struct{}

// Now returns time.Now().
func (System) Now() time.Time { return time.Now() }

// Manual is a Source that only moves when told to. It is meant for tests.
// It is safe for concurrent use.
type Manual struct {
	mu  sync.Mutex // guards now
	now time.Time
}

// NewManual returns a Manual clock reading start.
func NewManual(start time.Time) *Manual { return &Manual{now: start} }

// Now returns the clock's current reading (the zero time for a nil
// *Manual).
func (m *Manual) Now() time.Time {
	if m == nil {
		return time.Time{}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

// Advance moves the clock forward by d (or backward, if d is negative, to
// model a wall clock that jumps back) and returns the new reading.
func (m *Manual) Advance(d time.Duration) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.now = m.now.Add(d)
	return m.now
}

// Set moves the clock to t, which may be earlier than its current reading.
func (m *Manual) Set(t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.now = t
}

var (
	_ Source = System{}
	_ Source = (*Manual)(nil)
)

// Func adapts a plain function to a Source, for callers that already have a
// time function (for example a simulator's virtual clock). The function must
// be safe for concurrent use if the Source is shared between goroutines.
type Func func() time.Time

// Now calls f.
func (f Func) Now() time.Time { return f() }

var _ Source = Func(nil)
