package idempotency

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/distkit/distkit/clock"
)

// gatedStore holds every Begin whose proposal carries the fingerprint
// gateFP until release is closed: a request that read no record in Do's
// fast path is then still on its way to Begin while others run.
type gatedStore struct {
	Store
	gateFP  string
	release chan struct{}
}

func (s *gatedStore) Begin(ctx context.Context, p Record) (Record, bool, error) {
	if p.Fingerprint == s.gateFP {
		<-s.release
	}
	return s.Store.Begin(ctx, p)
}

// ctxStore refuses Complete and Abort on a finished context, as a database
// driver does.
type ctxStore struct{ Store }

func (s ctxStore) Complete(ctx context.Context, rec Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.Store.Complete(ctx, rec)
}

func (s ctxStore) Abort(ctx context.Context, key string, token uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.Store.Abort(ctx, key, token)
}

// outcome is what a DoOutcome call returned.
type outcome struct {
	v   int
	out Outcome
	err error
}

// TestDoFingerprintCheckedAfterRacingPastGet: a request with another
// payload that found no record in Do's fast path and reaches Begin after
// the first request completed gets ErrKeyReuse, never the first request's
// result; and while it is on its way, the first request (another payload)
// does not wait for it or share its outcome.
func TestDoFingerprintCheckedAfterRacingPastGet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.NewManual(epoch)
		mem := mustMemoryStore(t, MemoryConfig{Shards: 1, MaxEntries: 16, Clock: clk})
		store := &gatedStore{Store: mem, gateFP: "fp-B", release: make(chan struct{})}
		cfg := DefaultConfig()
		cfg.Clock = clk
		r, err := NewRunner[int](store, JSONCodec[int]{}, cfg)
		if err != nil {
			t.Fatalf("NewRunner: %v", err)
		}
		defer r.Close()
		do := func(fp string, v int, done chan<- outcome) {
			got, out, err := r.DoOutcome(context.Background(), "k", fp, func(context.Context) (int, error) { return v, nil })
			done <- outcome{got, out, err}
		}
		bDone := make(chan outcome, 1) // one result
		go do("fp-B", 2, bDone)
		synctest.Wait()                // B found no record and waits in Begin
		aDone := make(chan outcome, 1) // one result
		go do("fp-A", 1, aDone)
		synctest.Wait() // A is done, or stuck behind B
		close(store.release)
		a, b := <-aDone, <-bDone
		if a.v != 1 || a.out != Executed || a.err != nil {
			t.Errorf("A = %d, %v, %v; want 1, executed, nil (its own run, not B's)", a.v, a.out, a.err)
		}
		if b.v != 0 || !errors.Is(b.err, ErrKeyReuse) {
			t.Errorf("B = %d, %v, %v; want 0 and ErrKeyReuse (not A's result)", b.v, b.out, b.err)
		}
	})
}

// TestDoRetentionCountsFromCompletion: a completed record is replayed for
// Config.Retention after the operation completed, however long it ran.
func TestDoRetentionCountsFromCompletion(t *testing.T) {
	r, _, clk := newTestRunner[int](t, JSONCodec[int]{}, func(c *Config) {
		c.Retention = time.Hour
		c.InProgressTimeout = time.Hour
	})
	ctx := context.Background()
	var runs atomic.Int64
	slow := func(context.Context) (int, error) {
		clk.Advance(30 * time.Minute) // the operation takes half an hour
		return int(runs.Add(1)), nil
	}
	if v, err := r.Do(ctx, "k", "fp", slow); v != 1 || err != nil {
		t.Fatalf("first Do = %d, %v; want 1, nil", v, err)
	}
	clk.Advance(59 * time.Minute)
	if v, out, err := r.DoOutcome(ctx, "k", "fp", slow); v != 1 || out != Replayed || err != nil {
		t.Fatalf("Do 59m after completion = %d, %v, %v; want the stored 1, replayed", v, out, err)
	}
	clk.Advance(time.Minute)
	if v, out, err := r.DoOutcome(ctx, "k", "fp", slow); v != 2 || out != Executed || err != nil {
		t.Fatalf("Do 1h after completion = %d, %v, %v; want a fresh run (2)", v, out, err)
	}
}

// startDo starts r.Do(key, fp) with an fn that signals entered and returns
// v once release is called. done yields the call's outcome.
func startDo(r *Runner[int], key, fp string, v int) (entered <-chan struct{}, release func(), done <-chan doResult) {
	in, held := make(chan struct{}), make(chan struct{})
	out := make(chan doResult, 1) // one result, read after release
	go func() {
		got, err := r.Do(context.Background(), key, fp, func(context.Context) (int, error) {
			close(in)
			<-held
			return v, nil
		})
		out <- doResult{got, err}
	}()
	return in, func() { close(held) }, out
}

// TestDoTakeoverAfterInProgressTimeout: an in-progress record blocks its key
// for exactly Config.InProgressTimeout; after that another process takes
// the key over and runs the operation, and the first owner, finishing
// late, cannot overwrite the new owner's record: it gets its result
// together with ErrNotOwner.
func TestDoTakeoverAfterInProgressTimeout(t *testing.T) {
	clk := clock.NewManual(epoch)
	store := mustMemoryStore(t, MemoryConfig{Shards: 1, MaxEntries: 16, Clock: clk})
	cfg := DefaultConfig()
	cfg.Clock = clk
	cfg.InProgressTimeout = 30 * time.Second
	newRunner := func() *Runner[int] { // one per process
		r, err := NewRunner[int](store, JSONCodec[int]{}, cfg)
		if err != nil {
			t.Fatalf("NewRunner: %v", err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	first, second := newRunner(), newRunner()
	ctx := context.Background()
	enteredA, releaseA, doneA := startDo(first, "k", "fp", 1)
	<-enteredA
	clk.Advance(30*time.Second - time.Nanosecond)
	if _, err := second.Do(ctx, "k", "fp", func(context.Context) (int, error) { return 9, nil }); !errors.Is(err, ErrInProgress) {
		t.Fatalf("Do just before the timeout = %v; want ErrInProgress", err)
	}
	clk.Advance(time.Nanosecond)
	enteredB, releaseB, doneB := startDo(second, "k", "fp", 2)
	select {
	case <-enteredB:
	case res := <-doneB:
		releaseA()
		<-doneA
		t.Fatalf("Do at the timeout = %d, %v; want it to take the key over and run", res.v, res.err)
	}
	releaseA()
	if res := <-doneA; res.v != 1 || !errors.Is(res.err, ErrNotOwner) {
		t.Errorf("late first owner = %d, %v; want its result 1 with ErrNotOwner", res.v, res.err)
	}
	releaseB()
	if res := <-doneB; res.v != 2 || res.err != nil {
		t.Errorf("new owner = %d, %v; want 2, nil", res.v, res.err)
	}
	if v, out, err := first.DoOutcome(ctx, "k", "fp", func(context.Context) (int, error) { return 9, nil }); v != 2 || out != Replayed || err != nil {
		t.Errorf("retry = %d, %v, %v; want the new owner's 2, replayed", v, out, err)
	}
}

// TestDoStoresOutcomeAfterCallerCancels: once fn has returned, its outcome
// is recorded (a result stored, a failure released) even though the
// caller's context was cancelled meanwhile, on a store that honours
// contexts.
func TestDoStoresOutcomeAfterCallerCancels(t *testing.T) {
	tests := []struct {
		name    string
		fnErr   error
		wantOut Outcome // of the retry
		wantV   int     // of the retry
	}{
		{"result stored", nil, Replayed, 7},
		{"failure released", errors.New("card declined"), Executed, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewManual(epoch)
			mem := mustMemoryStore(t, MemoryConfig{Shards: 1, MaxEntries: 16, Clock: clk})
			cfg := DefaultConfig()
			cfg.Clock = clk
			cfg.OnInProgress = RejectInProgress // fn runs in the caller's goroutine
			r, err := NewRunner[int](ctxStore{mem}, JSONCodec[int]{}, cfg)
			if err != nil {
				t.Fatalf("NewRunner: %v", err)
			}
			defer r.Close()
			ctx, cancel := context.WithCancel(context.Background())
			r.Do(ctx, "k", "fp", func(context.Context) (int, error) {
				cancel() // the client hangs up while the effect completes
				return 7, tt.fnErr
			})
			v, out, err := r.DoOutcome(context.Background(), "k", "fp", func(context.Context) (int, error) { return 8, nil })
			if v != tt.wantV || out != tt.wantOut || err != nil {
				t.Errorf("retry = %d, %v, %v; want %d, %v, nil", v, out, err, tt.wantV, tt.wantOut)
			}
		})
	}
}

// TestRunnerCloseWaitsForRunningCalls: Close returns only once the
// executions of fn that were running have finished, and then at once.
func TestRunnerCloseWaitsForRunningCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _, _ := newTestRunner[int](t, JSONCodec[int]{}, nil)
		release := make(chan struct{})
		done := make(chan doResult, 1) // one result
		go func() {
			v, err := r.Do(context.Background(), "k", "fp", func(context.Context) (int, error) {
				<-release
				return 1, nil
			})
			done <- doResult{v, err}
		}()
		synctest.Wait()               // fn is running
		closed := make(chan error, 1) // one result
		go func() { closed <- r.Close() }()
		synctest.Wait()
		returned := false
		select {
		case <-closed:
			returned = true
			t.Errorf("Close returned while fn was still running; want it to wait")
		default:
		}
		close(release)
		synctest.Wait()
		if !returned {
			select {
			case err := <-closed:
				if err != nil {
					t.Errorf("Close = %v; want nil", err)
				}
			default:
				t.Errorf("Close still waiting after the running call finished; want it woken")
				r.mu.Lock()
				r.drained.Broadcast() // let it go, so the bubble can end
				r.mu.Unlock()
				<-closed
			}
		}
		if res := <-done; res.v != 1 || res.err != nil {
			t.Errorf("running Do = %d, %v; want 1, nil", res.v, res.err)
		}
	})
}

// TestDoWaiterOfPanickedCallGetsPanicError: when fn panics, the caller that
// ran it re-panics and a duplicate waiting on it gets a *PanicError with
// the value, not a zero result and nil.
func TestDoWaiterOfPanickedCallGetsPanicError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _, _ := newTestRunner[int](t, JSONCodec[int]{}, nil)
		release := make(chan struct{})
		fn := func(context.Context) (int, error) {
			<-release
			panic("boom")
		}
		recovered := make(chan any, 1) // one result
		go func() {
			defer func() { recovered <- recover() }()
			r.Do(context.Background(), "k", "fp", fn)
		}()
		synctest.Wait()                 // the first call runs fn
		waiter := make(chan outcome, 1) // one result
		go func() {
			v, out, err := r.DoOutcome(context.Background(), "k", "fp", fn)
			waiter <- outcome{v, out, err}
		}()
		synctest.Wait() // the duplicate waits for it
		close(release)
		if p := <-recovered; p != "boom" {
			t.Errorf("the caller that ran fn recovered %v; want boom", p)
		}
		w := <-waiter
		var pe *PanicError
		if !errors.As(w.err, &pe) || pe.Value != "boom" {
			t.Errorf("waiter = %d, %v, %v; want a *PanicError with value boom", w.v, w.out, w.err)
		}
	})
}
