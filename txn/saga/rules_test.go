package saga_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/distkit/distkit/txn/saga"
)

// TestSagaRetryPolicy: a failing action is tried 1 + Config.Retries times,
// no more and no fewer, unless its error is Permanent, which turns the saga
// back after the first attempt.
func TestSagaRetryPolicy(t *testing.T) {
	transient, refused := errors.New("timeout"), saga.Permanent(errors.New("no seat left"))
	tests := []struct {
		name      string
		retries   int
		failures  int   // attempts that fail before one succeeds (-1: all fail)
		err       error // what a failing attempt returns
		wantCalls int
		want      saga.Outcome
	}{
		{"no failure", 2, 0, transient, 1, saga.Done},
		{"fails Retries times, then succeeds", 2, 2, transient, 3, saga.Done},
		{"always fails", 2, -1, transient, 3, saga.Compensated},
		{"no retries, always fails", 0, -1, transient, 1, saga.Compensated},
		{"permanent", 2, -1, refused, 1, saga.Compensated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			sg := saga.Saga{Name: "one", Steps: []saga.Step{{Name: "book", Action: func(context.Context, string) error {
				calls++
				if tt.failures < 0 || calls <= tt.failures {
					return tt.err
				}
				return nil
			}}}}
			cfg := fastConfig()
			cfg.Retries = tt.retries
			r := newRunner(t, saga.NewMemoryLog(), cfg, sg)
			o, err := r.Run(context.Background(), "one", "x")
			if err != nil || o != tt.want || calls != tt.wantCalls {
				t.Errorf("Run() = %v, %v after %d calls; want %v after %d", o, err, calls, tt.want, tt.wantCalls)
			}
		})
	}
}

// TestSagaCancelledActionStaysRunning: a Run whose context ends while an
// action fails returns the context's error and leaves the saga running in
// the log (it is not turned back); a later Run continues it.
func TestSagaCancelledActionStaysRunning(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	compensated := 0
	sg := saga.Saga{Name: "one", Steps: []saga.Step{{Name: "book",
		Action: func(actx context.Context, _ string) error {
			if actx == ctx {
				cancel()
				return errors.New("interrupted")
			}
			return nil
		},
		Compensate: func(context.Context, string) error { compensated++; return nil }}}}
	r := newRunner(t, saga.NewMemoryLog(), fastConfig(), sg)
	if o, err := r.Run(ctx, "one", "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run(cancelled) = %v, %v; want context.Canceled", o, err)
	}
	if o, ok := r.Status("x"); o != saga.Running || !ok || r.Cause("x") != "" || compensated != 0 {
		t.Fatalf("after cancel: Status() = %v, %v, Cause() = %q, %d compensations; want running, not turned back",
			o, ok, r.Cause("x"), compensated)
	}
	if o, err := r.Run(context.Background(), "one", "x"); err != nil || o != saga.Done {
		t.Fatalf("Run() again = %v, %v; want done", o, err)
	}
}

// TestSagaCancelledCompensationStaysRunning: a compensation is retried
// only while the context lasts; once it ends Run returns its error and the
// saga stays in the log, to be compensated by a later Run.
func TestSagaCancelledCompensationStaysRunning(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	sg := saga.Saga{Name: "two", Steps: []saga.Step{
		{Name: "a", Action: func(context.Context, string) error { return nil },
			Compensate: func(context.Context, string) error {
				calls++
				if calls < 3 {
					cancel()
					return errors.New("unreachable")
				}
				return nil
			}},
		{Name: "b", Action: func(context.Context, string) error { return saga.Permanent(errors.New("no")) }},
	}}
	r := newRunner(t, saga.NewMemoryLog(), fastConfig(), sg)
	if o, err := r.Run(ctx, "two", "x"); !errors.Is(err, context.Canceled) || calls != 1 {
		t.Fatalf("Run(cancelled) = %v, %v after %d compensation calls; want context.Canceled after 1", o, err, calls)
	}
	if o, _ := r.Status("x"); o != saga.Running {
		t.Fatalf("Status() = %v; want running", o)
	}
	if o, err := r.Run(context.Background(), "two", "x"); err != nil || o != saga.Compensated {
		t.Fatalf("Run() again = %v, %v; want compensated", o, err)
	}
}

// TestSagaCompensatesOnlyStepsThatRan: a saga that fails at step i
// compensates steps i down to 0, each once, and never a later step.
func TestSagaCompensatesOnlyStepsThatRan(t *testing.T) {
	for failAt := range 4 {
		var mu sync.Mutex
		acted, comp := map[int]int{}, []int{}
		var steps []saga.Step
		for i := range 4 {
			steps = append(steps, saga.Step{Name: "s",
				Action: func(context.Context, string) error {
					mu.Lock()
					defer mu.Unlock()
					acted[i]++
					if i == failAt {
						return saga.Permanent(errors.New("refused"))
					}
					return nil
				},
				Compensate: func(context.Context, string) error {
					mu.Lock()
					defer mu.Unlock()
					comp = append(comp, i)
					return nil
				}})
		}
		r := newRunner(t, saga.NewMemoryLog(), fastConfig(), saga.Saga{Name: "four", Steps: steps})
		o, err := r.Run(context.Background(), "four", "x")
		var want []int
		for j := failAt; j >= 0; j-- {
			want = append(want, j)
		}
		if err != nil || o != saga.Compensated || !slices.Equal(comp, want) || len(acted) != failAt+1 {
			t.Errorf("fail at %d: Run() = %v, %v; compensated %v, acted %v; want compensated %v, steps 0..%d acted",
				failAt, o, err, comp, acted, want, failAt)
		}
	}
}

// TestSagaOneRunPerID: while a Run drives a saga ID, another Run of it
// returns ErrRunning; an ID the log holds for another saga is refused.
func TestSagaOneRunPerID(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	sg := saga.Saga{Name: "slow", Steps: []saga.Step{{Name: "wait", Action: func(context.Context, string) error {
		if calls.Add(1) == 1 { // the first Run waits; a second one (a bug) returns at once
			close(started)
			<-release
		}
		return nil
	}}}}
	other := saga.Saga{Name: "other", Steps: []saga.Step{{Name: "x", Action: func(context.Context, string) error { return nil }}}}
	r := newRunner(t, saga.NewMemoryLog(), fastConfig(), sg, other)
	done := make(chan error, 1) // the first Run's result, read once
	go func() {
		_, err := r.Run(context.Background(), "slow", "x")
		done <- err
	}()
	<-started
	if _, err := r.Run(context.Background(), "slow", "x"); !errors.Is(err, saga.ErrRunning) {
		t.Errorf("second concurrent Run() = %v; want ErrRunning", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("first Run() = %v", err)
	}
	if _, err := r.Run(context.Background(), "other", "x"); !errors.Is(err, saga.ErrInvalid) {
		t.Errorf("Run(other saga, same ID) = %v; want ErrInvalid", err)
	}
}

// onceFailingLog fails its n-th append (counting from 0) and no other.
type onceFailingLog struct {
	saga.Log
	// mu guards n.
	mu sync.Mutex
	n  int
}

func (l *onceFailingLog) Append(evs ...saga.Event) error {
	l.mu.Lock()
	n := l.n
	l.n--
	l.mu.Unlock()
	if n == 0 {
		return errCrash
	}
	return l.Log.Append(evs...)
}

// TestSagaStoppedRunnerRefuses: once an append failed the runner stops,
// even if the log works again: every later Run returns ErrStopped without
// acting.
func TestSagaStoppedRunnerRefuses(t *testing.T) {
	acted := 0
	sg := saga.Saga{Name: "one", Steps: []saga.Step{{Name: "a", Action: func(context.Context, string) error { acted++; return nil }}}}
	r := newRunner(t, &onceFailingLog{Log: saga.NewMemoryLog(), n: 0}, fastConfig(), sg)
	if _, err := r.Run(context.Background(), "one", "x"); !errors.Is(err, saga.ErrStopped) {
		t.Fatalf("Run() = %v; want ErrStopped", err)
	}
	if _, err := r.Run(context.Background(), "one", "y"); !errors.Is(err, saga.ErrStopped) || acted != 0 {
		t.Fatalf("Run() after the failure = %v after %d actions; want ErrStopped and none", err, acted)
	}
}

// TestSagaReplayRefusesDisorder: a runner refuses a log whose events do not
// follow the saga's order (ErrMalformed), instead of resuming from a state
// no run could have reached.
func TestSagaReplayRefusesDisorder(t *testing.T) {
	start := saga.Event{Kind: saga.EvStart, ID: "x", Name: "trip"}
	done := func(i int) saga.Event { return saga.Event{Kind: saga.EvStepDone, ID: "x", Step: i} }
	back := func(i int) saga.Event { return saga.Event{Kind: saga.EvTurnBack, ID: "x", Step: i, Reason: "no"} }
	comp := func(i int) saga.Event { return saga.Event{Kind: saga.EvCompensated, ID: "x", Step: i} }
	tests := []struct {
		name string
		evs  []saga.Event
	}{
		{"started twice", []saga.Event{start, start}},
		{"step before its start", []saga.Event{done(0)}},
		{"step 1 before step 0", []saga.Event{start, done(1)}},
		{"step 0 twice", []saga.Event{start, done(0), done(0)}},
		{"turned back at another step", []saga.Event{start, done(0), back(0)}},
		{"compensated out of order", []saga.Event{start, done(0), done(1), back(2), comp(1)}},
		{"compensated twice", []saga.Event{start, done(0), back(1), comp(1), comp(1)}},
		{"compensated without turning back", []saga.Event{start, done(0), comp(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := saga.NewMemoryLog()
			if err := l.Append(tt.evs...); err != nil {
				t.Fatal(err)
			}
			if _, err := saga.NewRunner(l, fastConfig()); !errors.Is(err, saga.ErrMalformed) {
				t.Errorf("NewRunner(%v) = %v; want ErrMalformed", tt.evs, err)
			}
		})
	}
}

// TestUnmarshalEventRejects: corrupt events are refused with ErrMalformed,
// never decoded into something else and never a panic.
func TestUnmarshalEventRejects(t *testing.T) {
	good, err := saga.Event{Kind: saga.EvEnd, ID: "trip-1", Outcome: saga.Done}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"outcome beyond compensated", mutate(func(b []byte) []byte { b[2] = byte(saga.Compensated) + 1; return b })},
		{"kind 0", mutate(func(b []byte) []byte { b[1] = 0; return b })},
		{"truncated ID", good[:len(good)-4]},
		{"ID length past the end", mutate(func(b []byte) []byte { b[4] = 100; return b[:len(b)-2] })},
		{"trailing byte", append(append([]byte(nil), good...), 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := unmarshalEventNoPanic(tt.b)
			if !errors.Is(err, saga.ErrMalformed) {
				t.Errorf("UnmarshalEvent(%x) = %+v, %v; want ErrMalformed", tt.b, e, err)
			}
		})
	}
}

// unmarshalEventNoPanic turns a panic of the decoder into an error that
// is not ErrMalformed, so that it fails the test by an assertion.
func unmarshalEventNoPanic(b []byte) (e saga.Event, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = errors.New("panic")
		}
	}()
	return saga.UnmarshalEvent(b)
}

// newRunner returns a Runner over log with cfg and the sagas registered.
func newRunner(t *testing.T, log saga.Log, cfg saga.Config, sagas ...saga.Saga) *saga.Runner {
	t.Helper()
	r, err := saga.NewRunner(log, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, sg := range sagas {
		if err := r.Register(sg); err != nil {
			t.Fatal(err)
		}
	}
	return r
}
