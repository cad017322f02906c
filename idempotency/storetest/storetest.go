// Package storetest is the contract every idempotency.Store must meet,
// as a test suite that a store's own tests run against it. The built-in
// MemoryStore and FileStore pass it (idempotency's contract_test.go), and
// so do the adapters in distkit's contrib modules (Redis, PostgreSQL),
// against real servers.
//
// Usage, in a store's _test.go file:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, storetest.Harness{
//			Open: func(t *testing.T) idempotency.Store { return openMyStore(t) },
//		})
//	}
//
// # What the suite checks
//
//   - Begin creates the proposal for a new key, returns the held record
//     (with its fingerprint, so the caller can detect key reuse) for a
//     live one, and replaces a record of any status once it has expired at
//     the proposal's Created time (Expires equal to Created counts as
//     expired).
//   - Complete and Abort act only on the in-progress record carrying their
//     token; anything else is ErrNotOwner, including a record that was
//     taken over after expiring and a removed one. A completed record is
//     never aborted; its owner's repeated Complete may succeed (a store
//     that completes in two steps) or fail with ErrNotOwner.
//   - Records round-trip: result bytes, Failed, Omitted, fingerprint and
//     times (to the millisecond: the suite only uses whole milliseconds).
//   - Bad input (an invalid key, a proposal that is not in progress or
//     that expires when it is created, a completion that is not completed)
//     is an error, never a stored record.
//   - Concurrent Begin calls on one key elect exactly one creator, and
//     every caller sees the winner's record.
//   - A Runner over the store runs a function once for concurrent callers
//     of one key and replays its result.
//   - With Harness.Reopen, records survive closing and reopening the store.
//
// # What the store under test must allow
//
// The suite decides expiry only through the times it passes (the Store
// contract: stores do not read the clock for Begin's decision), and it
// moves its own notion of "now" forward by hours without waiting. A store
// that also expires records physically by a server clock (a Redis TTL, a
// cleanup job) must keep them at least as long as Expires − Created,
// measured from when it wrote them. Keys are unique per run, so several
// subtests, and several runs, can share one database or one Redis.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distkit/distkit/idempotency"
)

// Harness describes the store under test.
type Harness struct {
	// Open returns the store for one subtest. It may return the same store
	// every time, or a new one: the suite's keys never collide. Cleanup
	// (closing the store) is Open's business, via t.Cleanup.
	Open func(t *testing.T) idempotency.Store
	// Reopen, if not nil, closes s and opens the store again from its
	// durable state, as a restarted process would. The suite then checks
	// that completed and in-progress records survive.
	Reopen func(t *testing.T, s idempotency.Store) idempotency.Store
	// Concurrency is the number of goroutines of the concurrent tests
	// (default 16).
	Concurrency int
}

// Run runs the contract suite against the store h describes, as subtests
// of t.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Open == nil {
		t.Fatal("storetest: Harness.Open is nil")
	}
	if h.Concurrency <= 0 {
		h.Concurrency = 16
	}
	run := fmt.Sprintf("st%08x", rand.Uint32())
	tests := []struct {
		name string
		fn   func(t *testing.T, s idempotency.Store, keys *keySource)
	}{
		{"BeginNewKey", testBeginNewKey},
		{"BeginHeldKey", testBeginHeldKey},
		{"CompleteChecksToken", testCompleteChecksToken},
		{"AbortChecksToken", testAbortChecksToken},
		{"ExpiredRecordsAreReplaced", testExpiredReplaced},
		{"TakenOverOwnerIsNotOwner", testTakenOver},
		{"KeyReuseReturnsHeldFingerprint", testKeyReuse},
		{"RecordsRoundTrip", testRoundTrip},
		{"GetMissingKey", testGetMissing},
		{"BadInputIsRefused", testBadInput},
		{"ConcurrentBeginOneKey", func(t *testing.T, s idempotency.Store, k *keySource) {
			testConcurrentBegin(t, s, k, h.Concurrency)
		}},
		{"RunnerRunsOnce", func(t *testing.T, s idempotency.Store, k *keySource) {
			testRunnerRunsOnce(t, s, k, h.Concurrency)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, h.Open(t), &keySource{prefix: run + "-" + tt.name})
		})
	}
	if h.Reopen != nil {
		t.Run("RecordsSurviveReopen", func(t *testing.T) {
			testReopen(t, h, &keySource{prefix: run + "-reopen"})
		})
	}
}

// keySource hands out keys unique to one run of one subtest.
type keySource struct {
	prefix string
	n      int
}

func (k *keySource) next() string {
	k.n++
	return fmt.Sprintf("%s-%d", k.prefix, k.n)
}

// base is a whole-millisecond "now" near the real time, so stores that
// also keep a physical TTL relative to their own clock behave.
func base() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func proposal(key, fp string, token uint64, now time.Time, ttl time.Duration) idempotency.Record {
	return idempotency.Record{
		Key: key, Status: idempotency.StatusInProgress, Token: token,
		Fingerprint: fp, Created: now, Expires: now.Add(ttl),
	}
}

func completion(p idempotency.Record, result string, now time.Time, ttl time.Duration) idempotency.Record {
	p.Status, p.Result, p.Expires = idempotency.StatusCompleted, []byte(result), now.Add(ttl)
	return p
}

// SameRecord reports whether a and b are equal, comparing times as
// instants and treating a nil and an empty Result alike. Stores may
// return times in another location than they were given.
func SameRecord(a, b idempotency.Record) bool {
	if !a.Created.Equal(b.Created) || !a.Expires.Equal(b.Expires) {
		return false
	}
	a.Created, a.Expires, b.Created, b.Expires = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if len(a.Result) == 0 && len(b.Result) == 0 {
		a.Result, b.Result = nil, nil
	}
	return reflect.DeepEqual(a, b)
}

func mustBegin(t *testing.T, s idempotency.Store, p idempotency.Record, wantCreated bool) idempotency.Record {
	t.Helper()
	held, created, err := s.Begin(context.Background(), p)
	if err != nil {
		t.Fatalf("Begin(%q, token %d) = %v", p.Key, p.Token, err)
	}
	if created != wantCreated {
		t.Fatalf("Begin(%q, token %d) created = %v; want %v (held %+v)", p.Key, p.Token, created, wantCreated, held)
	}
	if created && !SameRecord(held, p) {
		t.Fatalf("Begin(%q) created, held = %+v; want the proposal %+v", p.Key, held, p)
	}
	return held
}

func mustGet(t *testing.T, s idempotency.Store, key string, want idempotency.Record) {
	t.Helper()
	got, ok, err := s.Get(context.Background(), key)
	if err != nil || !ok || !SameRecord(got, want) {
		t.Fatalf("Get(%q) = %+v, %v, %v; want %+v, true, nil", key, got, ok, err, want)
	}
}

func wantNotOwner(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, idempotency.ErrNotOwner) {
		t.Fatalf("%s = %v; want ErrNotOwner", what, err)
	}
}

func testBeginNewKey(t *testing.T, s idempotency.Store, keys *keySource) {
	now := base()
	p := proposal(keys.next(), "fp", 1, now, time.Minute)
	mustBegin(t, s, p, true)
	mustGet(t, s, p.Key, p)
}

func testBeginHeldKey(t *testing.T, s idempotency.Store, keys *keySource) {
	ctx := context.Background()
	now := base()
	p := proposal(keys.next(), "fp", 1, now, time.Minute)
	mustBegin(t, s, p, true)
	// A live in-progress record is held: a second proposal (even a later
	// one, still before Expires) does not replace it.
	later := proposal(p.Key, "fp", 2, now.Add(59*time.Second), time.Minute)
	if held := mustBegin(t, s, later, false); !SameRecord(held, p) {
		t.Fatalf("Begin over a live in-progress record held %+v; want %+v", held, p)
	}
	// A live completed record is held too.
	done := completion(p, "result", now.Add(time.Second), time.Hour)
	if err := s.Complete(ctx, done); err != nil {
		t.Fatalf("Complete = %v", err)
	}
	again := proposal(p.Key, "fp", 3, now.Add(30*time.Minute), time.Minute)
	if held := mustBegin(t, s, again, false); !SameRecord(held, done) {
		t.Fatalf("Begin over a live completed record held %+v; want %+v", held, done)
	}
	mustGet(t, s, p.Key, done)
}

func testCompleteChecksToken(t *testing.T, s idempotency.Store, keys *keySource) {
	ctx := context.Background()
	now := base()
	p := proposal(keys.next(), "fp", 7, now, time.Minute)
	mustBegin(t, s, p, true)
	wrong := completion(p, "x", now, time.Hour)
	wrong.Token = 8
	wantNotOwner(t, "Complete with another token", s.Complete(ctx, wrong))
	mustGet(t, s, p.Key, p) // untouched
	done := completion(p, "result", now, time.Hour)
	if err := s.Complete(ctx, done); err != nil {
		t.Fatalf("Complete = %v", err)
	}
	mustGet(t, s, p.Key, done)
	// Completing again with the right token either fails with
	// ErrNotOwner and leaves the record alone (MemoryStore, FileStore), or
	// succeeds and stores the new completion: a store may let an owner
	// complete in two steps, first inside its own database transaction and
	// then through Complete (contrib/postgres). Nothing else is allowed.
	again := completion(p, "again", now, 2*time.Hour)
	switch err := s.Complete(ctx, again); {
	case err == nil:
		mustGet(t, s, p.Key, again)
	case errors.Is(err, idempotency.ErrNotOwner):
		mustGet(t, s, p.Key, done)
	default:
		t.Fatalf("Complete of a completed record by its owner = %v; want nil or ErrNotOwner", err)
	}
	// Another token never completes it.
	other := completion(p, "other", now, time.Hour)
	other.Token = 99
	wantNotOwner(t, "Complete of a completed record with another token", s.Complete(ctx, other))
	// A key that has no record at all.
	wantNotOwner(t, "Complete of a missing key", s.Complete(ctx, completion(proposal(keys.next(), "fp", 1, now, time.Minute), "x", now, time.Hour)))
}

func testAbortChecksToken(t *testing.T, s idempotency.Store, keys *keySource) {
	ctx := context.Background()
	now := base()
	p := proposal(keys.next(), "fp", 7, now, time.Minute)
	mustBegin(t, s, p, true)
	wantNotOwner(t, "Abort with another token", s.Abort(ctx, p.Key, 8))
	mustGet(t, s, p.Key, p)
	if err := s.Abort(ctx, p.Key, 7); err != nil {
		t.Fatalf("Abort = %v", err)
	}
	if got, ok, err := s.Get(ctx, p.Key); ok || err != nil {
		t.Fatalf("Get after Abort = %+v, %v, %v; want no record", got, ok, err)
	}
	wantNotOwner(t, "Abort repeated", s.Abort(ctx, p.Key, 7))
	wantNotOwner(t, "Complete after Abort", s.Complete(ctx, completion(p, "x", now, time.Hour)))
	// The key is free again at once.
	mustBegin(t, s, proposal(p.Key, "fp", 9, now.Add(time.Second), time.Minute), true)
	// A completed record cannot be aborted.
	q := proposal(keys.next(), "fp", 1, now, time.Minute)
	mustBegin(t, s, q, true)
	done := completion(q, "r", now, time.Hour)
	if err := s.Complete(ctx, done); err != nil {
		t.Fatalf("Complete = %v", err)
	}
	wantNotOwner(t, "Abort of a completed record", s.Abort(ctx, q.Key, 1))
	mustGet(t, s, q.Key, done)
}

func testExpiredReplaced(t *testing.T, s idempotency.Store, keys *keySource) {
	ctx := context.Background()
	now := base()
	// An in-progress record expires at exactly Expires.
	p := proposal(keys.next(), "fp", 1, now, time.Minute)
	mustBegin(t, s, p, true)
	justBefore := proposal(p.Key, "fp", 2, p.Expires.Add(-time.Millisecond), time.Minute)
	mustBegin(t, s, justBefore, false)
	at := proposal(p.Key, "fp2", 3, p.Expires, time.Minute)
	mustBegin(t, s, at, true)
	mustGet(t, s, p.Key, at)
	// A completed record expires too, and any status is replaced.
	done := completion(at, "r", at.Created, time.Hour)
	if err := s.Complete(ctx, done); err != nil {
		t.Fatalf("Complete = %v", err)
	}
	after := proposal(p.Key, "fp3", 4, done.Expires.Add(time.Millisecond), time.Minute)
	mustBegin(t, s, after, true)
	mustGet(t, s, p.Key, after)
}

func testTakenOver(t *testing.T, s idempotency.Store, keys *keySource) {
	ctx := context.Background()
	now := base()
	p := proposal(keys.next(), "fp", 1, now, time.Minute)
	mustBegin(t, s, p, true)
	q := proposal(p.Key, "fp", 2, now.Add(2*time.Minute), time.Minute)
	mustBegin(t, s, q, true)
	// The first owner woke up late: it owns nothing.
	wantNotOwner(t, "Complete by the owner whose record was taken over", s.Complete(ctx, completion(p, "late", now, time.Hour)))
	wantNotOwner(t, "Abort by the owner whose record was taken over", s.Abort(ctx, p.Key, 1))
	mustGet(t, s, p.Key, q)
	done := completion(q, "new", q.Created, time.Hour)
	if err := s.Complete(ctx, done); err != nil {
		t.Fatalf("Complete by the new owner = %v", err)
	}
	mustGet(t, s, p.Key, done)
}

func testKeyReuse(t *testing.T, s idempotency.Store, keys *keySource) {
	now := base()
	p := proposal(keys.next(), "payload-A", 1, now, time.Minute)
	mustBegin(t, s, p, true)
	other := proposal(p.Key, "payload-B", 2, now.Add(time.Second), time.Minute)
	held := mustBegin(t, s, other, false)
	if held.Fingerprint != "payload-A" {
		t.Fatalf("Begin with another payload held fingerprint %q; want %q", held.Fingerprint, "payload-A")
	}
}

func testRoundTrip(t *testing.T, s idempotency.Store, keys *keySource) {
	ctx := context.Background()
	now := base()
	big := strings.Repeat("0123456789abcdef", 4096) // 64 KiB
	tests := []struct {
		name string
		edit func(r *idempotency.Record)
	}{
		{"empty result", func(r *idempotency.Record) { r.Result = nil }},
		{"binary result", func(r *idempotency.Record) { r.Result = []byte{0, 1, 2, 0xff, '\n', '"', '\\'} }},
		{"64 KiB result", func(r *idempotency.Record) { r.Result = []byte(big) }},
		{"failed", func(r *idempotency.Record) { r.Failed, r.Result = true, []byte("card declined") }},
		{"omitted", func(r *idempotency.Record) { r.Omitted, r.Result = true, nil }},
		{"large token", func(r *idempotency.Record) {}},
		{"odd fingerprint", func(r *idempotency.Record) {}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := uint64(i + 1)
			fp := "sha256:abc"
			if tt.name == "large token" {
				token = 1<<64 - 1
			}
			if tt.name == "odd fingerprint" {
				fp = "fp with spaces, \"quotes\" and ünïcode"
			}
			p := proposal(keys.next(), fp, token, now, time.Minute)
			mustBegin(t, s, p, true)
			done := completion(p, "", now.Add(1500*time.Millisecond), 24*time.Hour)
			tt.edit(&done)
			if err := s.Complete(ctx, done); err != nil {
				t.Fatalf("Complete = %v", err)
			}
			mustGet(t, s, p.Key, done)
		})
	}
}

func testGetMissing(t *testing.T, s idempotency.Store, keys *keySource) {
	if rec, ok, err := s.Get(context.Background(), keys.next()); ok || err != nil {
		t.Fatalf("Get(missing) = %+v, %v, %v; want no record, no error", rec, ok, err)
	}
}

func testBadInput(t *testing.T, s idempotency.Store, keys *keySource) {
	ctx := context.Background()
	now := base()
	key := keys.next()
	bad := []struct {
		name string
		rec  idempotency.Record
	}{
		{"empty key", idempotency.Record{Key: "", Status: idempotency.StatusInProgress, Created: now, Expires: now.Add(time.Second)}},
		{"key with a space", idempotency.Record{Key: "a b", Status: idempotency.StatusInProgress, Created: now, Expires: now.Add(time.Second)}},
		{"key too long", idempotency.Record{Key: strings.Repeat("k", idempotency.MaxKeyLen+1), Status: idempotency.StatusInProgress, Created: now, Expires: now.Add(time.Second)}},
		{"completed status", idempotency.Record{Key: key, Status: idempotency.StatusCompleted, Created: now, Expires: now.Add(time.Second)}},
		{"zero status", idempotency.Record{Key: key, Created: now, Expires: now.Add(time.Second)}},
		{"expires when created", idempotency.Record{Key: key, Status: idempotency.StatusInProgress, Created: now, Expires: now}},
		{"expires before created", idempotency.Record{Key: key, Status: idempotency.StatusInProgress, Created: now, Expires: now.Add(-time.Second)}},
	}
	for _, b := range bad {
		if _, _, err := s.Begin(ctx, b.rec); err == nil {
			t.Errorf("Begin(%s) succeeded; want an error", b.name)
		}
	}
	if rec, ok, err := s.Get(ctx, key); ok || err != nil {
		t.Fatalf("Get(%q) after refused proposals = %+v, %v, %v; want no record", key, rec, ok, err)
	}
	p := proposal(key, "fp", 1, now, time.Minute)
	mustBegin(t, s, p, true)
	notDone := p
	if err := s.Complete(ctx, notDone); err == nil {
		t.Errorf("Complete with status in-progress succeeded; want an error")
	}
	if err := s.Complete(ctx, idempotency.Record{Key: "", Status: idempotency.StatusCompleted, Token: 1}); err == nil {
		t.Errorf("Complete with an empty key succeeded; want an error")
	}
	mustGet(t, s, key, p)
}

func testConcurrentBegin(t *testing.T, s idempotency.Store, keys *keySource, n int) {
	ctx := context.Background()
	for round := range 5 {
		key := keys.next()
		now := base()
		type result struct {
			held    idempotency.Record
			created bool
			err     error
		}
		results := make([]result, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				p := proposal(key, "fp", uint64(i+1), now, time.Minute)
				r := &results[i]
				r.held, r.created, r.err = s.Begin(ctx, p)
			}()
		}
		close(start)
		wg.Wait()
		winners := 0
		var winner idempotency.Record
		for i, r := range results {
			if r.err != nil {
				t.Fatalf("round %d: Begin #%d = %v", round, i, r.err)
			}
			if r.created {
				winners++
				winner = r.held
			}
		}
		if winners != 1 {
			t.Fatalf("round %d: %d of %d concurrent Begin calls created the record; want exactly 1", round, winners, n)
		}
		for i, r := range results {
			if !SameRecord(r.held, winner) {
				t.Fatalf("round %d: Begin #%d held %+v; want the winner's %+v", round, i, r.held, winner)
			}
		}
		mustGet(t, s, key, winner)
	}
}

func testRunnerRunsOnce(t *testing.T, s idempotency.Store, keys *keySource, n int) {
	ctx := context.Background()
	cfg := idempotency.DefaultConfig()
	cfg.OnInProgress = idempotency.RejectInProgress // every caller goes to the store
	runner, err := idempotency.NewRunner[string](s, idempotency.StringCodec{}, cfg)
	if err != nil {
		t.Fatalf("NewRunner: %v", err)
	}
	defer runner.Close()
	key := keys.next()
	var mu sync.Mutex // guards runs
	runs := 0
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				v, err := runner.Do(ctx, key, "fp", func(context.Context) (string, error) {
					mu.Lock()
					runs++
					mu.Unlock()
					return "charged", nil
				})
				if errors.Is(err, idempotency.ErrInProgress) {
					time.Sleep(time.Millisecond) // a retrying client, not a timing assertion
					continue
				}
				if err == nil && v != "charged" {
					err = fmt.Errorf("runner.Do = %q; want %q", v, "charged")
				}
				errs[i] = err
				return
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
	}
	if runs != 1 {
		t.Fatalf("fn ran %d times for %d concurrent callers of one key; want 1", runs, n)
	}
	if _, outcome, err := runner.DoOutcome(ctx, key, "fp", func(context.Context) (string, error) {
		t.Error("fn ran for a completed key")
		return "", nil
	}); err != nil || outcome != idempotency.Replayed {
		t.Fatalf("DoOutcome after completion = %v, %v; want Replayed, nil", outcome, err)
	}
	if _, err := runner.Do(ctx, key, "other-fp", func(context.Context) (string, error) { return "", nil }); !errors.Is(err, idempotency.ErrKeyReuse) {
		t.Fatalf("Do with another fingerprint = %v; want ErrKeyReuse", err)
	}
}

func testReopen(t *testing.T, h Harness, keys *keySource) {
	ctx := context.Background()
	s := h.Open(t)
	now := base()
	p := proposal(keys.next(), "fp", 1, now, time.Minute)
	mustBegin(t, s, p, true)
	q := proposal(keys.next(), "fp", 2, now, time.Minute)
	mustBegin(t, s, q, true)
	done := completion(q, "kept", now, time.Hour)
	if err := s.Complete(ctx, done); err != nil {
		t.Fatalf("Complete = %v", err)
	}
	a := proposal(keys.next(), "fp", 3, now, time.Minute)
	mustBegin(t, s, a, true)
	if err := s.Abort(ctx, a.Key, 3); err != nil {
		t.Fatalf("Abort = %v", err)
	}
	s = h.Reopen(t, s)
	mustGet(t, s, p.Key, p)
	mustGet(t, s, q.Key, done)
	if rec, ok, err := s.Get(ctx, a.Key); ok || err != nil {
		t.Fatalf("Get(aborted key) after reopen = %+v, %v, %v; want no record", rec, ok, err)
	}
	// The in-progress owner still owns its record after the restart.
	if err := s.Complete(ctx, completion(p, "after restart", now, time.Hour)); err != nil {
		t.Fatalf("Complete after reopen = %v", err)
	}
}
