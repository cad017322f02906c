package lock_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/distkit/distkit/lock"
	"pgregory.net/rapid"
)

// TestTableMatchesReference runs random operation sequences on a Table and
// on the dumb reference, comparing every result, every grant handed to a
// waiter, and the whole visible state after each step. It also checks the
// safety invariants directly: one holder per lock, tokens strictly
// increasing per lock, holders are live sessions.
func TestTableMatchesReference(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		delay := rapid.SampledFrom([]time.Duration{0, 30 * time.Millisecond}).Draw(rt, "lockDelay")
		cfg := lock.DefaultTableConfig()
		cfg.LockDelay = delay
		tbl, err := lock.NewTable(cfg)
		if err != nil {
			rt.Fatal(err)
		}
		ref := newRef(delay)
		now := time.Unix(1000, 0)
		names := []string{"a", "b", "c"}
		lastToken := map[string]lock.Token{}
		genID := rapid.Uint64Range(1, 4)
		genName := rapid.SampledFrom(names)
		for step := range rapid.IntRange(1, 80).Draw(rt, "steps") {
			now = now.Add(time.Duration(rapid.IntRange(0, 60).Draw(rt, "dt")) * time.Millisecond)
			id := lock.SessionID(genID.Draw(rt, "id"))
			name := genName.Draw(rt, "name")
			op := rapid.IntRange(0, 9).Draw(rt, "op")
			where := fmt.Sprintf("step %d op %d session %d lock %q", step, op, id, name)
			switch op {
			case 0:
				ttl := rapid.SampledFrom([]time.Duration{50 * time.Millisecond, 100 * time.Millisecond}).Draw(rt, "ttl")
				_, err := tbl.Open(now, id, "o", ttl)
				if ok := ref.open(now, id, "o", ttl); ok != (err == nil) {
					rt.Fatalf("%s: Open err = %v; reference ok = %v", where, err, ok)
				}
			case 1:
				_, err := tbl.KeepAlive(now, id)
				if ok := ref.keepAlive(now, id); ok != (err == nil) {
					rt.Fatalf("%s: KeepAlive err = %v; reference ok = %v", where, err, ok)
				}
			case 2:
				tbl.End(now, id)
				ref.end(now, id)
			case 3, 4:
				wait := op == 3
				g, ok, err := tbl.Acquire(now, id, name, wait)
				rg, rok, rerr := ref.acquire(now, id, name, wait)
				if g != rg || ok != rok || errClass(err) != rerr {
					rt.Fatalf("%s: Acquire(wait=%v) = %+v, %v, %v; reference %+v, %v, %q", where, wait, g, ok, err, rg, rok, rerr)
				}
			case 5:
				tok := lock.Token(rapid.Uint64Range(0, uint64(tbl.LastToken())+1).Draw(rt, "token"))
				if h, held := tbl.Holder(name); held && rapid.Bool().Draw(rt, "rightToken") {
					tok = h.Token
				}
				err := tbl.Release(now, id, name, tok)
				if ok := ref.release(now, id, name, tok); ok != (err == nil) {
					rt.Fatalf("%s: Release(%d) err = %v; reference ok = %v", where, tok, err, ok)
				}
			case 6:
				tbl.Cancel(now, id, name)
				ref.cancel(now, id, name)
			case 7:
				tbl.Tick(now)
				ref.advance(now)
			case 8:
				now = now.Add(-time.Duration(rapid.IntRange(0, 200).Draw(rt, "back")) * time.Millisecond)
				tbl.Rebase(now)
				ref.rebase(now)
			case 9:
				restored, _ := lock.NewTable(cfg)
				if err := restored.Restore(tbl.Snapshot()); err != nil {
					rt.Fatalf("%s: Restore(Snapshot()) = %v", where, err)
				}
				restored.Granted() // nothing to drain: grants are not snapshotted
				pending := tbl.Granted()
				tbl = restored
				if !slices.Equal(pending, ref.takeGranted()) {
					rt.Fatalf("%s: grants before snapshot differ", where)
				}
			}
			if got, want := tbl.Granted(), ref.takeGranted(); !slices.Equal(got, want) {
				rt.Fatalf("%s: Granted() = %+v; reference %+v", where, got, want)
			}
			for _, n := range names {
				g, held := tbl.Holder(n)
				rl := ref.locks[n]
				var rg lock.Grant
				rheld := rl != nil && rl.holder != 0
				if rheld {
					rg = lock.Grant{Name: n, Session: rl.holder, Owner: ref.sess[rl.holder].owner, Token: rl.token}
				}
				if g != rg || held != rheld {
					rt.Fatalf("%s: Holder(%q) = %+v, %v; reference %+v, %v", where, n, g, held, rg, rheld)
				}
				var rw []lock.SessionID
				if rl != nil {
					rw = rl.waiters
				}
				if w := tbl.Waiters(n); !slices.Equal(w, rw) {
					rt.Fatalf("%s: Waiters(%q) = %v; reference %v", where, n, w, rw)
				}
				if held {
					if _, live := tbl.Expires(g.Session); !live {
						rt.Fatalf("%s: %q held by ended session %d", where, n, g.Session)
					}
					if g.Token < lastToken[n] {
						rt.Fatalf("%s: %q token went back from %d to %d", where, n, lastToken[n], g.Token)
					}
					lastToken[n] = g.Token
				}
			}
			for sid := range lock.SessionID(5) {
				exp, ok := tbl.Expires(sid)
				rs := ref.sess[sid]
				if ok != (rs != nil) || (ok && exp.UnixNano() != rs.exp) {
					rt.Fatalf("%s: Expires(%d) = %v, %v; reference %+v", where, sid, exp, ok, rs)
				}
			}
		}
	})
}

func errClass(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, lock.ErrNoSession):
		return "nosession"
	case errors.Is(err, lock.ErrLocked):
		return "locked"
	}
	return err.Error()
}
