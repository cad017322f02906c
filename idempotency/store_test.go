package idempotency

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/distkit/distkit/clock"
)

// storeFactory builds an empty store on clk for the contract tests. reopen,
// if not nil, closes the store and opens it again from its durable state.
type storeFactory struct {
	name string
	open func(t *testing.T, clk clock.Source) (s Store, reopen func() Store)
}

func storeFactories() []storeFactory {
	return []storeFactory{
		{"memory/1-shard", func(t *testing.T, clk clock.Source) (Store, func() Store) {
			return mustMemoryStore(t, MemoryConfig{Shards: 1, MaxEntries: 1 << 20, Clock: clk}), nil
		}},
		{"memory/32-shards", func(t *testing.T, clk clock.Source) (Store, func() Store) {
			return mustMemoryStore(t, MemoryConfig{Shards: 32, MaxEntries: 1 << 20, Clock: clk}), nil
		}},
		{"file", func(t *testing.T, clk clock.Source) (Store, func() Store) {
			path := filepath.Join(t.TempDir(), "idem.log")
			// Reopening is a clean restart, so fsync cannot change what
			// these tests see; TestFileStoreGroupCommit and the others
			// with their own configs run with it.
			cfg := FileConfig{Clock: clk, CompactMinFrames: 16, skipFsync: true}
			s := mustFileStore(t, path, cfg)
			cur := s
			t.Cleanup(func() { cur.Close() })
			return s, func() Store {
				if err := cur.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				cur = mustFileStore(t, path, cfg)
				return cur
			}
		}},
	}
}

func mustMemoryStore(t *testing.T, cfg MemoryConfig) *MemoryStore {
	t.Helper()
	s, err := NewMemoryStore(cfg)
	if err != nil {
		t.Fatalf("NewMemoryStore: %v", err)
	}
	return s
}

func mustFileStore(t testing.TB, path string, cfg FileConfig) *FileStore {
	t.Helper()
	s, err := OpenFileStore(path, cfg)
	if err != nil {
		t.Fatalf("OpenFileStore: %v", err)
	}
	return s
}

func inProgress(key, fp string, token uint64, now time.Time, ttl time.Duration) Record {
	return Record{Key: key, Status: StatusInProgress, Token: token, Fingerprint: fp, Created: now, Expires: now.Add(ttl)}
}

func completed(p Record, result string, now time.Time, ttl time.Duration) Record {
	p.Status, p.Result, p.Expires = StatusCompleted, []byte(result), now.Add(ttl)
	return p
}

func TestStoreContract(t *testing.T) {
	for _, f := range storeFactories() {
		t.Run(f.name, func(t *testing.T) {
			ctx := context.Background()
			clk := clock.NewManual(epoch)
			s, _ := f.open(t, clk)
			now := clk.Now()
			p := inProgress("k", "fp", 1, now, time.Minute)
			if held, created, err := s.Begin(ctx, p); !created || err != nil || !sameRecord(held, p) {
				t.Fatalf("Begin(new) = %+v, %v, %v; want the proposal, created", held, created, err)
			}
			p2 := inProgress("k", "fp2", 2, now, time.Minute)
			if held, created, err := s.Begin(ctx, p2); created || err != nil || !sameRecord(held, p) {
				t.Fatalf("Begin(held) = %+v, %v, %v; want the first record, not created", held, created, err)
			}
			if err := s.Complete(ctx, completed(p2, "x", now, time.Hour)); !errors.Is(err, ErrNotOwner) {
				t.Fatalf("Complete with wrong token = %v; want ErrNotOwner", err)
			}
			if err := s.Abort(ctx, "k", 2); !errors.Is(err, ErrNotOwner) {
				t.Fatalf("Abort with wrong token = %v; want ErrNotOwner", err)
			}
			done := completed(p, "result", now, time.Hour)
			if err := s.Complete(ctx, done); err != nil {
				t.Fatalf("Complete = %v", err)
			}
			if got, ok, err := s.Get(ctx, "k"); !ok || err != nil || !sameRecord(got, done) {
				t.Fatalf("Get = %+v, %v, %v; want %+v", got, ok, err, done)
			}
			if err := s.Abort(ctx, "k", 1); !errors.Is(err, ErrNotOwner) {
				t.Fatalf("Abort of a completed record = %v; want ErrNotOwner", err)
			}
			// Expired records are replaced.
			clk.Advance(time.Hour)
			p3 := inProgress("k", "fp3", 3, clk.Now(), time.Minute)
			if _, created, err := s.Begin(ctx, p3); !created || err != nil {
				t.Fatalf("Begin over an expired record = %v, %v; want created", created, err)
			}
			if err := s.Abort(ctx, "k", 3); err != nil {
				t.Fatalf("Abort = %v", err)
			}
			if _, ok, _ := s.Get(ctx, "k"); ok {
				t.Fatalf("Get after Abort found a record")
			}
			// Bad proposals are errors, not panics or corruption.
			bad := []Record{
				{Key: "", Status: StatusInProgress, Created: now, Expires: now.Add(time.Second)},
				{Key: "k", Status: StatusCompleted, Created: now, Expires: now.Add(time.Second)},
				{Key: "k", Status: StatusInProgress, Created: now, Expires: now},
			}
			for _, b := range bad {
				if _, _, err := s.Begin(ctx, b); err == nil {
					t.Errorf("Begin(%+v) succeeded; want an error", b)
				}
			}
			if err := s.Complete(ctx, Record{Key: "k", Status: StatusInProgress}); err == nil {
				t.Errorf("Complete with in-progress status succeeded; want an error")
			}
		})
	}
}

// sameRecord compares records, with times compared as instants.
func sameRecord(a, b Record) bool {
	if !a.Created.Equal(b.Created) || !a.Expires.Equal(b.Expires) {
		return false
	}
	a.Created, a.Expires, b.Created, b.Expires = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if len(a.Result) == 0 && len(b.Result) == 0 {
		a.Result, b.Result = nil, nil
	}
	return reflect.DeepEqual(a, b)
}

// refStore is the dumb reference the stores are checked against.
type refStore map[string]Record

func (m refStore) begin(p Record) (Record, bool) {
	if cur, ok := m[p.Key]; ok && cur.live(p.Created) {
		return cur, false
	}
	m[p.Key] = p
	return p, true
}

func (m refStore) owned(key string, token uint64) bool {
	cur, ok := m[key]
	return ok && cur.Status == StatusInProgress && cur.Token == token
}

// TestStoresMatchReference drives each store and the reference with the same
// random operations (seeded; the seed is printed on failure) and compares
// every answer. The file store is also closed and reopened at random points,
// and compacts often (CompactMinFrames 16).
func TestStoresMatchReference(t *testing.T) {
	for _, f := range storeFactories() {
		t.Run(f.name, func(t *testing.T) {
			forSeeds(t, 20, 500, func(t *testing.T, seed uint64) { checkAgainstReference(t, f, seed) })
		})
	}
}

func checkAgainstReference(t *testing.T, f storeFactory, seed uint64) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 1))
	clk := clock.NewManual(epoch)
	s, reopen := f.open(t, clk)
	ref := refStore{}
	keys := []string{"a", "b", "c", "d", "e", "f"}
	compactions, everCompacted := uint64(0), false
	for step := range 300 {
		clk.Advance(time.Duration(rng.IntN(20)) * time.Second)
		now := clk.Now()
		key := keys[rng.IntN(len(keys))]
		token := uint64(rng.IntN(4)) // few tokens, so stale owners collide
		switch op := rng.IntN(10); {
		case op < 4:
			p := inProgress(key, fmt.Sprint("fp", rng.IntN(2)), token, now, 30*time.Second)
			held, created, err := s.Begin(ctx, p)
			wantHeld, wantCreated := ref.begin(p)
			if err != nil || created != wantCreated || !sameRecord(held, wantHeld) {
				t.Fatalf("step %d: Begin(%+v) = %+v, %v, %v; want %+v, %v", step, p, held, created, err, wantHeld, wantCreated)
			}
		case op < 7:
			cur := ref[key]
			if rng.IntN(4) > 0 { // mostly the real owner
				token = cur.Token
			}
			rec := completed(Record{Key: key, Token: token, Fingerprint: cur.Fingerprint, Created: cur.Created},
				fmt.Sprint("result-", step), now, time.Minute)
			err := s.Complete(ctx, rec)
			if owned := ref.owned(key, token); owned != (err == nil) {
				t.Fatalf("step %d: Complete(%q, token %d) = %v; want ok=%v", step, key, token, err, owned)
			}
			if err == nil {
				ref[key] = rec
			}
		case op < 8:
			if rng.IntN(4) > 0 {
				token = ref[key].Token
			}
			err := s.Abort(ctx, key, token)
			if owned := ref.owned(key, token); owned != (err == nil) {
				t.Fatalf("step %d: Abort(%q, %d) = %v; want ok=%v", step, key, token, err, owned)
			}
			if err == nil {
				delete(ref, key)
			}
		case op < 9 && reopen != nil:
			s = reopen()
			compactions = 0 // counters restart with the new instance
		default:
			got, ok, err := s.Get(ctx, key)
			want, wantOK := ref[key]
			// Stores may forget expired records at any time.
			if err != nil || ok && got.live(now) != (wantOK && want.live(now)) ||
				ok && got.live(now) && !sameRecord(got, want) || !ok && wantOK && want.live(now) {
				t.Fatalf("step %d: Get(%q) = %+v, %v, %v; want %+v, %v", step, key, got, ok, err, want, wantOK)
			}
		}
		// The file store drops expired records when it compacts; so does
		// the reference, at the same moment.
		if fs, isFile := s.(*FileStore); isFile {
			if c := fs.Stats().Compactions; c != compactions {
				compactions, everCompacted = c, true
				for k, r := range ref {
					if !r.live(now) {
						delete(ref, k)
					}
				}
			}
		}
	}
	if _, isFile := s.(*FileStore); isFile && !everCompacted {
		t.Errorf("file store never compacted; the test does not exercise compaction")
	}
}

func TestMemoryStoreEviction(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewManual(epoch)
	s := mustMemoryStore(t, MemoryConfig{Shards: 1, MaxEntries: 3, Clock: clk})
	now := clk.Now()
	begin := func(key string) Record {
		p := inProgress(key, "fp", 1, clk.Now(), time.Minute)
		if _, created, err := s.Begin(ctx, p); !created || err != nil {
			t.Fatalf("Begin(%q) = %v, %v; want created", key, created, err)
		}
		return p
	}
	a, b := begin("a"), begin("b")
	begin("c")
	// Full of in-progress records: nothing may be evicted.
	if _, _, err := s.Begin(ctx, inProgress("d", "fp", 1, now, time.Minute)); !errors.Is(err, ErrStoreFull) {
		t.Fatalf("Begin on a store full of in-progress records = %v; want ErrStoreFull", err)
	}
	// Complete b first, then a: b is the oldest completed record.
	s.Complete(ctx, completed(b, "B", now, time.Hour))
	s.Complete(ctx, completed(a, "A", now, time.Hour))
	begin("d")
	if _, ok, _ := s.Get(ctx, "b"); ok {
		t.Errorf("b is still stored; want it evicted as the oldest completed record")
	}
	for _, k := range []string{"a", "c", "d"} {
		if _, ok, _ := s.Get(ctx, k); !ok {
			t.Errorf("%q was evicted; want only b evicted", k)
		}
	}
	if st := s.Stats(); st.Entries != 3 || st.Evictions != 1 {
		t.Errorf("Stats() = %+v; want 3 entries, 1 eviction", st)
	}
	// An expired in-progress record may go.
	clk.Advance(2 * time.Minute)
	begin("e")
	if _, ok, _ := s.Get(ctx, "c"); ok {
		t.Errorf("expired in-progress c still stored; want it dropped")
	}
	if got := s.Stats().Expired; got != 1 {
		t.Errorf("Stats().Expired = %d; want 1", got)
	}
}

func TestMemoryStoreBoundWithManyShards(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewManual(epoch)
	s := mustMemoryStore(t, MemoryConfig{Shards: 8, MaxEntries: 100, Clock: clk})
	for i := range 1000 {
		p := inProgress(fmt.Sprint("k", i), "fp", 1, clk.Now(), time.Minute)
		if _, _, err := s.Begin(ctx, p); err != nil {
			t.Fatalf("Begin %d: %v", i, err)
		}
		if err := s.Complete(ctx, completed(p, "r", clk.Now(), time.Hour)); err != nil {
			t.Fatalf("Complete %d: %v", i, err)
		}
		if n := s.Len(); n > 100 {
			t.Fatalf("after %d inserts Len() = %d; want ≤ 100", i+1, n)
		}
	}
	// The bound is global and exact: the store holds the 100 most recently
	// completed records, whichever shards they hash to.
	if n := s.Len(); n != 100 {
		t.Errorf("Len() = %d; want 100", n)
	}
	for i := range 1000 {
		key := fmt.Sprint("k", i)
		_, ok, _ := s.Get(ctx, key)
		if want := i >= 900; ok != want {
			t.Errorf("Get(%q) found = %v; want %v (only the 100 newest kept)", key, ok, want)
		}
	}
	if st := s.Stats(); st.Evictions != 900 {
		t.Errorf("Stats().Evictions = %d; want 900", st.Evictions)
	}
}

// TestMemoryStoreEvictsOldestAcrossShards: the record evicted is the oldest
// completed one in the whole store, not in the new key's shard, and live
// in-progress records in any shard are kept.
func TestMemoryStoreEvictsOldestAcrossShards(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewManual(epoch)
	s := mustMemoryStore(t, MemoryConfig{Shards: 16, MaxEntries: 20, Clock: clk})
	var running []string
	for i := range 20 {
		key := fmt.Sprint("k", i)
		p := inProgress(key, "fp", 1, clk.Now(), time.Hour)
		if _, _, err := s.Begin(ctx, p); err != nil {
			t.Fatalf("Begin(%q) = %v", key, err)
		}
		if i%2 == 1 {
			running = append(running, key) // odd keys stay in progress
			continue
		}
		if err := s.Complete(ctx, completed(p, "r", clk.Now(), time.Hour)); err != nil {
			t.Fatalf("Complete(%q) = %v", key, err)
		}
	}
	// Ten new keys evict the ten completed ones, oldest first.
	for i := range 10 {
		key := fmt.Sprint("new", i)
		if _, _, err := s.Begin(ctx, inProgress(key, "fp", 1, clk.Now(), time.Hour)); err != nil {
			t.Fatalf("Begin(%q) = %v", key, err)
		}
		gone := fmt.Sprint("k", 2*i)
		if _, ok, _ := s.Get(ctx, gone); ok {
			t.Errorf("after Begin(%q), Get(%q) found; want it evicted as the oldest completed record", key, gone)
		}
		if next := fmt.Sprint("k", 2*i+2); i < 9 {
			if _, ok, _ := s.Get(ctx, next); !ok {
				t.Errorf("after Begin(%q), Get(%q) not found; want it kept (newer)", key, next)
			}
		}
	}
	for _, key := range running {
		if _, ok, _ := s.Get(ctx, key); !ok {
			t.Errorf("in-progress %q evicted; want it kept", key)
		}
	}
	if _, _, err := s.Begin(ctx, inProgress("one-too-many", "fp", 1, clk.Now(), time.Hour)); !errors.Is(err, ErrStoreFull) {
		t.Errorf("Begin on a store full of in-progress records = %v; want ErrStoreFull", err)
	}
	if n := s.Len(); n != 20 {
		t.Errorf("Len() = %d; want 20", n)
	}
}

// TestMemoryStoreBoundConcurrent: concurrent Begins, Completes and Aborts
// of many keys never take the store past MaxEntries.
func TestMemoryStoreBoundConcurrent(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewManual(epoch)
	const limit = 64
	s := mustMemoryStore(t, MemoryConfig{Shards: 8, MaxEntries: limit, Clock: clk})
	var wg sync.WaitGroup
	errs := make(chan error, 8) // one per worker at most
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				p := inProgress(fmt.Sprint(w, "-", i), "fp", uint64(i+1), clk.Now(), time.Hour)
				if _, _, err := s.Begin(ctx, p); err != nil {
					errs <- fmt.Errorf("Begin(%q) = %v", p.Key, err)
					return
				}
				var err error
				if i%3 == 0 {
					err = s.Abort(ctx, p.Key, p.Token)
				} else {
					err = s.Complete(ctx, completed(p, "r", clk.Now(), time.Hour))
				}
				if err != nil {
					errs <- fmt.Errorf("finishing %q: %v", p.Key, err)
					return
				}
				if n := s.Len(); n > limit {
					errs <- fmt.Errorf("Len() = %d; want ≤ %d", n, limit)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := s.Len(); n != limit {
		t.Errorf("Len() after the run = %d; want %d (full)", n, limit)
	}
}

func TestMemoryConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  MemoryConfig
	}{
		{"zero shards", MemoryConfig{Shards: 0, MaxEntries: 1, Clock: clock.System{}}},
		{"zero entries", MemoryConfig{Shards: 1, MaxEntries: 0, Clock: clock.System{}}},
		{"nil clock", MemoryConfig{Shards: 1, MaxEntries: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewMemoryStore(tt.cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("NewMemoryStore(%+v) = %v; want ErrInvalidConfig", tt.cfg, err)
			}
		})
	}
}

// TestMemoryStoreReplacedRecordIsNewest: an expired record replaced by a new
// Begin counts as created then, so at the bound a record completed before
// the replacement goes first.
func TestMemoryStoreReplacedRecordIsNewest(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewManual(epoch)
	s := mustMemoryStore(t, MemoryConfig{Shards: 1, MaxEntries: 2, Clock: clk})
	mustBegin := func(p Record) {
		t.Helper()
		if _, created, err := s.Begin(ctx, p); !created || err != nil {
			t.Fatalf("Begin(%q) = %v, %v; want created", p.Key, created, err)
		}
	}
	mustBegin(inProgress("a", "fp", 1, clk.Now(), time.Minute))
	b := inProgress("b", "fp", 2, clk.Now(), time.Minute)
	mustBegin(b)
	if err := s.Complete(ctx, completed(b, "B", clk.Now(), time.Hour)); err != nil {
		t.Fatalf("Complete(b) = %v", err)
	}
	clk.Advance(2 * time.Minute)
	mustBegin(inProgress("a", "fp", 3, clk.Now(), time.Minute)) // replaces the expired a
	clk.Advance(2 * time.Minute)                                // the new a expires too
	mustBegin(inProgress("c", "fp", 4, clk.Now(), time.Minute))
	if _, ok, _ := s.Get(ctx, "b"); ok {
		t.Errorf("b (completed first) is still stored; want it evicted as the oldest record")
	}
	if rec, ok, _ := s.Get(ctx, "a"); !ok || rec.Token != 3 {
		t.Errorf("Get(a) = %+v, %v; want the replacement (token 3) kept", rec, ok)
	}
}
