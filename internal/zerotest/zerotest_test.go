package zerotest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// recorder is a testing.TB that keeps the failures instead of reporting
// them, so the sweep's own verdicts can be checked.
type recorder struct {
	testing.TB
	failures []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

// guarded returns errors for a nil receiver, as the package promise asks.
type guarded struct{ n int }

func (g *guarded) Get() (int, error) {
	if g == nil {
		return 0, errors.New("nil")
	}
	return g.n, nil
}

// careless dereferences a nil receiver and blocks forever on a zero one.
type careless struct{ c chan int }

func (c *careless) Get() int                         { return len(c.c) }
func (c *careless) Each(fn func(int) bool, _ ...int) { fn(0) }

func (c *careless) Wait(ctx context.Context) int {
	select {
	case v := <-c.c: // a nil channel on a zero careless: blocks until ctx ends
		return v
	case <-ctx.Done():
		return 0
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSweepReportsPanicsAndHangs(t *testing.T) {
	defer func(old time.Duration) { hangLimit = old }(hangLimit)
	hangLimit = 50 * time.Millisecond // Wait on a zero careless blocks until the sweep's context ends

	r := &recorder{TB: t}
	Sweep(r, (*guarded)(nil), new(guarded))
	if len(r.failures) != 0 {
		t.Fatalf("Sweep of a guarded type reported %q; want nothing", r.failures)
	}

	r = &recorder{TB: t}
	Sweep(r, (*careless)(nil))
	got := strings.Join(r.failures, "\n")
	for _, want := range []string{"(*zerotest.careless).Get on a nil pointer panicked", "(*zerotest.careless).Wait on a nil pointer panicked"} {
		if !strings.Contains(got, want) {
			t.Errorf("Sweep failures %q lack %q", got, want)
		}
	}

	r = &recorder{TB: t}
	Sweep(r, new(careless))
	if got := strings.Join(r.failures, "\n"); !strings.Contains(got, "(*zerotest.careless).Wait on a zero value did not return") {
		t.Errorf("Sweep of a zero careless reported %q; want Wait reported as hung", got)
	}

	r = &recorder{TB: t}
	SweepNonNil(r, NonNil{"(*zerotest.careless).Get": true, "(*zerotest.careless).Wait": true}, (*careless)(nil))
	if len(r.failures) != 0 {
		t.Errorf("SweepNonNil called the NonNil methods through a nil pointer: %q", r.failures)
	}
}
