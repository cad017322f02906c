package saga_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/distkit/distkit/idempotency"
	"github.com/distkit/distkit/txn/saga"
)

// service is a remote service whose handlers sit behind a Barrier: net
// counts, per saga and step, actions applied minus compensations applied;
// calls counts how often the business code itself ran.
type service struct {
	b *saga.Barrier
	// mu guards net, calls and failStep.
	mu    sync.Mutex
	net   map[string]int
	calls map[string]int
	fail  map[int]error // step -> error its action returns
}

func newService(t testing.TB, now func() time.Time) *service {
	t.Helper()
	st, err := idempotency.NewMemoryStore(idempotency.DefaultMemoryConfig())
	if err != nil {
		t.Fatal(err)
	}
	b, err := saga.NewBarrier(st, time.Hour, time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	return &service{b: b, net: map[string]int{}, calls: map[string]int{}, fail: map[int]error{}}
}

func key(id string, step int) string { return fmt.Sprintf("%s/%d", id, step) }

func (s *service) action(ctx context.Context, id string, step int) error {
	return s.b.Action(ctx, id, step, func(context.Context) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := s.fail[step]; err != nil {
			return err
		}
		s.net[key(id, step)]++
		s.calls[key(id, step)+"/a"]++
		return nil
	})
}

func (s *service) compensate(ctx context.Context, id string, step int) error {
	return s.b.Compensate(ctx, id, step, func(context.Context) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.net[key(id, step)]--
		s.calls[key(id, step)+"/c"]++
		return nil
	})
}

// trip is the textbook saga: book a flight, a hotel and a car.
func trip(s *service, order *[]string) saga.Saga {
	var mu sync.Mutex
	note := func(what string) {
		mu.Lock()
		*order = append(*order, what)
		mu.Unlock()
	}
	var steps []saga.Step
	for i, name := range []string{"flight", "hotel", "car"} {
		steps = append(steps, saga.Step{Name: name,
			Action: func(ctx context.Context, id string) error {
				note("book " + name)
				return s.action(ctx, id, i)
			},
			Compensate: func(ctx context.Context, id string) error {
				note("cancel " + name)
				return s.compensate(ctx, id, i)
			}})
	}
	return saga.Saga{Name: "trip", Steps: steps}
}

func fastConfig() saga.Config {
	cfg := saga.DefaultConfig()
	cfg.Backoff = 0
	return cfg
}

// checkInvariant: the saga ended fully done (every step applied once) or
// fully compensated (nothing left applied), and no business call ran twice.
func checkInvariant(t *testing.T, s *service, id string, o saga.Outcome, steps int) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range steps {
		want := 0
		if o == saga.Done {
			want = 1
		}
		if got := s.net[key(id, i)]; got != want {
			t.Errorf("saga %s ended %v; step %d applied %d times net; want %d", id, o, i, got, want)
		}
	}
	for k, n := range s.calls {
		if n > 1 {
			t.Errorf("%s ran %d times; want at most once", k, n)
		}
	}
}

func TestSagaDone(t *testing.T) {
	s := newService(t, nil)
	var order []string
	r, err := saga.NewRunner(saga.NewMemoryLog(), fastConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Register(trip(s, &order)); err != nil {
		t.Fatal(err)
	}
	o, err := r.Run(context.Background(), "trip", "t1")
	if err != nil || o != saga.Done {
		t.Fatalf("Run() = %v, %v; want done", o, err)
	}
	checkInvariant(t, s, "t1", o, 3)
	if o2, err := r.Run(context.Background(), "trip", "t1"); err != nil || o2 != saga.Done || len(order) != 3 {
		t.Fatalf("Run() again = %v, %v after %v; want done without acting again", o2, err, order)
	}
}

// TestSagaCompensatesInReverse: the car cannot be booked; the hotel and
// the flight are cancelled, in that order (and the car's own, null,
// compensation first).
func TestSagaCompensatesInReverse(t *testing.T) {
	s := newService(t, nil)
	s.fail[2] = saga.Permanent(errors.New("no car left"))
	var order []string
	r, _ := saga.NewRunner(saga.NewMemoryLog(), fastConfig())
	r.Register(trip(s, &order))
	o, err := r.Run(context.Background(), "trip", "t1")
	if err != nil || o != saga.Compensated {
		t.Fatalf("Run() = %v, %v; want compensated", o, err)
	}
	want := []string{"book flight", "book hotel", "book car", "cancel car", "cancel hotel", "cancel flight"}
	if !slices.Equal(order, want) {
		t.Errorf("calls = %v; want %v", order, want)
	}
	if c := r.Cause("t1"); c == "" {
		t.Errorf("Cause() is empty; want the car's failure")
	}
	checkInvariant(t, s, "t1", o, 3)
}

// TestSagaForwardRecovery: a transient failure is retried and the saga
// goes on.
func TestSagaForwardRecovery(t *testing.T) {
	s := newService(t, nil)
	fails := 2
	sg := saga.Saga{Name: "one", Steps: []saga.Step{{Name: "flaky", Action: func(ctx context.Context, id string) error {
		if fails > 0 {
			fails--
			return errors.New("timeout")
		}
		return s.action(ctx, id, 0)
	}, Compensate: func(ctx context.Context, id string) error { return s.compensate(ctx, id, 0) }}}}
	r, _ := saga.NewRunner(saga.NewMemoryLog(), fastConfig())
	r.Register(sg)
	if o, err := r.Run(context.Background(), "one", "x"); err != nil || o != saga.Done {
		t.Fatalf("Run() = %v, %v; want done after two retries", o, err)
	}
	checkInvariant(t, s, "x", saga.Done, 1)
}

// crashingLog is a Log that "crashes" once n appends have succeeded:
// that append and every later one fail without writing.
type crashingLog struct {
	saga.Log
	// mu guards n.
	mu sync.Mutex
	n  int
}

var errCrash = errors.New("crash")

func (l *crashingLog) Append(evs ...saga.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == 0 {
		return errCrash
	}
	l.n--
	return l.Log.Append(evs...)
}

// TestSagaLogCrashMatrix crashes the runner before every append of the
// saga log (so also between an action and the record of it), for a saga
// that completes and one whose last step fails, then resumes with a new
// runner on what the log kept: every saga ends fully done or fully
// compensated, and no business call runs twice (the barrier absorbs the
// repeated actions and compensations).
func TestSagaLogCrashMatrix(t *testing.T) {
	for _, failCar := range []bool{false, true} {
		for crashAt := 0; crashAt <= 8; crashAt++ {
			t.Run(fmt.Sprintf("failCar=%v/crashAt=%d", failCar, crashAt), func(t *testing.T) {
				s := newService(t, nil)
				if failCar {
					s.fail[2] = saga.Permanent(errors.New("no car left"))
				}
				var order []string
				mem := saga.NewMemoryLog()
				r1, _ := saga.NewRunner(&crashingLog{Log: mem, n: crashAt}, fastConfig())
				r1.Register(trip(s, &order))
				o, err := r1.Run(context.Background(), "trip", "t1")
				if err == nil {
					checkInvariant(t, s, "t1", o, 3)
					return // the saga ended before the crash point
				}
				if !errors.Is(err, saga.ErrStopped) {
					t.Fatalf("Run() = %v; want ErrStopped", err)
				}
				r2, err := saga.NewRunner(mem, fastConfig())
				if err != nil {
					t.Fatal(err)
				}
				r2.Register(trip(s, &order))
				outs, err := r2.Resume(context.Background())
				if err != nil {
					t.Fatalf("Resume() = %v", err)
				}
				o, ok := outs["t1"]
				if crashAt == 0 {
					if ok {
						t.Fatalf("Resume() ran t1 although its start was never logged")
					}
					return
				}
				want := saga.Done
				if failCar {
					want = saga.Compensated
				}
				if o != want {
					t.Fatalf("resumed outcome = %v; want %v", o, want)
				}
				checkInvariant(t, s, "t1", o, 3)
			})
		}
	}
}

// TestSagaFileLogResume: a FileLog keeps the saga across a runner restart.
func TestSagaFileLogResume(t *testing.T) {
	dir := t.TempDir()
	s := newService(t, nil)
	var order []string
	l, err := saga.OpenFileLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	r1, _ := saga.NewRunner(&crashingLog{Log: l, n: 2}, fastConfig()) // start, flight
	r1.Register(trip(s, &order))
	if _, err := r1.Run(context.Background(), "trip", "t1"); !errors.Is(err, saga.ErrStopped) {
		t.Fatalf("Run() = %v; want ErrStopped", err)
	}
	l.Close()
	l, err = saga.OpenFileLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r2, err := saga.NewRunner(l, fastConfig())
	if err != nil {
		t.Fatal(err)
	}
	r2.Register(trip(s, &order))
	if outs, err := r2.Resume(context.Background()); err != nil || outs["t1"] != saga.Done {
		t.Fatalf("Resume() = %v, %v; want t1 done", outs, err)
	}
	checkInvariant(t, s, "t1", saga.Done, 3)
}

func TestSagaBadInput(t *testing.T) {
	if _, err := saga.NewRunner(nil, saga.DefaultConfig()); !errors.Is(err, saga.ErrInvalid) {
		t.Errorf("NewRunner(nil) = %v; want ErrInvalid", err)
	}
	r, _ := saga.NewRunner(saga.NewMemoryLog(), saga.DefaultConfig())
	if err := r.Register(saga.Saga{Name: "x"}); !errors.Is(err, saga.ErrInvalid) {
		t.Errorf("Register(no steps) = %v; want ErrInvalid", err)
	}
	if _, err := r.Run(context.Background(), "nope", "id"); !errors.Is(err, saga.ErrUnknownSaga) {
		t.Errorf("Run(unknown) = %v; want ErrUnknownSaga", err)
	}
	if _, err := saga.NewBarrier(nil, time.Hour, time.Minute, nil); !errors.Is(err, saga.ErrInvalid) {
		t.Errorf("NewBarrier(nil) = %v; want ErrInvalid", err)
	}
}

func FuzzUnmarshalEvent(f *testing.F) {
	for _, e := range []saga.Event{{Kind: saga.EvStart, ID: "t1", Name: "trip"}, {Kind: saga.EvTurnBack, ID: "t1", Step: 2, Reason: "no car"}, {Kind: saga.EvEnd, ID: "x", Outcome: saga.Done}} {
		b, _ := e.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := saga.UnmarshalEvent(b)
		if err != nil {
			if !errors.Is(err, saga.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		b2, err := e.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", e, err)
		}
		if e2, err := saga.UnmarshalEvent(b2); err != nil || e2 != e {
			t.Fatalf("round trip: %+v, %v; want %+v", e2, err, e)
		}
	})
}
