package idempotency

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/distkit/distkit/clock"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// newTestRunner returns a Runner over a fresh MemoryStore on a manual clock.
func newTestRunner[T any](t *testing.T, codec Codec[T], tweak func(*Config)) (*Runner[T], *MemoryStore, *clock.Manual) {
	t.Helper()
	clk := clock.NewManual(epoch)
	mcfg := DefaultMemoryConfig()
	mcfg.Clock = clk
	store, err := NewMemoryStore(mcfg)
	if err != nil {
		t.Fatalf("NewMemoryStore: %v", err)
	}
	cfg := DefaultConfig()
	cfg.Clock = clk
	if tweak != nil {
		tweak(&cfg)
	}
	r, err := NewRunner(store, codec, cfg)
	if err != nil {
		t.Fatalf("NewRunner: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r, store, clk
}

// counter returns an operation that counts its runs and returns the count.
func counter(runs *atomic.Int64) func(context.Context) (int, error) {
	return func(context.Context) (int, error) { return int(runs.Add(1)), nil }
}

func TestDoSameKey1000Goroutines(t *testing.T) {
	r, _, _ := newTestRunner[string](t, StringCodec{}, nil)
	var runs atomic.Int64
	release := make(chan struct{})
	fn := func(context.Context) (string, error) {
		<-release // hold the first call so the others pile up behind it
		return "receipt-" + string(rune('A'+runs.Add(1)-1)), nil
	}
	const n = 1000
	results := make([]string, n)
	errs := make([]error, n)
	var started, wg sync.WaitGroup
	started.Add(n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started.Done()
			results[i], errs[i] = r.Do(context.Background(), "order-1", "fp", fn)
		}()
	}
	started.Wait()
	close(release)
	wg.Wait()
	if got := runs.Load(); got != 1 {
		t.Fatalf("fn ran %d times; want 1", got)
	}
	for i := range n {
		if errs[i] != nil || results[i] != "receipt-A" {
			t.Fatalf("call %d = %q, %v; want %q, nil", i, results[i], errs[i], "receipt-A")
		}
	}
	st := r.Stats()
	if st.Executed != 1 || st.Executed+st.Shared+st.Replayed != n {
		t.Errorf("Stats() = %+v; want 1 executed and %d in all", st, n)
	}
}

func TestDoReplaysAndDetectsReuse(t *testing.T) {
	r, _, _ := newTestRunner[int](t, JSONCodec[int]{}, nil)
	var runs atomic.Int64
	ctx := context.Background()
	v, out, err := r.DoOutcome(ctx, "k", "fp-1", counter(&runs))
	if v != 1 || out != Executed || err != nil {
		t.Fatalf("first DoOutcome = %d, %v, %v; want 1, executed, nil", v, out, err)
	}
	v, out, err = r.DoOutcome(ctx, "k", "fp-1", counter(&runs))
	if v != 1 || out != Replayed || err != nil {
		t.Fatalf("retry DoOutcome = %d, %v, %v; want 1, replayed, nil", v, out, err)
	}
	if _, err := r.Do(ctx, "k", "fp-2", counter(&runs)); !errors.Is(err, ErrKeyReuse) {
		t.Fatalf("Do with another fingerprint = %v; want ErrKeyReuse", err)
	}
	if got := runs.Load(); got != 1 {
		t.Errorf("fn ran %d times; want 1", got)
	}
}

func TestDoCompletedRecordExpires(t *testing.T) {
	r, _, clk := newTestRunner[int](t, JSONCodec[int]{}, func(c *Config) { c.Retention = time.Hour })
	var runs atomic.Int64
	ctx := context.Background()
	r.Do(ctx, "k", "fp", counter(&runs))
	clk.Advance(59 * time.Minute)
	if v, _ := r.Do(ctx, "k", "fp", counter(&runs)); v != 1 {
		t.Fatalf("Do before retention ends = %d; want the stored 1", v)
	}
	clk.Advance(time.Minute)
	if v, _ := r.Do(ctx, "k", "other-fp", counter(&runs)); v != 2 {
		t.Fatalf("Do after retention = %d; want a fresh run (2)", v)
	}
}

func TestDoFailureNotCached(t *testing.T) {
	r, store, _ := newTestRunner[int](t, JSONCodec[int]{}, nil)
	ctx := context.Background()
	boom := errors.New("card declined")
	if _, err := r.Do(ctx, "k", "fp", func(context.Context) (int, error) { return 0, boom }); !errors.Is(err, boom) {
		t.Fatalf("failing Do = %v; want %v", err, boom)
	}
	if _, ok, _ := store.Get(ctx, "k"); ok {
		t.Fatalf("record kept after a failure; want it removed")
	}
	v, out, err := r.DoOutcome(ctx, "k", "fp", func(context.Context) (int, error) { return 7, nil })
	if v != 7 || out != Executed || err != nil {
		t.Fatalf("retry after failure = %d, %v, %v; want 7, executed, nil", v, out, err)
	}
}

func TestDoFailureCached(t *testing.T) {
	r, _, _ := newTestRunner[int](t, JSONCodec[int]{}, func(c *Config) { c.CacheFailures = true })
	ctx := context.Background()
	var runs atomic.Int64
	fail := func(context.Context) (int, error) { runs.Add(1); return 0, errors.New("card declined") }
	r.Do(ctx, "k", "fp", fail)
	_, out, err := r.DoOutcome(ctx, "k", "fp", fail)
	var re *ReplayedError
	if !errors.As(err, &re) || re.Message != "card declined" || out != Replayed {
		t.Fatalf("retry = %v, %v; want a replayed *ReplayedError(card declined)", out, err)
	}
	if runs.Load() != 1 {
		t.Errorf("fn ran %d times; want 1", runs.Load())
	}
	// Cancellation is never a stored outcome.
	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	r.Do(context.Background(), "k2", "fp", func(context.Context) (int, error) { return 0, ctx2.Err() })
	if v, err := r.Do(ctx, "k2", "fp", func(context.Context) (int, error) { return 5, nil }); v != 5 || err != nil {
		t.Errorf("retry after a cancelled run = %d, %v; want 5, nil", v, err)
	}
}

func TestDoInProgressTimeoutAfterCrash(t *testing.T) {
	r, store, clk := newTestRunner[int](t, JSONCodec[int]{}, func(c *Config) { c.InProgressTimeout = 30 * time.Second })
	ctx := context.Background()
	// A process that crashed after Begin leaves this record behind.
	_, created, err := store.Begin(ctx, Record{Key: "k", Status: StatusInProgress, Token: 99, Fingerprint: "fp",
		Created: clk.Now(), Expires: clk.Now().Add(30 * time.Second)})
	if !created || err != nil {
		t.Fatalf("Begin = %v, %v; want created", created, err)
	}
	var runs atomic.Int64
	if _, err := r.Do(ctx, "k", "fp", counter(&runs)); !errors.Is(err, ErrInProgress) {
		t.Fatalf("Do on a held key = %v; want ErrInProgress", err)
	}
	clk.Advance(30 * time.Second)
	if v, out, err := r.DoOutcome(ctx, "k", "fp", counter(&runs)); v != 1 || out != Executed || err != nil {
		t.Fatalf("Do after the timeout = %d, %v, %v; want 1, executed, nil", v, out, err)
	}
	// The crashed owner cannot clobber the new record.
	if err := store.Complete(ctx, Record{Key: "k", Status: StatusCompleted, Token: 99}); !errors.Is(err, ErrNotOwner) {
		t.Errorf("stale Complete = %v; want ErrNotOwner", err)
	}
}

// doResult is what a Do call returned.
type doResult struct {
	v   int
	err error
}

// startHeldDo starts r.Do(key, fp) with an fn that returns v once release is
// called, and returns when fn is running. done yields the call's outcome.
func startHeldDo(r *Runner[int], key, fp string, v int) (release func(), done <-chan doResult) {
	entered, held := make(chan struct{}), make(chan struct{})
	out := make(chan doResult, 1) // one result, read after release
	go func() {
		got, err := r.Do(context.Background(), key, fp, func(context.Context) (int, error) {
			close(entered)
			<-held
			return v, nil
		})
		out <- doResult{got, err}
	}()
	<-entered
	return func() { close(held) }, out
}

func TestDoRejectInProgress(t *testing.T) {
	r, _, _ := newTestRunner[int](t, JSONCodec[int]{}, func(c *Config) { c.OnInProgress = RejectInProgress })
	ctx := context.Background()
	release, done := startHeldDo(r, "k", "fp", 1)
	if _, err := r.Do(ctx, "k", "fp", func(context.Context) (int, error) { return 2, nil }); !errors.Is(err, ErrInProgress) {
		t.Errorf("duplicate while running = %v; want ErrInProgress", err)
	}
	if _, err := r.Do(ctx, "k", "other", func(context.Context) (int, error) { return 2, nil }); !errors.Is(err, ErrKeyReuse) {
		t.Errorf("other payload while running = %v; want ErrKeyReuse", err)
	}
	release()
	if res := <-done; res.err != nil {
		t.Fatalf("first Do = %v", res.err)
	}
	if v, err := r.Do(ctx, "k", "fp", func(context.Context) (int, error) { return 2, nil }); v != 1 || err != nil {
		t.Errorf("retry after completion = %d, %v; want 1, nil", v, err)
	}
}

func TestDoWaiterGivesUp(t *testing.T) {
	r, _, _ := newTestRunner[int](t, JSONCodec[int]{}, nil)
	release, done := startHeldDo(r, "k", "fp", 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Do(ctx, "k", "fp", func(context.Context) (int, error) { return 2, nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled waiter = %v; want context.Canceled", err)
	}
	release()
	if res := <-done; res.v != 1 || res.err != nil {
		t.Errorf("first Do = %d, %v; want 1, nil", res.v, res.err)
	}
}

func TestDoOversizedResult(t *testing.T) {
	r, _, _ := newTestRunner[string](t, StringCodec{}, func(c *Config) { c.MaxResultBytes = 10 })
	ctx := context.Background()
	var runs atomic.Int64
	big := func(context.Context) (string, error) { runs.Add(1); return strings.Repeat("x", 11), nil }
	if v, err := r.Do(ctx, "k", "fp", big); len(v) != 11 || err != nil {
		t.Fatalf("first Do = %d bytes, %v; want the 11-byte result", len(v), err)
	}
	if _, err := r.Do(ctx, "k", "fp", big); !errors.Is(err, ErrResultNotStored) {
		t.Fatalf("retry = %v; want ErrResultNotStored", err)
	}
	if runs.Load() != 1 {
		t.Errorf("fn ran %d times; want 1 (an oversized result must not re-run the effect)", runs.Load())
	}
	if v, err := r.Do(ctx, "k2", "fp", func(context.Context) (string, error) { return "0123456789", nil }); v != "0123456789" || err != nil {
		t.Errorf("result at the limit = %q, %v", v, err)
	}
	if v, out, err := r.DoOutcome(ctx, "k2", "fp", big); v != "0123456789" || out != Replayed || err != nil {
		t.Errorf("retry of the result at the limit = %q, %v, %v; want it replayed", v, out, err)
	}
	if v, err := r.Do(ctx, "k2", "fp", nil); err == nil {
		t.Errorf("Do with nil fn = %q, nil; want an error", v)
	}
}

func TestDoBadInput(t *testing.T) {
	r, _, _ := newTestRunner[int](t, JSONCodec[int]{}, nil)
	fn := func(context.Context) (int, error) { return 1, nil }
	tests := []struct {
		name string
		key  string
		want error
	}{
		{"empty key", "", ErrInvalidKey},
		{"long key", strings.Repeat("a", 256), ErrInvalidKey},
		{"control character", "a\x01", ErrInvalidKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := r.Do(context.Background(), tt.key, "fp", fn); !errors.Is(err, tt.want) {
				t.Errorf("Do(%.10q) = %v; want %v", tt.key, err, tt.want)
			}
		})
	}
}

func TestDoPanicKeepsKeyInProgress(t *testing.T) {
	r, _, clk := newTestRunner[int](t, JSONCodec[int]{}, nil)
	ctx := context.Background()
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("recovered %v; want boom", p)
			}
		}()
		r.Do(ctx, "k", "fp", func(context.Context) (int, error) { panic("boom") })
	}()
	if _, err := r.Do(ctx, "k", "fp", func(context.Context) (int, error) { return 1, nil }); !errors.Is(err, ErrInProgress) {
		t.Fatalf("retry after panic = %v; want ErrInProgress until the record expires", err)
	}
	clk.Advance(DefaultConfig().InProgressTimeout)
	if v, err := r.Do(ctx, "k", "fp", func(context.Context) (int, error) { return 1, nil }); v != 1 || err != nil {
		t.Fatalf("retry after expiry = %d, %v; want 1, nil", v, err)
	}
}

func TestRunnerClose(t *testing.T) {
	r, _, _ := newTestRunner[int](t, JSONCodec[int]{}, nil)
	ctx := context.Background()
	r.Do(ctx, "done", "fp", func(context.Context) (int, error) { return 1, nil })
	r.Close()
	if _, err := r.Do(ctx, "new", "fp", func(context.Context) (int, error) { return 1, nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Do after Close = %v; want ErrClosed", err)
	}
	if v, err := r.Do(ctx, "done", "fp", func(context.Context) (int, error) { return 2, nil }); v != 1 || err != nil {
		t.Errorf("replay after Close = %d, %v; want 1, nil", v, err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		tweak func(*Config)
	}{
		{"nil clock", func(c *Config) { c.Clock = nil }},
		{"zero retention", func(c *Config) { c.Retention = 0 }},
		{"negative timeout", func(c *Config) { c.InProgressTimeout = -time.Second }},
		{"unknown policy", func(c *Config) { c.OnInProgress = 9 }},
		{"negative max result", func(c *Config) { c.MaxResultBytes = -1 }},
		{"zero max result", func(c *Config) { c.MaxResultBytes = 0 }},
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	store, _ := NewMemoryStore(DefaultMemoryConfig())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.tweak(&cfg)
			if _, err := NewRunner[int](store, JSONCodec[int]{}, cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("NewRunner(%s) = %v; want ErrInvalidConfig", tt.name, err)
			}
		})
	}
	if _, err := NewRunner[int](nil, JSONCodec[int]{}, DefaultConfig()); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("NewRunner(nil store) = %v; want ErrInvalidConfig", err)
	}
	if _, err := NewRunner[int](store, nil, DefaultConfig()); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("NewRunner(nil codec) = %v; want ErrInvalidConfig", err)
	}
}

func TestClaimFromContext(t *testing.T) {
	r, store, _ := newTestRunner[string](t, StringCodec{}, nil)
	ctx := context.Background()
	if _, ok := ClaimFromContext(ctx); ok {
		t.Fatalf("ClaimFromContext outside fn reported a claim")
	}
	var claim Claim
	r.Do(ctx, "k", "fp", func(ctx context.Context) (string, error) {
		claim, _ = ClaimFromContext(ctx)
		return "", nil
	})
	rec, _, _ := store.Get(ctx, "k")
	if claim.Key != "k" || claim.Token != rec.Token || claim.Token == 0 {
		t.Errorf("claim = %+v; want key k and the record's token %d", claim, rec.Token)
	}
}

func TestDoWaitModeKeyReuseWhileRunning(t *testing.T) {
	r, _, _ := newTestRunner[int](t, JSONCodec[int]{}, nil)
	ctx := context.Background()
	release, done := startHeldDo(r, "k", "fp", 1)
	if _, err := r.Do(ctx, "k", "other", func(context.Context) (int, error) { return 2, nil }); !errors.Is(err, ErrKeyReuse) {
		t.Errorf("other payload while the first waits = %v; want ErrKeyReuse (not the first's result)", err)
	}
	release()
	if res := <-done; res.err != nil {
		t.Fatal(res.err)
	}
}

func TestZeroValuesGiveErrors(t *testing.T) {
	ctx := context.Background()
	p := inProgress("k", "fp", 1, epoch, time.Minute)
	var r Runner[int]
	var ms MemoryStore
	var fs FileStore
	var mw Middleware
	tests := []struct {
		name string
		err  error
	}{
		{"Runner.Do", func() (err error) {
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("panicked: %v", p)
				}
			}()
			_, err = r.Do(ctx, "k", "fp", func(context.Context) (int, error) { return 1, nil })
			return err
		}()},
		{"Runner.Close", r.Close()},
		{"MemoryStore.Begin", func() error { _, _, err := ms.Begin(ctx, p); return err }()},
		{"MemoryStore.Get", func() error { _, _, err := ms.Get(ctx, "k"); return err }()},
		{"MemoryStore.Complete", ms.Complete(ctx, completed(p, "", epoch, time.Hour))},
		{"MemoryStore.Abort", ms.Abort(ctx, "k", 1)},
		{"FileStore.Begin", func() error { _, _, err := fs.Begin(ctx, p); return err }()},
		{"FileStore.Get", func() error { _, _, err := fs.Get(ctx, "k"); return err }()},
		{"FileStore.Abort", fs.Abort(ctx, "k", 1)},
		{"FileStore.Close", fs.Close()},
		{"Middleware.Close", mw.Close()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, ErrInvalidConfig) {
				t.Errorf("%s on a zero value = %v; want ErrInvalidConfig", tt.name, tt.err)
			}
		})
	}
}

func TestDoUnencodableResult(t *testing.T) {
	r, _, _ := newTestRunner[func()](t, JSONCodec[func()]{}, nil)
	ctx := context.Background()
	var runs atomic.Int64
	fn := func(context.Context) (func(), error) { runs.Add(1); return func() {}, nil }
	if v, err := r.Do(ctx, "k", "fp", fn); v == nil || err == nil {
		t.Fatalf("first Do = (nil func? %t), %v; want the value and an encode error", v == nil, err)
	}
	if _, err := r.Do(ctx, "k", "fp", fn); !errors.Is(err, ErrResultNotStored) {
		t.Fatalf("retry = %v; want ErrResultNotStored", err)
	}
	if runs.Load() != 1 {
		t.Errorf("fn ran %d times; want 1", runs.Load())
	}
}

// TestDoWaiterSurvivesLeaderCancel checks that a duplicate waiting on a call
// whose first caller cancelled does not inherit that cancellation.
func TestDoWaiterSurvivesLeaderCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, _, _ := newTestRunner[int](t, JSONCodec[int]{}, nil)
		leaderCtx, cancel := context.WithCancel(context.Background())
		entered := make(chan struct{})
		var runs atomic.Int64
		fn := func(ctx context.Context) (int, error) {
			if runs.Add(1) == 1 {
				close(entered)
				<-ctx.Done() // the first run honours its caller's cancellation
				return 0, ctx.Err()
			}
			return 42, nil
		}
		leaderDone := make(chan error, 1) // one result
		go func() {
			_, err := r.Do(leaderCtx, "k", "fp", fn)
			leaderDone <- err
		}()
		<-entered
		waiterDone := make(chan int, 1) // one result
		go func() {
			v, _ := r.Do(context.Background(), "k", "fp", fn)
			waiterDone <- v
		}()
		synctest.Wait() // the waiter waits for the leader's run before it is cancelled
		cancel()
		if err := <-leaderDone; !errors.Is(err, context.Canceled) {
			t.Errorf("leader = %v; want context.Canceled", err)
		}
		if v := <-waiterDone; v != 42 {
			t.Errorf("waiter = %d; want 42 from its own run", v)
		}
	})
}
