package idempotency

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/distkit/distkit/clock"
)

// InProgressPolicy says what a duplicate call does while the first call with
// its key is still running in the same process.
type InProgressPolicy uint8

const (
	// WaitForResult makes the duplicate wait for the first call and share its
	// outcome (golang.org/x/sync/singleflight). A record held by another
	// process still gives ErrInProgress: there is nothing in-process to wait on.
	WaitForResult InProgressPolicy = iota
	// RejectInProgress makes the duplicate return ErrInProgress at once, as
	// an HTTP API answers 409 Conflict.
	RejectInProgress
)

// Config configures a Runner.
type Config struct {
	// Clock is the wall-time source for record creation and expiry
	// (default clock.System{}).
	Clock clock.Source
	// Retention is how long a completed record is replayed (default 24h).
	// A retry after that runs the operation again.
	Retention time.Duration
	// InProgressTimeout is how long an in-progress record blocks its key
	// (default 1m). It bounds how long a key stays stuck after a crash
	// between Begin and Complete. It must exceed the longest run of fn: a
	// record that expires while fn still runs can be taken over, and the
	// operation can then run twice.
	InProgressTimeout time.Duration
	// OnInProgress chooses between waiting for and rejecting in-process
	// duplicates (default WaitForResult).
	OnInProgress InProgressPolicy
	// CacheFailures stores fn's errors as the key's outcome, replayed to
	// retries as a *ReplayedError, as Stripe does. By default a failure
	// removes the record so that a retry runs fn again. Context errors
	// (cancellation, deadline) are never stored.
	CacheFailures bool
	// MaxResultBytes bounds an encoded result (default 1 MiB). A larger
	// result is returned to the caller that ran fn, but the record stores
	// only that the operation completed: retries get ErrResultNotStored
	// and fn does not run again.
	MaxResultBytes int
	// Logger receives warnings (a lost record, a store error). Nil means silent.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults described on Config.
func DefaultConfig() Config {
	return Config{
		Clock:             clock.System{},
		Retention:         24 * time.Hour,
		InProgressTimeout: time.Minute,
		OnInProgress:      WaitForResult,
		MaxResultBytes:    1 << 20,
	}
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	switch {
	case c.Clock == nil:
		return fmt.Errorf("%w: Config.Clock is nil", ErrInvalidConfig)
	case c.Retention <= 0:
		return fmt.Errorf("%w: Config.Retention = %v; want > 0", ErrInvalidConfig, c.Retention)
	case c.InProgressTimeout <= 0:
		return fmt.Errorf("%w: Config.InProgressTimeout = %v; want > 0", ErrInvalidConfig, c.InProgressTimeout)
	case c.OnInProgress > RejectInProgress:
		return fmt.Errorf("%w: Config.OnInProgress = %d; want WaitForResult or RejectInProgress", ErrInvalidConfig, c.OnInProgress)
	case c.MaxResultBytes < 1:
		return fmt.Errorf("%w: Config.MaxResultBytes = %d; want ≥ 1", ErrInvalidConfig, c.MaxResultBytes)
	}
	return nil
}

// Outcome says how Do produced its answer.
type Outcome uint8

const (
	// Executed: this call ran fn.
	Executed Outcome = iota + 1
	// Replayed: the key's stored outcome was returned; fn did not run.
	Replayed
	// Shared: this call waited for a concurrent call in the same process
	// that ran fn, and got its outcome.
	Shared
)

// String returns "executed", "replayed" or "shared".
func (o Outcome) String() string {
	switch o {
	case Executed:
		return "executed"
	case Replayed:
		return "replayed"
	case Shared:
		return "shared"
	default:
		return fmt.Sprintf("Outcome(%d)", uint8(o))
	}
}

// Stats are counters of a Runner.
type Stats struct {
	Executed   uint64 // calls that ran fn
	Replayed   uint64 // calls answered from a stored record
	Shared     uint64 // calls that waited for a concurrent in-process call
	InProgress uint64 // calls rejected with ErrInProgress
	KeyReuse   uint64 // calls rejected with ErrKeyReuse
	Failed     uint64 // runs of fn that returned an error
}

// Runner runs operations at most once per idempotency key and replays their
// stored results to retries. T is the result type; codec stores it.
//
// A Runner is safe for concurrent use. It starts a goroutine only to run fn
// for a group of in-process duplicates (WaitForResult); that goroutine ends
// when fn returns, and Close waits for it.
type Runner[T any] struct {
	store Store
	codec Codec[T]
	cfg   Config
	log   *slog.Logger
	group singleflight.Group

	mu     sync.Mutex // guards closed and active
	closed bool
	// active counts executions in progress so Close can wait for them;
	// drained is signalled (with mu) when it drops to zero.
	active  int
	drained *sync.Cond

	executed, replayed, shared, inProgress, keyReuse, failed atomic.Uint64
}

// NewRunner returns a Runner that keeps records in store and encodes
// results with codec.
func NewRunner[T any](store Store, codec Codec[T], cfg Config) (*Runner[T], error) {
	if store == nil {
		return nil, fmt.Errorf("%w: nil Store", ErrInvalidConfig)
	}
	if codec == nil {
		return nil, fmt.Errorf("%w: nil Codec", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Runner[T]{store: store, codec: codec, cfg: cfg, log: cfg.Logger}
	r.drained = sync.NewCond(&r.mu)
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

// Do runs fn at most once for key and returns its result; see DoOutcome.
func (r *Runner[T]) Do(ctx context.Context, key, fingerprint string, fn func(context.Context) (T, error)) (T, error) {
	v, _, err := r.DoOutcome(ctx, key, fingerprint, fn)
	return v, err
}

// DoOutcome runs fn at most once for key and returns its result and how it
// was obtained.
//
//   - The first call for key records it as in progress, runs fn and stores
//     the encoded result (Executed).
//   - A later call with the same key and fingerprint returns the stored
//     result without running fn (Replayed); a stored failure comes back as a
//     *ReplayedError, an omitted result as ErrResultNotStored.
//   - A call with the same key and another fingerprint gets ErrKeyReuse.
//   - A call while the first is running waits for it in-process and shares
//     its outcome (Shared), or gets ErrInProgress (Config.OnInProgress, or
//     the record is held by another process).
//   - If fn fails, the record is removed so a retry runs fn again, unless
//     Config.CacheFailures.
//   - A record left in progress by a crash expires after
//     Config.InProgressTimeout; the next call then runs fn.
//
// fn receives the context of the call that runs it. A waiting duplicate
// returns ctx.Err() when its own ctx ends, without stopping fn; if fn then
// fails with a context error, duplicates still waiting run it again. The record is
// stored even if ctx is cancelled once fn has returned. If storing the
// result fails, DoOutcome returns fn's result together with the error.
// If fn panics, its in-progress record is kept (the effect may have
// happened) until it expires; the call that ran fn re-panics and waiting
// duplicates get a *PanicError.
func (r *Runner[T]) DoOutcome(ctx context.Context, key, fingerprint string, fn func(context.Context) (T, error)) (T, Outcome, error) {
	var zero T
	if r == nil || r.store == nil {
		return zero, 0, notConstructed("Runner")
	}
	if fn == nil {
		return zero, 0, errors.New("idempotency: Do called with a nil function")
	}
	if err := ValidateKey(key); err != nil {
		return zero, 0, err
	}
	if err := ctx.Err(); err != nil {
		return zero, 0, err
	}
	// Fast path: a retry of a completed request needs one read.
	if rec, ok, err := r.store.Get(ctx, key); err != nil {
		return zero, 0, fmt.Errorf("idempotency: get %q: %w", key, err)
	} else if ok && rec.live(r.cfg.Clock.Now()) {
		if rec.Fingerprint != fingerprint {
			r.keyReuse.Add(1)
			return zero, 0, fmt.Errorf("%w: key %q", ErrKeyReuse, key)
		}
		if rec.Status == StatusCompleted {
			r.replayed.Add(1)
			v, err := r.decodeStored(&rec)
			return v, Replayed, err
		}
		if r.cfg.OnInProgress == RejectInProgress {
			r.inProgress.Add(1)
			return zero, 0, fmt.Errorf("%w: key %q", ErrInProgress, key)
		}
	}

	if r.cfg.OnInProgress == RejectInProgress {
		if !r.enter() {
			return zero, 0, ErrClosed
		}
		res := r.execute(ctx, key, fingerprint, fn)
		r.exit()
		return r.finish(res, true)
	}
	// Group by key and fingerprint: a duplicate with another fingerprint
	// must not share this outcome; it meets the in-progress record in
	// execute and gets ErrKeyReuse.
	sfKey := key + "\x00" + fingerprint
	for attempt := 0; ; attempt++ {
		ran := false // written by our closure, read after its result arrives
		ch := r.group.DoChan(sfKey, func() (any, error) {
			ran = true
			if !r.enter() {
				return &execResult[T]{err: ErrClosed}, nil
			}
			defer r.exit()
			return r.execute(ctx, key, fingerprint, fn), nil
		})
		select {
		case sr := <-ch:
			res := sr.Val.(*execResult[T])
			// fn ran with the first caller's context. If that caller gave
			// up and fn failed because of it, the key was released: a
			// waiter that still wants the result runs the call again
			// rather than inherit someone else's cancellation.
			if !ran && res.ranFn && isContextErr(res.err) && ctx.Err() == nil && attempt < 3 {
				continue
			}
			return r.finish(res, ran)
		case <-ctx.Done():
			// The goroutine running fn finishes on its own; Close waits for it.
			return zero, 0, ctx.Err()
		}
	}
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// enter registers an execution; it reports false once the Runner is closed.
func (r *Runner[T]) enter() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.active++
	return true
}

// exit ends an execution registered by enter.
func (r *Runner[T]) exit() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.active--; r.active == 0 {
		r.drained.Broadcast()
	}
}

// execResult is one execution's outcome, shared by every waiting duplicate.
type execResult[T any] struct {
	value    T      // fn's result, for the caller that ran fn
	rec      Record // the completed record to decode, for everyone else
	replay   bool   // the key was already completed: decode rec
	ranFn    bool   // fn was called
	err      error
	panicked bool
	panicVal any
}

// finish turns an execution into the answer for one caller. ranFn reports
// whether this caller's goroutine ran the execution.
func (r *Runner[T]) finish(res *execResult[T], ranFn bool) (T, Outcome, error) {
	var zero T
	if res.panicked {
		if ranFn {
			panic(res.panicVal)
		}
		return zero, 0, &PanicError{Value: res.panicVal}
	}
	if res.replay {
		r.replayed.Add(1)
		v, err := r.decodeStored(&res.rec)
		return v, Replayed, err
	}
	if !res.ranFn { // refused before fn: key reuse, in progress, store error
		return zero, 0, res.err
	}
	if ranFn {
		return res.value, Executed, res.err
	}
	r.shared.Add(1)
	if res.err != nil {
		return zero, Shared, res.err
	}
	v, err := r.decodeStored(&res.rec)
	return v, Shared, err
}

// decodeStored returns the outcome stored in a completed record.
func (r *Runner[T]) decodeStored(rec *Record) (T, error) {
	var zero T
	switch {
	case rec.Omitted:
		return zero, fmt.Errorf("%w: key %q", ErrResultNotStored, rec.Key)
	case rec.Failed:
		return zero, &ReplayedError{Message: string(rec.Result)}
	}
	v, err := r.codec.Decode(rec.Result)
	if err != nil {
		return zero, fmt.Errorf("idempotency: decode stored result of %q: %w", rec.Key, err)
	}
	return v, nil
}

// execute claims key in the store and, if it got it, runs fn and records the
// outcome.
func (r *Runner[T]) execute(ctx context.Context, key, fingerprint string, fn func(context.Context) (T, error)) (res *execResult[T]) {
	res = new(execResult[T])
	now := r.cfg.Clock.Now()
	proposal := Record{
		Key:         key,
		Status:      StatusInProgress,
		Token:       rand.Uint64(),
		Fingerprint: fingerprint,
		Created:     now,
		Expires:     now.Add(r.cfg.InProgressTimeout),
	}
	held, created, err := r.store.Begin(ctx, proposal)
	switch {
	case err != nil:
		res.err = fmt.Errorf("idempotency: begin %q: %w", key, err)
		return res
	case created:
	case held.Fingerprint != fingerprint:
		r.keyReuse.Add(1)
		res.err = fmt.Errorf("%w: key %q", ErrKeyReuse, key)
		return res
	case held.Status == StatusCompleted:
		res.replay, res.rec = true, held
		return res
	default:
		r.inProgress.Add(1)
		res.err = fmt.Errorf("%w: key %q", ErrInProgress, key)
		return res
	}

	r.executed.Add(1)
	res.ranFn = true
	fnCtx := context.WithValue(ctx, claimKey{}, Claim{Key: key, Token: proposal.Token})
	value, p, fnErr := callFn(fnCtx, fn)
	if p != nil {
		// The effect may or may not have happened: keep the key blocked
		// until the record expires rather than risk running it twice.
		r.log.Warn("idempotency: function panicked; key stays in progress until it expires", "key", key)
		res.panicked, res.panicVal = true, p.value
		return res
	}
	// The outcome must be recorded even if the caller has gone away.
	sctx := context.WithoutCancel(ctx)
	done := Record{
		Key:         key,
		Status:      StatusCompleted,
		Token:       proposal.Token,
		Fingerprint: fingerprint,
		Created:     proposal.Created,
	}
	if fnErr != nil {
		r.failed.Add(1)
		res.err = fnErr
		if !r.cfg.CacheFailures || isContextErr(fnErr) {
			if err := r.store.Abort(sctx, key, proposal.Token); err != nil {
				r.log.Warn("idempotency: could not release key after failure", "key", key, "err", err)
			}
			return res
		}
		done.Failed, done.Result = true, []byte(fnErr.Error())
	} else {
		res.value = value
		encoded, encErr := r.codec.Encode(value)
		switch {
		case encErr != nil:
			done.Omitted = true
			res.err = fmt.Errorf("idempotency: encode result of %q (stored as not replayable): %w", key, encErr)
		case len(encoded) > r.cfg.MaxResultBytes:
			done.Omitted = true
			r.log.Warn("idempotency: result too large to store", "key", key, "bytes", len(encoded), "max", r.cfg.MaxResultBytes)
		default:
			done.Result = encoded
		}
	}
	done.Expires = r.cfg.Clock.Now().Add(r.cfg.Retention)
	if err := r.store.Complete(sctx, done); err != nil {
		r.log.Warn("idempotency: could not store outcome", "key", key, "err", err)
		res.err = errors.Join(res.err, fmt.Errorf("idempotency: complete %q: %w", key, err))
		return res
	}
	res.rec = done
	return res
}

// callFn runs fn, turning a panic into a value so that it can be re-raised
// in the caller's goroutine (singleflight's DoChan would otherwise crash the
// process from its own goroutine).
func callFn[T any](ctx context.Context, fn func(context.Context) (T, error)) (v T, p *recovered, err error) {
	defer func() {
		if r := recover(); r != nil {
			p = &recovered{value: r}
		}
	}()
	v, err = fn(ctx)
	return v, nil, err
}

// recovered holds the value of a recovered panic.
type recovered struct{ value any }

// Stats returns the Runner's counters.
func (r *Runner[T]) Stats() Stats {
	if r == nil {
		return Stats{}
	}
	return Stats{
		Executed:   r.executed.Load(),
		Replayed:   r.replayed.Load(),
		Shared:     r.shared.Load(),
		InProgress: r.inProgress.Load(),
		KeyReuse:   r.keyReuse.Load(),
		Failed:     r.failed.Load(),
	}
}

// Close makes later calls fail with ErrClosed (replays of completed keys
// still succeed) and waits for running executions of fn to finish. It does
// not close the Store.
func (r *Runner[T]) Close() error {
	if r == nil || r.drained == nil {
		return notConstructed("Runner")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for r.active > 0 {
		r.drained.Wait()
	}
	return nil
}

// Claim identifies the in-progress record an execution of fn holds.
type Claim struct {
	Key   string
	Token uint64
}

type claimKey struct{}

// ClaimFromContext returns the claim of the execution whose fn received ctx,
// so fn can complete the record in the same database transaction as its
// effect (see the package documentation). ok is false outside fn.
func ClaimFromContext(ctx context.Context) (c Claim, ok bool) {
	c, ok = ctx.Value(claimKey{}).(Claim)
	return c, ok
}
