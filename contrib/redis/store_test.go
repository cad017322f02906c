package dkredis_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distkit/distkit/idempotency"
	"github.com/distkit/distkit/idempotency/storetest"

	dkredis "github.com/distkit/distkit/contrib/redis"
)

func newStore(tb testing.TB, c redis.UniversalClient, prefix string) *dkredis.Store {
	tb.Helper()
	cfg := dkredis.DefaultConfig()
	cfg.Prefix = prefix
	s, err := dkredis.New(c, cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return s
}

func testPrefix() string { return fmt.Sprintf("distkit-test:%08x:", rand.Uint32()) }

// TestStoreContract runs the idempotency.Store contract against Redis.
func TestStoreContract(t *testing.T) {
	c := newClient(t)
	s := newStore(t, c, testPrefix())
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T) idempotency.Store { return s },
		// A new client is a restarted process: the records are Redis's.
		Reopen: func(t *testing.T, _ idempotency.Store) idempotency.Store {
			return newStore(t, newClient(t), s.Prefix())
		},
		Concurrency: 32,
	})
}

// TestClientKilledMidOperation: a process begins a key and dies (its
// client is closed) before completing. The record keeps the key in
// progress for every other process until it expires; then one takes it
// over, and the dead process's late completion is refused.
func TestClientKilledMidOperation(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix()
	dying := redis.NewClient(&redis.Options{Addr: addr(t)})
	a := newStore(t, dying, prefix)
	b := newStore(t, newClient(t), prefix)
	now := time.Now().UTC().Truncate(time.Millisecond)
	key := "charge-1"
	p := idempotency.Record{Key: key, Status: idempotency.StatusInProgress, Token: 1, Fingerprint: "fp", Created: now, Expires: now.Add(time.Minute)}
	if _, created, err := a.Begin(ctx, p); err != nil || !created {
		t.Fatalf("Begin by A = %v, %v; want created", created, err)
	}
	dying.Close() // A crashes between its effect and Complete

	q := p
	q.Token, q.Created, q.Expires = 2, now.Add(30*time.Second), now.Add(90*time.Second)
	if held, created, err := b.Begin(ctx, q); err != nil || created || held.Token != 1 {
		t.Fatalf("Begin by B before expiry = %+v, %v, %v; want A's record held", held, created, err)
	}
	q.Created, q.Expires = now.Add(time.Minute), now.Add(2*time.Minute)
	if _, created, err := b.Begin(ctx, q); err != nil || !created {
		t.Fatalf("Begin by B after expiry = %v, %v; want created", created, err)
	}
	// A restarts with a new client and tries to finish its old attempt.
	a2 := newStore(t, newClient(t), prefix)
	late := p
	late.Status, late.Result, late.Expires = idempotency.StatusCompleted, []byte("late"), now.Add(time.Hour)
	if err := a2.Complete(ctx, late); !errors.Is(err, idempotency.ErrNotOwner) {
		t.Fatalf("late Complete by restarted A = %v; want ErrNotOwner", err)
	}
	if err := a2.Abort(ctx, key, 1); !errors.Is(err, idempotency.ErrNotOwner) {
		t.Fatalf("late Abort by restarted A = %v; want ErrNotOwner", err)
	}
	if rec, ok, err := b.Get(ctx, key); err != nil || !ok || rec.Token != 2 {
		t.Fatalf("Get = %+v, %v, %v; want B's record", rec, ok, err)
	}
}

// TestRunnersInTwoProcessesRunOnce: two Runners with their own clients (two
// processes) and many callers each run fn once per key between them.
func TestRunnersInTwoProcessesRunOnce(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix()
	var runs atomic.Int64
	var runners []*idempotency.Runner[string]
	for range 2 {
		r, err := idempotency.NewRunner[string](newStore(t, newClient(t), prefix), idempotency.StringCodec{}, idempotency.DefaultConfig())
		if err != nil {
			t.Fatalf("NewRunner: %v", err)
		}
		defer r.Close()
		runners = append(runners, r)
	}
	const keys, callers = 20, 8
	errs := make(chan error, keys*callers)
	for k := range keys {
		for c := range callers {
			go func() {
				key := fmt.Sprintf("order-%d", k)
				for {
					v, err := runners[c%2].Do(ctx, key, "fp", func(context.Context) (string, error) {
						runs.Add(1)
						return "done-" + key, nil
					})
					if errors.Is(err, idempotency.ErrInProgress) { // held by the other process: retry
						time.Sleep(time.Millisecond)
						continue
					}
					if err == nil && v != "done-"+key {
						err = fmt.Errorf("Do(%s) = %q", key, v)
					}
					errs <- err
					return
				}
			}()
		}
	}
	for range keys * callers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := runs.Load(); got != keys {
		t.Fatalf("fn ran %d times for %d keys; want once per key", got, keys)
	}
}

// TestCorruptRecordIsAnError: a hash under the prefix that this package did
// not write is reported as ErrCorrupt, not decoded into a wrong record.
func TestCorruptRecordIsAnError(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	prefix := testPrefix()
	s := newStore(t, c, prefix)
	tests := []struct {
		name   string
		fields []any
	}{
		{"bad status", []any{"s", "9", "t", "1", "f", "", "c", "1", "e", "2"}},
		{"bad token", []any{"s", "1", "t", "-1", "f", "", "c", "1", "e", "2"}},
		{"no token", []any{"s", "1", "f", "", "c", "1", "e", "2"}},
		{"bad expires", []any{"s", "1", "t", "1", "f", "", "c", "1", "e", "soon"}},
		{"bad flags", []any{"s", "2", "t", "1", "f", "", "x", "7", "c", "1", "e", "2"}},
	}
	for i, tt := range tests {
		key := fmt.Sprintf("corrupt-%d", i)
		if err := c.HSet(ctx, prefix+key, tt.fields...).Err(); err != nil {
			t.Fatalf("HSET: %v", err)
		}
		t.Cleanup(func() { c.Del(context.Background(), prefix+key) })
		if rec, ok, err := s.Get(ctx, key); !errors.Is(err, dkredis.ErrCorrupt) {
			t.Errorf("%s: Get = %+v, %v, %v; want ErrCorrupt", tt.name, rec, ok, err)
		}
	}
}

func TestNewRefusesBadInput(t *testing.T) {
	if _, err := dkredis.New(nil, dkredis.DefaultConfig()); !errors.Is(err, dkredis.ErrInvalidConfig) {
		t.Errorf("New(nil client) = %v; want ErrInvalidConfig", err)
	}
	var zero *dkredis.Store
	if _, _, err := zero.Get(context.Background(), "k"); !errors.Is(err, dkredis.ErrInvalidConfig) {
		t.Errorf("nil Store Get = %v; want ErrInvalidConfig", err)
	}
}

// BenchmarkRedisStoreDo measures Runner.Do over the Redis store with new
// keys (Get, Begin, fn, Complete: three round trips) from parallel callers.
func BenchmarkRedisStoreDo(b *testing.B) {
	ctx := context.Background()
	c := newClient(b)
	runner, err := idempotency.NewRunner[string](newStore(b, c, testPrefix()), idempotency.StringCodec{}, idempotency.DefaultConfig())
	if err != nil {
		b.Fatalf("NewRunner: %v", err)
	}
	defer runner.Close()
	b.SetParallelism(64 / max(1, testingGOMAXPROCS()))
	b.ReportAllocs()
	var n atomic.Int64
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := fmt.Sprintf("bench-%d", n.Add(1))
			if _, err := runner.Do(ctx, key, "fp", func(context.Context) (string, error) { return "ok", nil }); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}
