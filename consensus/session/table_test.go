package session

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// replica is a Table plus the state machine it guards: a log of applied
// payloads, whose length is each command's result.
type replica struct {
	t       *Table
	applied []string
	index   uint64
}

func newReplica(tb testing.TB, cfg Config) *replica {
	tb.Helper()
	t, err := NewTable(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return &replica{t: t}
}

// apply applies one committed entry and returns its answer, as the
// consensus package's SessionMachine does: the common case through
// BeginCommand and FinishLast, the rest through Parse, Begin and Finish.
func (r *replica) apply(cmd []byte) (result []byte, err error) {
	r.index++
	if payload, seq, ok := r.t.BeginCommand(cmd); ok {
		r.applied = append(r.applied, string(payload))
		result = fmt.Appendf(nil, "%s#%d", payload, len(r.applied))
		r.t.FinishLast(seq, result)
		return result, nil
	}
	e, err := Parse(cmd)
	if err != nil {
		return nil, err
	}
	switch e.Kind {
	case KindRegister:
		return fmt.Appendf(nil, "session %d", r.t.Register(r.index, &e)), nil
	case KindClose:
		return nil, r.t.Close(&e)
	}
	cached, dup, err := r.t.Begin(&e)
	if err != nil || dup {
		return cached, err
	}
	r.applied = append(r.applied, string(e.Payload))
	result = fmt.Appendf(nil, "%s#%d", e.Payload, len(r.applied))
	r.t.Finish(&e, result)
	return result, nil
}

// fataler is what the table tests report to: *testing.T and *rapid.T.
type fataler interface {
	Fatalf(format string, args ...any)
}

// restore returns a table restored from t's encoding, as a replica
// installing a snapshot builds it (with a cold lookup cache).
func restore(f fataler, cfg Config, t *Table) *Table {
	r, err := NewTable(cfg)
	if err != nil {
		f.Fatalf("NewTable: %v", err)
	}
	if err := r.UnmarshalBinary(encoding(f, t)); err != nil {
		f.Fatalf("UnmarshalBinary of a good encoding: %v", err)
	}
	return r
}

// encoding returns t's encoding.
func encoding(f fataler, t *Table) []byte {
	enc, err := t.MarshalBinary()
	if err != nil {
		f.Fatalf("MarshalBinary: %v", err)
	}
	return enc
}

func cmdAt(time int64, id ID, seq, acked uint64, payload string) []byte {
	b := AppendCommand(nil, id, seq, acked, []byte(payload))
	Stamp(b, time)
	return b
}

func registerAt(time int64) []byte {
	b := AppendRegister(nil)
	Stamp(b, time)
	return b
}

// TestTableAppliesEachSeqOnce: a retried command (same session and seq)
// is applied once; every copy gets the first copy's result.
func TestTableAppliesEachSeqOnce(t *testing.T) {
	r := newReplica(t, DefaultConfig())
	if got, _ := r.apply(registerAt(1)); string(got) != "session 1" {
		t.Fatalf("register = %q; want session 1", got)
	}
	steps := []struct {
		cmd     []byte
		want    string
		applied int
	}{
		{cmdAt(2, 1, 1, 1, "put x A"), "put x A#1", 1},
		{cmdAt(3, 1, 1, 1, "put x A"), "put x A#1", 1}, // the retry: cached
		{cmdAt(4, 1, 2, 1, "put x B"), "put x B#2", 2},
		{cmdAt(5, 1, 1, 1, "put x A"), "put x A#1", 2}, // a late copy
		{cmdAt(6, 1, 2, 2, "put x B"), "put x B#2", 2},
	}
	for i, s := range steps {
		got, err := r.apply(s.cmd)
		if err != nil || string(got) != s.want || len(r.applied) != s.applied {
			t.Fatalf("step %d: apply = %q, %v with %d applied; want %q with %d applied", i, got, err, len(r.applied), s.want, s.applied)
		}
	}
}

// TestTableAppliesEachSeqOnceOutOfOrder: a client's concurrent callers
// reach the log out of seq order; each command is applied once, and every
// retried copy, in any order, is answered from the cache.
func TestTableAppliesEachSeqOnceOutOfOrder(t *testing.T) {
	r := newReplica(t, DefaultConfig())
	r.apply(registerAt(1))
	order := []uint64{1, 2, 3, 6, 4, 5, 9, 7, 8, 12, 10, 11}
	want := map[uint64]string{}
	for _, seq := range order {
		got, err := r.apply(cmdAt(2, 1, seq, 1, fmt.Sprint(seq)))
		if err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
		want[seq] = string(got)
	}
	for _, seq := range []uint64{12, 6, 1, 9, 5, 11, 2, 8, 3, 10, 4, 7} {
		got, err := r.apply(cmdAt(3, 1, seq, 1, fmt.Sprint(seq)))
		if err != nil || string(got) != want[seq] {
			t.Fatalf("retry of seq %d = %q, %v; want %q", seq, got, err, want[seq])
		}
	}
	if len(r.applied) != len(order) {
		t.Fatalf("applied %d commands; want %d: %v", len(r.applied), len(order), r.applied)
	}
}

// TestTableNilEnvelope: a nil *Envelope is refused (Begin, Close),
// recorded as nothing (Finish) or taken as unstamped (Register), never a
// panic.
func TestTableNilEnvelope(t *testing.T) {
	tb, err := NewTable(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tb.Begin(nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Begin(nil) = %v; want ErrMalformed", err)
	}
	if err := tb.Close(nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Close(nil) = %v; want ErrMalformed", err)
	}
	tb.Finish(nil, []byte("x"))
	if id := tb.Register(3, nil); id != 3 || tb.Len() != 1 || tb.Now() != 0 {
		t.Fatalf("Register(3, nil) = %d with %d sessions at %d; want session 3 at time 0", id, tb.Len(), tb.Now())
	}
}

// TestTableNotMadeByNewTable: a nil Table and a zero one refuse,
// record nothing and report zero, never panic.
func TestTableNotMadeByNewTable(t *testing.T) {
	e := &Envelope{Kind: KindCommand, Session: 1, Seq: 1, Acked: 1}
	for name, tb := range map[string]*Table{"nil": nil, "zero": {}} {
		if _, _, err := tb.Begin(e); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Begin = %v; want ErrInvalidConfig", name, err)
		}
		if err := tb.Close(e); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Close = %v; want ErrInvalidConfig", name, err)
		}
		if _, err := tb.MarshalBinary(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: MarshalBinary = %v; want ErrInvalidConfig", name, err)
		}
		if err := tb.UnmarshalBinary([]byte{tableVersion}); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: UnmarshalBinary = %v; want ErrInvalidConfig", name, err)
		}
		tb.Finish(e, []byte("x"))
		if id := tb.Register(5, e); id != 0 || tb.Len() != 0 || tb.Pending(1) != 0 || tb.Now() != 0 || tb.MaxPending() != 0 {
			t.Errorf("%s: Register = %d, Len %d, Pending %d, Now %d, MaxPending %d; want all 0", name, id, tb.Len(), tb.Pending(1), tb.Now(), tb.MaxPending())
		}
	}
}

// TestTableRefusals: commands the table must refuse, none of them applied.
func TestTableRefusals(t *testing.T) {
	hour := int64(time.Hour)
	tests := []struct {
		name  string
		setup [][]byte
		cmd   []byte
		want  error
	}{
		{"unknown session", nil, cmdAt(1, 42, 1, 1, "x"), ErrSessionExpired},
		{"expired session", [][]byte{registerAt(0)}, cmdAt(hour+1, 1, 1, 1, "x"), ErrSessionExpired},
		{"closed session", [][]byte{registerAt(0), func() []byte { b := AppendClose(nil, 1); Stamp(b, 1); return b }()}, cmdAt(2, 1, 1, 1, "x"), ErrSessionExpired},
		{"acknowledged seq", [][]byte{registerAt(0), cmdAt(1, 1, 1, 1, "a"), cmdAt(2, 1, 2, 2, "b")}, cmdAt(3, 1, 1, 2, "a"), ErrResultDiscarded},
		{"abandoned seq", [][]byte{registerAt(0), cmdAt(1, 1, 3, 3, "c")}, cmdAt(2, 1, 2, 2, "b"), ErrResultDiscarded},
		{"too many pending", [][]byte{registerAt(0), cmdAt(1, 1, 1, 1, "a"), cmdAt(1, 1, 2, 1, "b")}, cmdAt(2, 1, 3, 1, "c"), ErrTooManyPending},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.MaxPending = 2
			r := newReplica(t, cfg)
			for _, c := range tt.setup {
				if _, err := r.apply(c); err != nil {
					t.Fatalf("setup: %v", err)
				}
			}
			before := len(r.applied)
			if _, err := r.apply(tt.cmd); !errors.Is(err, tt.want) {
				t.Fatalf("apply = %v; want %v", err, tt.want)
			}
			if len(r.applied) != before {
				t.Fatalf("a refused command was applied")
			}
		})
	}
}

// TestTableRefusalsOnTheFastPath: refusals of a command for the session
// last used and newer than every cached result, which Begin's fast path
// sees first (the setup's own refusals are part of the story, not
// checked):
//   - expired between sweeps: the table sweeps expired sessions every
//     TTL/4 of its time, so a session can expire after one sweep kept it
//     and before the next; a close of an unknown session moves the time
//     (and sweeps) without touching the session last used;
//   - below the mark: a duplicate carrying a later acknowledgement moves
//     the mark past every cached result; a late copy of a command the
//     client abandoned in between is newer than them all, and below the
//     mark.
func TestTableRefusalsOnTheFastPath(t *testing.T) {
	minute := int64(time.Minute)
	closeAt := func(tm int64, id ID) []byte { b := AppendClose(nil, id); Stamp(b, tm); return b }
	tests := []struct {
		name  string
		setup [][]byte
		cmd   []byte
		want  error
	}{
		{"expired between sweeps", [][]byte{registerAt(0), cmdAt(1, 1, 1, 1, "a"), closeAt(59*minute, 99)}, cmdAt(61*minute, 1, 2, 2, "b"), ErrSessionExpired},
		{"below the mark", [][]byte{registerAt(0), cmdAt(1, 1, 1, 1, "a"), cmdAt(2, 1, 2, 1, "b"), cmdAt(3, 1, 2, 4, "b")}, cmdAt(4, 1, 3, 3, "c"), ErrResultDiscarded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReplica(t, DefaultConfig()) // TTL: an hour
			for _, c := range tt.setup {
				r.apply(c)
			}
			if r.t.last == nil || r.t.lastID != 1 {
				t.Fatalf("setup: session 1 is not the session last used; the case misses the fast path")
			}
			before := len(r.applied)
			if _, err := r.apply(tt.cmd); !errors.Is(err, tt.want) {
				t.Fatalf("apply = %v; want %v", err, tt.want)
			}
			if len(r.applied) != before {
				t.Fatalf("a refused command was applied")
			}
		})
	}
}

// TestTableTimeFromLeaders: expiry follows the largest stamped time only;
// a leader with a slower clock does not take the table's time back (the
// session stays expired), and unstamped envelopes do not move it.
func TestTableTimeFromLeaders(t *testing.T) {
	hour := int64(time.Hour)
	r := newReplica(t, DefaultConfig())
	r.apply(registerAt(10 * hour)) // session 1
	r.apply(registerAt(10 * hour)) // session 2
	if _, err := r.apply(cmdAt(11*hour, 1, 1, 1, "a")); err != nil {
		t.Fatalf("session 1 after an hour = %v; want applied", err)
	}
	if r.t.Now() != 11*hour {
		t.Fatalf("Now = %d; want %d", r.t.Now(), 11*hour)
	}
	// Session 2 idled 1h+1ns by the fastest clock seen, then a leader with a
	// clock 5 hours behind proposes for it.
	r.apply(cmdAt(11*hour+1, 1, 2, 1, "b"))
	if _, err := r.apply(cmdAt(6*hour, 2, 1, 1, "c")); !errors.Is(err, ErrSessionExpired) {
		t.Fatalf("session 2 under a slow clock = %v; want ErrSessionExpired", err)
	}
	if r.t.Now() != 11*hour+1 {
		t.Fatalf("Now = %d after a slow stamp; want %d (time never goes back)", r.t.Now(), 11*hour+1)
	}
	if _, err := r.apply(cmdAt(0, 1, 3, 1, "d")); err != nil || r.t.Now() != 11*hour+1 {
		t.Fatalf("unstamped command = %v, Now %d; want applied, time unchanged", err, r.t.Now())
	}
}

// TestTableEvictsLeastRecentlyActive: at MaxSessions, registering evicts
// the session idle longest.
func TestTableEvictsLeastRecentlyActive(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxSessions = 2
	r := newReplica(t, cfg)
	r.apply(registerAt(1))          // 1
	r.apply(registerAt(2))          // 2
	r.apply(cmdAt(3, 1, 1, 1, "a")) // 1 is active again
	r.apply(registerAt(4))          // 4 evicts 2
	if _, err := r.apply(cmdAt(5, 2, 1, 1, "b")); !errors.Is(err, ErrSessionExpired) {
		t.Fatalf("evicted session: %v; want ErrSessionExpired", err)
	}
	if _, err := r.apply(cmdAt(5, 1, 2, 1, "c")); err != nil {
		t.Fatalf("active session: %v", err)
	}
	if r.t.Len() != 2 {
		t.Fatalf("Len = %d; want 2", r.t.Len())
	}
}

// TestTableDropsAcknowledgedResults: the cache holds only results the
// client has not acknowledged: they do not count against MaxPending (the
// table drops them lazily, but counts exactly), and the encoding holds
// only the others.
func TestTableDropsAcknowledgedResults(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxPending = 2
	r := newReplica(t, cfg)
	r.apply(registerAt(1))
	for seq := uint64(1); seq <= 100; seq++ {
		// A client with two commands in flight acknowledges all but the
		// previous one.
		if _, err := r.apply(cmdAt(1, 1, seq, max(seq, 2)-1, "x")); err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
	}
	if got := r.t.Pending(1); got != 2 {
		t.Fatalf("Pending = %d; want 2", got)
	}
	if got := restore(t, cfg, r.t).Pending(1); got != 2 {
		t.Fatalf("restored Pending = %d; want 2", got)
	}
}

// TestTableEncodingRefusesCorruption: truncations and bad orderings are
// refused and leave the table as it was.
func TestTableEncodingRefusesCorruption(t *testing.T) {
	r := newReplica(t, DefaultConfig())
	r.apply(registerAt(5))
	r.apply(registerAt(6))
	r.apply(cmdAt(7, 1, 1, 1, "a"))
	good, _ := r.t.MarshalBinary()
	for n := range len(good) {
		fresh := newReplica(t, DefaultConfig())
		if err := fresh.t.UnmarshalBinary(good[:n]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("UnmarshalBinary of %d/%d bytes = %v; want ErrMalformed", n, len(good), err)
		}
		if fresh.t.Len() != 0 {
			t.Fatalf("a refused encoding changed the table")
		}
	}
	bad := [][]byte{
		append(bytes.Clone(good), 0),
		append([]byte{2}, good[1:]...),
	}
	for _, b := range bad {
		if err := newReplica(t, DefaultConfig()).t.UnmarshalBinary(b); !errors.Is(err, ErrMalformed) {
			t.Fatalf("UnmarshalBinary(%x) = %v; want ErrMalformed", b, err)
		}
	}
}

// TestTableProperties drives random clients against two replicas, one of
// which is snapshotted and restored into a fresh table before every entry,
// and checks against a reference: each (session, seq) is applied at most
// once, every copy answers the first copy's result, the replicas agree
// entry by entry, and equal tables encode to equal bytes.
func TestTableProperties(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		cfg := Config{TTL: time.Duration(rapid.Int64Range(5, 50).Draw(rt, "ttl")), MaxSessions: rapid.IntRange(1, 4).Draw(rt, "maxSessions"), MaxPending: rapid.IntRange(1, 6).Draw(rt, "maxPending")}
		a, b := newReplica(t, cfg), newReplica(t, cfg)
		first := map[[2]uint64]string{} // (session, seq) -> first answer
		var sessions []ID
		now := int64(0)
		for range rapid.IntRange(1, 80).Draw(rt, "entries") {
			now += rapid.Int64Range(-3, 6).Draw(rt, "tick") // leaders' clocks disagree
			var cmd []byte
			op := rapid.IntRange(0, 19).Draw(rt, "op")
			switch {
			case len(sessions) == 0 || op < 2:
				cmd = registerAt(now)
			case op == 2:
				cmd = AppendClose(nil, rapid.SampledFrom(sessions).Draw(rt, "close"))
				Stamp(cmd, now)
			default:
				id := rapid.SampledFrom(sessions).Draw(rt, "session")
				seq := rapid.Uint64Range(1, 8).Draw(rt, "seq")
				acked := rapid.Uint64Range(1, seq).Draw(rt, "acked")
				cmd = cmdAt(now, id, seq, acked, fmt.Sprintf("%d/%d", id, seq))
			}
			b.t = restore(rt, cfg, b.t)
			ra, errA := a.apply(cmd)
			rb, errB := b.apply(cmd)
			if !bytes.Equal(ra, rb) || (errA == nil) != (errB == nil) || len(a.applied) != len(b.applied) {
				rt.Fatalf("replicas disagree: %q, %v and %q, %v", ra, errA, rb, errB)
			}
			e, _ := Parse(cmd)
			if e.Kind == KindRegister {
				sessions = append(sessions, ID(a.index))
				continue
			}
			if e.Kind == KindClose {
				continue
			}
			if errA != nil {
				continue
			}
			key := [2]uint64{uint64(e.Session), e.Seq}
			if f, ok := first[key]; ok && f != string(ra) {
				rt.Fatalf("(%d, %d) answered %q; its first answer was %q", e.Session, e.Seq, ra, f)
			}
			first[key] = string(ra)
		}
		seen := map[string]bool{}
		for _, p := range a.applied {
			if seen[p] {
				rt.Fatalf("command %s applied twice: %v", p, a.applied)
			}
			seen[p] = true
		}
		if ea, eb := encoding(rt, a.t), encoding(rt, b.t); !bytes.Equal(ea, eb) {
			rt.Fatalf("equal histories encode differently:\n%x\n%x", ea, eb)
		}
	})
}

// FuzzTableUnmarshal: any bytes decode or are refused with ErrMalformed,
// never panic; a decoded table encodes to bytes that decode to the same
// table.
func FuzzTableUnmarshal(f *testing.F) {
	r := newReplica(f, DefaultConfig())
	r.apply(registerAt(5))
	r.apply(cmdAt(7, 1, 1, 1, "a"))
	good, _ := r.t.MarshalBinary()
	f.Add(good)
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		tb, _ := NewTable(DefaultConfig())
		if err := tb.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		enc, _ := tb.MarshalBinary()
		tb2, _ := NewTable(DefaultConfig())
		if err := tb2.UnmarshalBinary(enc); err != nil {
			t.Fatalf("re-encoding does not decode: %v", err)
		}
		enc2, _ := tb2.MarshalBinary()
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable")
		}
	})
}

// TestResultsQueueMatchesMap: a session's sorted result queue behaves as
// the map it stands for (seq -> result, where dropping below a mark
// deletes every lower seq), whatever the order of puts, lookups and
// drops; its live results stay in ascending seq order.
func TestResultsQueueMatchesMap(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		var q results
		model := map[uint64][]byte{}
		low := uint64(0)
		for i := range rapid.IntRange(1, 200).Draw(rt, "ops") {
			switch rapid.IntRange(0, 9).Draw(rt, "op") {
			case 0, 1: // drop below a mark, usually moving by a little
				low += rapid.Uint64Range(0, 6).Draw(rt, "by")
				q.dropBelow(low)
				for seq := range model {
					if seq < low {
						delete(model, seq)
					}
				}
			case 2: // look up any seq
				seq := rapid.Uint64Range(0, low+20).Draw(rt, "get")
				got, ok := q.get(seq)
				want, wok := model[seq]
				if ok != wok || !bytes.Equal(got, want) {
					rt.Fatalf("get(%d) = %q, %v; want %q, %v", seq, got, ok, want, wok)
				}
			default: // put, mostly above everything cached, sometimes below
				seq := low + rapid.Uint64Range(0, 20).Draw(rt, "put")
				val := fmt.Appendf(nil, "r%d/%d", seq, i)
				q.put(seq, val)
				model[seq] = val
			}
			if q.len() != len(model) {
				rt.Fatalf("len = %d; the model holds %d", q.len(), len(model))
			}
			for j := range q.len() {
				r := q.at(j)
				if j > 0 && q.at(j-1).seq >= r.seq {
					rt.Fatalf("live results out of order: %d before %d", q.at(j-1).seq, r.seq)
				}
				if !bytes.Equal(model[r.seq], r.val) {
					rt.Fatalf("seq %d holds %q; the model %q", r.seq, r.val, model[r.seq])
				}
			}
		}
	})
}

// TestTableLazyMatchesRestored: a table that drops lazily and one
// restored from the first's encoding before every entry decide alike and
// encode alike after every entry, with acked marks that move forward by
// more than one, go past seq, and sessions of many in-flight commands.
func TestTableLazyMatchesRestored(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		cfg := Config{TTL: time.Hour, MaxSessions: 3, MaxPending: rapid.IntRange(1, 10).Draw(rt, "maxPending")}
		a, b := newReplica(t, cfg), newReplica(t, cfg)
		var sessions []ID
		lows := map[ID]uint64{}
		for i := range rapid.IntRange(1, 200).Draw(rt, "entries") {
			var cmd []byte
			if len(sessions) == 0 || rapid.IntRange(0, 30).Draw(rt, "reg") == 0 {
				cmd = registerAt(int64(i))
			} else {
				id := rapid.SampledFrom(sessions).Draw(rt, "session")
				lows[id] += rapid.Uint64Range(0, 3).Draw(rt, "ackstep")
				low := max(lows[id], 1)
				seq := low + rapid.Uint64Range(0, 14).Draw(rt, "ahead")
				if rapid.IntRange(0, 9).Draw(rt, "old") == 0 {
					seq = max(1, low-rapid.Uint64Range(0, 3).Draw(rt, "back"))
				}
				acked := low
				if rapid.IntRange(0, 9).Draw(rt, "weird") == 0 {
					acked = seq + rapid.Uint64Range(0, 3).Draw(rt, "past")
				}
				cmd = cmdAt(int64(i), id, seq, acked, fmt.Sprintf("%d/%d", id, seq))
			}
			b.t = restore(rt, cfg, b.t)
			ra, errA := a.apply(cmd)
			rb, errB := b.apply(cmd)
			if !bytes.Equal(ra, rb) || fmt.Sprint(errA) != fmt.Sprint(errB) || len(a.applied) != len(b.applied) {
				rt.Fatalf("entry %d: replicas disagree: %q, %v and %q, %v", i, ra, errA, rb, errB)
			}
			if e, _ := Parse(cmd); e.Kind == KindRegister {
				sessions = append(sessions, ID(a.index))
			}
			if !bytes.Equal(encoding(rt, a.t), encoding(rt, b.t)) {
				rt.Fatalf("entry %d: encodings differ", i)
			}
			for _, id := range sessions {
				if a.t.Pending(id) != b.t.Pending(id) || a.t.Pending(id) > cfg.MaxPending+1 {
					rt.Fatalf("session %d: Pending %d and %d", id, a.t.Pending(id), b.t.Pending(id))
				}
			}
		}
	})
}
