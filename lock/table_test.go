package lock_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/distkit/distkit/lock"
)

var t0 = time.Unix(1_000_000, 0)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

const ttl = 100 * time.Millisecond

// newTestTable returns a table with sessions 1..n open at t0 with ttl.
func newTestTable(t *testing.T, delay time.Duration, n int) *lock.Table {
	t.Helper()
	cfg := lock.DefaultTableConfig()
	cfg.LockDelay = delay
	tbl, err := lock.NewTable(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for id := range n {
		if _, err := tbl.Open(t0, lock.SessionID(id+1), fmt.Sprint("c", id+1), ttl); err != nil {
			t.Fatal(err)
		}
	}
	return tbl
}

// describe renders the outcome of an Acquire for comparison.
func describe(g lock.Grant, granted bool, err error) string {
	switch {
	case err != nil:
		return "err:" + errName(err)
	case !granted:
		return "queued"
	}
	return fmt.Sprintf("granted s%d t%d", g.Session, g.Token)
}

// errName names err by its sentinel; nil is "ok" (a broken rule can make
// an expected error disappear, which must fail the table, not panic).
func errName(err error) string {
	if err == nil {
		return "ok"
	}
	for _, e := range []error{lock.ErrLocked, lock.ErrNotHolder, lock.ErrNoSession, lock.ErrInvalidArgument, lock.ErrCorrupt} {
		if errors.Is(err, e) {
			return strings.TrimPrefix(e.Error(), "lock: ")
		}
	}
	return err.Error()
}

func holder(tbl *lock.Table, name string) string {
	g, ok := tbl.Holder(name)
	if !ok {
		return "free"
	}
	return fmt.Sprintf("s%d t%d", g.Session, g.Token)
}

func grants(gs []lock.Grant) string {
	var b strings.Builder
	for _, g := range gs {
		fmt.Fprintf(&b, "[%s s%d t%d]", g.Name, g.Session, g.Token)
	}
	return b.String()
}

func TestTableScenarios(t *testing.T) {
	tests := []struct {
		name  string
		delay time.Duration
		run   func(tbl *lock.Table) string
		want  string
	}{
		{"free lock is granted with the first token", 0, func(tbl *lock.Table) string {
			return describe(tbl.Acquire(at(1), 1, "x", true))
		}, "granted s1 t1"},
		{"holder re-acquiring gets its grant back", 0, func(tbl *lock.Table) string {
			tbl.Acquire(at(1), 1, "x", true)
			return describe(tbl.Acquire(at(2), 1, "x", true))
		}, "granted s1 t1"},
		{"TryLock of a held lock fails", 0, func(tbl *lock.Table) string {
			tbl.Acquire(at(1), 1, "x", true)
			return describe(tbl.Acquire(at(2), 2, "x", false))
		}, "err:held by another session"},
		{"waiters are granted first come first served", 0, func(tbl *lock.Table) string {
			tbl.Acquire(at(1), 1, "x", true)
			tbl.Acquire(at(2), 3, "x", true)
			tbl.Acquire(at(3), 2, "x", true)
			tbl.Release(at(4), 1, "x", 1)
			first := grants(tbl.Granted())
			tbl.Release(at(5), 3, "x", 2)
			return first + grants(tbl.Granted())
		}, "[x s3 t2][x s2 t3]"},
		{"only the next waiter is woken", 0, func(tbl *lock.Table) string {
			tbl.Acquire(at(1), 1, "x", true)
			tbl.Acquire(at(2), 2, "x", true)
			tbl.Acquire(at(3), 3, "x", true)
			tbl.Release(at(4), 1, "x", 1)
			return grants(tbl.Granted()) + fmt.Sprint(tbl.Waiters("x"))
		}, "[x s2 t2][3]"},
		{"a stale release cannot free the new holder", 0, func(tbl *lock.Table) string {
			tbl.Acquire(at(1), 1, "x", true)
			tbl.Release(at(2), 1, "x", 1)
			tbl.Acquire(at(3), 2, "x", true)
			return errName(tbl.Release(at(4), 1, "x", 1)) + "; " + holder(tbl, "x")
		}, "not the holder of this grant; s2 t2"},
		{"another session's release with the holder's token fails", 0, func(tbl *lock.Table) string {
			tbl.Acquire(at(1), 1, "x", true)
			return errName(tbl.Release(at(2), 2, "x", 1)) + "; " + holder(tbl, "x")
		}, "not the holder of this grant; s1 t1"},
		{"a duplicate release fails and changes nothing", 0, func(tbl *lock.Table) string {
			tbl.Acquire(at(1), 1, "x", true)
			tbl.Release(at(2), 1, "x", 1)
			return errName(tbl.Release(at(3), 1, "x", 1)) + "; " + holder(tbl, "x")
		}, "not the holder of this grant; free"},
		{"a release with the wrong token fails", 0, func(tbl *lock.Table) string {
			tbl.Acquire(at(1), 1, "x", true)
			return errName(tbl.Release(at(2), 1, "x", 7)) + "; " + holder(tbl, "x")
		}, "not the holder of this grant; s1 t1"},
		{"an expired lease passes the lock to the waiter", 0, func(tbl *lock.Table) string {
			tbl.Acquire(at(1), 1, "x", true)
			tbl.Acquire(at(2), 2, "x", true)
			tbl.KeepAlive(at(50), 2)
			tbl.Tick(at(100)) // session 1 opened at 0 with a 100 ms TTL
			return grants(tbl.Granted())
		}, "[x s2 t2]"},
		{"the lease is not expired a moment before its TTL", 0, func(tbl *lock.Table) string {
			tbl.Acquire(at(1), 1, "x", true)
			tbl.Tick(at(99))
			return holder(tbl, "x")
		}, "s1 t1"},
		{"keepalives extend the lease", 0, func(tbl *lock.Table) string {
			tbl.Acquire(at(1), 1, "x", true)
			tbl.KeepAlive(at(90), 1)
			tbl.Tick(at(180))
			return holder(tbl, "x")
		}, "s1 t1"},
		{"a keepalive after expiry fails", 0, func(tbl *lock.Table) string {
			_, err := tbl.KeepAlive(at(100), 1)
			return errName(err)
		}, "no such session (expired or ended)"},
		{"ending a session frees its locks at once", 0, func(tbl *lock.Table) string {
			tbl.Acquire(at(1), 1, "x", true)
			tbl.Acquire(at(2), 2, "x", true)
			tbl.End(at(3), 1)
			return grants(tbl.Granted())
		}, "[x s2 t2]"},
		{"ending a session frees its locks without lock-delay", 30 * time.Millisecond, func(tbl *lock.Table) string {
			tbl.Acquire(at(1), 1, "x", true)
			tbl.Acquire(at(2), 2, "x", true)
			tbl.End(at(3), 1) // a clean end: the holder let go knowingly
			return grants(tbl.Granted())
		}, "[x s2 t2]"},
		{"a cancelled waiter leaves the queue", 0, func(tbl *lock.Table) string {
			tbl.Acquire(at(1), 1, "x", true)
			tbl.Acquire(at(2), 2, "x", true)
			tbl.Acquire(at(3), 3, "x", true)
			tbl.Cancel(at(4), 2, "x")
			tbl.Release(at(5), 1, "x", 1)
			return grants(tbl.Granted())
		}, "[x s3 t2]"},
		{"cancel after a grant releases it", 0, func(tbl *lock.Table) string {
			tbl.Acquire(at(1), 1, "x", true)
			tbl.Cancel(at(2), 1, "x")
			return holder(tbl, "x")
		}, "free"},
		{"lock-delay holds an expired lock back", 30 * time.Millisecond, func(tbl *lock.Table) string {
			tbl.Acquire(at(1), 1, "x", true)
			tbl.KeepAlive(at(90), 2)
			tbl.Tick(at(100))
			during := describe(tbl.Acquire(at(110), 2, "x", false))
			tbl.Acquire(at(120), 2, "x", true)
			tbl.Tick(at(130))
			return during + "; " + grants(tbl.Granted())
		}, "err:held by another session; [x s2 t2]"},
		{"lock-delay does not follow a clean release", 30 * time.Millisecond, func(tbl *lock.Table) string {
			tbl.Acquire(at(1), 1, "x", true)
			tbl.Release(at(2), 1, "x", 1)
			return describe(tbl.Acquire(at(3), 2, "x", false))
		}, "granted s2 t2"},
		{"rebase gives every lease a full TTL from the new time", 0, func(tbl *lock.Table) string {
			tbl.Acquire(at(1), 1, "x", true)
			tbl.Rebase(at(90)) // a new leader: it cannot know when session 1 was last renewed
			tbl.Tick(at(150))
			before := holder(tbl, "x")
			tbl.Tick(at(190))
			return before + "; " + holder(tbl, "x")
		}, "s1 t1; free"},
		{"tokens keep rising across locks and grants", 0, func(tbl *lock.Table) string {
			tbl.Acquire(at(1), 1, "x", true)
			tbl.Acquire(at(2), 2, "y", true)
			tbl.Release(at(3), 1, "x", 1)
			return describe(tbl.Acquire(at(4), 2, "x", true))
		}, "granted s2 t3"},
		{"time going back is ignored", 0, func(tbl *lock.Table) string {
			tbl.Acquire(at(1), 1, "x", true)
			tbl.Tick(at(100))
			tbl.Tick(at(10))
			_, err := tbl.KeepAlive(at(10), 1)
			return errName(err)
		}, "no such session (expired or ended)"},
		{"a late-stamped renewal does not shorten the lease", 0, func(tbl *lock.Table) string {
			tbl.KeepAlive(at(50), 1)
			tbl.KeepAlive(at(10), 1) // an earlier time counts as the latest seen, at(50)
			exp, _ := tbl.Expires(1)
			return exp.Sub(t0).String()
		}, "150ms"},
		{"acquire by an unknown session fails", 0, func(tbl *lock.Table) string {
			return describe(tbl.Acquire(at(1), 9, "x", true))
		}, "err:no such session (expired or ended)"},
		{"an empty name is rejected", 0, func(tbl *lock.Table) string {
			return describe(tbl.Acquire(at(1), 1, "", true))
		}, "err:invalid argument"},
		{"an oversized name is rejected", 0, func(tbl *lock.Table) string {
			return describe(tbl.Acquire(at(1), 1, strings.Repeat("n", lock.MaxNameLen+1), true))
		}, "err:invalid argument"},
		{"session 0 is rejected", 0, func(tbl *lock.Table) string {
			_, err := tbl.Open(at(1), 0, "", ttl)
			return errName(err)
		}, "invalid argument"},
		{"a TTL out of bounds is rejected", 0, func(tbl *lock.Table) string {
			_, err := tbl.Open(at(1), 7, "", time.Hour)
			return errName(err)
		}, "invalid argument"},
		{"reopening with another TTL is rejected", 0, func(tbl *lock.Table) string {
			_, err := tbl.Open(at(1), 1, "c1", 2*ttl)
			return errName(err)
		}, "invalid argument"},
		{"reopening with the same TTL renews", 0, func(tbl *lock.Table) string {
			tbl.Open(at(60), 1, "c1", ttl)
			exp, _ := tbl.Expires(1)
			return exp.Sub(t0).String()
		}, "160ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := newTestTable(t, tt.delay, 3)
			if got := tt.run(tbl); got != tt.want {
				t.Errorf("got %q; want %q", got, tt.want)
			}
		})
	}
}

func TestTableConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  lock.TableConfig
	}{
		{"negative delay", lock.TableConfig{LockDelay: -1, MinTTL: 1, MaxTTL: 2}},
		{"zero MinTTL", lock.TableConfig{MaxTTL: 2}},
		{"MaxTTL below MinTTL", lock.TableConfig{MinTTL: 3, MaxTTL: 2}},
	}
	for _, tt := range tests {
		if _, err := lock.NewTable(tt.cfg); !errors.Is(err, lock.ErrInvalidConfig) {
			t.Errorf("%s: NewTable err = %v; want ErrInvalidConfig", tt.name, err)
		}
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	tbl := newTestTable(t, 30*time.Millisecond, 3)
	tbl.Acquire(at(1), 1, "x", true)
	tbl.Acquire(at(2), 2, "x", true)
	tbl.Acquire(at(3), 3, "y", true)
	tbl.Acquire(at(4), 2, "y", true)
	tbl.KeepAlive(at(60), 2)
	tbl.KeepAlive(at(60), 3)
	tbl.Tick(at(100)) // session 1 expires: x enters its lock-delay
	snap := tbl.Snapshot()
	restored := newTestTable(t, 30*time.Millisecond, 0)
	if err := restored.Restore(snap); err != nil {
		t.Fatalf("Restore = %v", err)
	}
	if got := restored.Snapshot(); string(got) != string(snap) {
		t.Errorf("Snapshot after Restore differs:\n got %x\nwant %x", got, snap)
	}
	restored.Tick(at(130))
	if got, want := grants(restored.Granted()), "[x s2 t3]"; got != want {
		t.Errorf("grants after the restored lock-delay = %s; want %s", got, want)
	}
}

func TestRestoreRejectsCorruptSnapshots(t *testing.T) {
	tbl := newTestTable(t, 0, 2)
	tbl.Acquire(at(1), 1, "x", true)
	tbl.Acquire(at(2), 2, "x", true)
	good := tbl.Snapshot()
	for cut := range len(good) {
		fresh := newTestTable(t, 0, 1)
		before := fresh.Snapshot()
		if err := fresh.Restore(good[:cut]); !errors.Is(err, lock.ErrCorrupt) {
			t.Errorf("Restore(first %d of %d bytes) = %v; want ErrCorrupt", cut, len(good), err)
		}
		if after := fresh.Snapshot(); string(after) != string(before) {
			t.Errorf("failed Restore(first %d bytes) changed the table", cut)
		}
	}
}

func FuzzTableRestore(f *testing.F) {
	tbl, _ := lock.NewTable(lock.DefaultTableConfig())
	tbl.Open(at(0), 1, "a", ttl)
	tbl.Open(at(0), 2, "b", ttl)
	tbl.Acquire(at(1), 1, "x", true)
	tbl.Acquire(at(1), 2, "x", true)
	f.Add(tbl.Snapshot())
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		tbl, _ := lock.NewTable(lock.DefaultTableConfig())
		if err := tbl.Restore(b); err != nil {
			return
		}
		// A restored table must work and re-encode to a restorable state.
		snap := tbl.Snapshot()
		tbl.Tick(at(500))
		tbl.Acquire(at(501), 1, "x", true)
		again, _ := lock.NewTable(lock.DefaultTableConfig())
		if err := again.Restore(snap); err != nil {
			t.Fatalf("Restore(Snapshot()) of a restored table = %v", err)
		}
	})
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add(lock.AppendRequest(nil, lock.Request{Op: lock.OpAcquire, Session: 7, Name: "x", Owner: "n1", TTL: ttl, Token: 3}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := lock.DecodeRequest(b)
		if err != nil {
			return
		}
		again, err := lock.DecodeRequest(lock.AppendRequest(nil, req))
		if err != nil || again != req {
			t.Fatalf("round trip of %+v = %+v, %v", req, again, err)
		}
	})
}

func TestTableStats(t *testing.T) {
	tbl := newTestTable(t, 30*time.Millisecond, 3)
	tbl.Acquire(at(1), 1, "x", true)
	tbl.Acquire(at(2), 2, "x", true)
	tbl.Acquire(at(3), 3, "y", true)
	tbl.KeepAlive(at(90), 2)
	tbl.Tick(at(100)) // sessions 1 and 3 expire: x and y enter their lock-delay, x with a waiter
	got := tbl.Stats()
	want := lock.Stats{Sessions: 1, Held: 0, Waiting: 1, Delayed: 2, LastToken: 2}
	if got != want {
		t.Errorf("Stats() = %+v; want %+v", got, want)
	}
}

func TestZeroTableRejectsOpensClearly(t *testing.T) {
	var tbl lock.Table
	if _, err := tbl.Open(at(0), 1, "", ttl); !errors.Is(err, lock.ErrInvalidArgument) {
		t.Errorf("zero Table Open = %v; want ErrInvalidArgument (no TTL allowed by a zero config)", err)
	}
	if _, _, err := tbl.Acquire(at(0), 1, "x", true); !errors.Is(err, lock.ErrNoSession) {
		t.Errorf("zero Table Acquire = %v; want ErrNoSession", err)
	}
}

// TestTableHandsOverInNameOrder: when a session holding several locks
// ends or expires, its locks pass to their next waiters in name order, so
// every replica applying the same log hands out the same tokens (the
// session's locks live in a map, whose order differs from run to run:
// hence the repetitions).
func TestTableHandsOverInNameOrder(t *testing.T) {
	names := []string{"h", "c", "f", "a", "g", "b", "e", "d"}
	want := "[a s2 t9][b s2 t10][c s2 t11][d s2 t12][e s2 t13][f s2 t14][g s2 t15][h s2 t16]"
	for _, end := range []struct {
		how string
		do  func(tbl *lock.Table)
	}{
		{"End", func(tbl *lock.Table) { tbl.End(at(3), 1) }},
		{"expiry", func(tbl *lock.Table) { tbl.KeepAlive(at(90), 2); tbl.Tick(at(100)) }},
	} {
		for range 20 {
			tbl := newTestTable(t, 0, 2)
			for _, n := range names {
				tbl.Acquire(at(1), 1, n, true)
				tbl.Acquire(at(2), 2, n, true)
			}
			end.do(tbl)
			if got := grants(tbl.Granted()); got != want {
				t.Fatalf("grants after %s = %s; want %s", end.how, got, want)
			}
		}
	}
}
