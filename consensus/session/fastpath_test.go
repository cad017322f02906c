package session

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// Tests of Begin's fast path against its general path (found by review of
// the seventh session of issue 13).

// cloneTable returns a deep copy of t whose lookup cache points into the
// copy.
func cloneTable(t *Table) *Table {
	c := *t
	c.sessions = make(map[ID]*entry, len(t.sessions))
	c.last = nil
	for id, s := range t.sessions {
		ns := *s
		ns.results.ring = append([]result(nil), s.results.ring...)
		c.sessions[id] = &ns
		if s == t.last {
			c.last = &ns
		}
	}
	if t.last != nil && c.last == nil {
		panic("t.last not in sessions")
	}
	return &c
}

// sameTable compares two tables field by field, the raw ring included.
func sameTable(a, b *Table) string {
	if a.now != b.now || a.nextSweep != b.nextSweep || len(a.sessions) != len(b.sessions) ||
		(a.last == nil) != (b.last == nil) || (a.last != nil && a.lastID != b.lastID) {
		return fmt.Sprintf("table: now %d/%d sweep %d/%d n %d/%d last %v,%d/%v,%d", a.now, b.now, a.nextSweep, b.nextSweep,
			len(a.sessions), len(b.sessions), a.last != nil, a.lastID, b.last != nil, b.lastID)
	}
	for id, s := range a.sessions {
		o := b.sessions[id]
		if o == nil {
			return fmt.Sprintf("session %d missing", id)
		}
		if s.lastActive != o.lastActive || s.acked != o.acked || s.results.head != o.results.head ||
			s.results.n != o.results.n || s.results.newest != o.results.newest || len(s.results.ring) != len(o.results.ring) {
			return fmt.Sprintf("session %d: %+v vs %+v", id, *s, *o)
		}
		for i := range s.results.ring {
			if s.results.ring[i].seq != o.results.ring[i].seq || !bytes.Equal(s.results.ring[i].val, o.results.ring[i].val) {
				return fmt.Sprintf("session %d slot %d differs", id, i)
			}
		}
	}
	return ""
}

// checkNewest fails unless each session's newest seq is the back of its
// ring (0 if the ring is empty).
func checkNewest(tb testing.TB, t *Table, where string) {
	tb.Helper()
	for id, s := range t.sessions {
		q := &s.results
		want := uint64(0)
		if q.n > 0 {
			want = q.at(q.n - 1).seq
		}
		if q.newest != want {
			tb.Fatalf("%s: session %d: newest %d, back of the ring %d (n %d)", where, id, q.newest, want, q.n)
		}
	}
}

// TestTableBeginFastPathMatchesGeneral runs random histories (registers,
// closes of open and unknown sessions, restores with a cold and a warm
// lookup cache, time jumps past the TTL and clocks going back, small
// MaxPending and MaxSessions, duplicates, seqs out of order, marks past
// the seq) and, at every command, compares Begin with the general path
// (begin) on a copy of the table: the same answer and the same state,
// field by field and slot by slot, also after Finish; and BeginCommand,
// on the encoded envelope and another copy: when it admits the command,
// Begin admitted it too and left the same state (also after FinishLast
// and Finish); when it declines, it left the table as it was; and it
// admits exactly the commands Begin's fast path admits. After every
// operation each session's newest seq is the back of its ring (0 if
// empty). 40 seeds; 400 with DISTKIT_SOAK=1. Found by review.
func TestTableBeginFastPathMatchesGeneral(t *testing.T) {
	fast, rawFast := 0, 0
	for seed := range uint64(longSeeds(400)) {
		r := rand.New(rand.NewPCG(seed, 99))
		cfg := Config{TTL: int64Dur(1 + r.IntN(200)), MaxSessions: 1 + r.IntN(4), MaxPending: 1 + r.IntN(12)}
		tab, err := NewTable(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var ids []ID
		next := map[ID]uint64{}
		low := map[ID]uint64{}
		now := int64(0)
		index := uint64(0)
		for i := range 3000 {
			index++
			switch r.IntN(10) {
			case 0: // time jumps
				now += int64(r.IntN(int(cfg.TTL) + 5))
			case 1:
				now -= int64(r.IntN(20)) // a leader with a slower clock
			default:
				now += int64(r.IntN(3))
			}
			switch op := r.IntN(100); {
			case op < 4 || len(ids) == 0:
				e := Envelope{Kind: KindRegister, Time: now}
				id := tab.Register(index, &e)
				ids = append(ids, id)
				next[id], low[id] = 1, 1
			case op < 6:
				id := ids[r.IntN(len(ids))]
				if r.IntN(3) == 0 {
					id = 999999
				}
				e := Envelope{Kind: KindClose, Session: id, Time: now}
				tab.Close(&e)
			case op < 8:
				tab = restore(t, cfg, tab)
				if r.IntN(2) == 0 { // warm the lookup cache
					tab.lookup(ids[r.IntN(len(ids))])
				}
			default:
				id := ids[r.IntN(len(ids))]
				if r.IntN(4) != 0 && tab.last != nil {
					id = tab.lastID
				}
				var seq uint64
				switch k := r.IntN(10); {
				case k < 6:
					seq = next[id]
					next[id]++
				case k < 8:
					seq = next[id] + uint64(r.IntN(4))
					next[id] = max(next[id], seq+1)
				default:
					seq = max(1, next[id]-uint64(r.IntN(6)))
				}
				if r.IntN(3) == 0 {
					low[id] = min(next[id], low[id]+uint64(r.IntN(4)))
				}
				acked := max(1, low[id]-uint64(r.IntN(3)))
				if r.IntN(20) == 0 {
					acked = seq + uint64(r.IntN(3))
				}
				e := Envelope{Kind: KindCommand, Session: id, Seq: seq, Acked: acked, Time: now}
				c := cloneTable(tab)
				raw := cloneTable(tab) // for BeginCommand, on the encoded envelope
				before := cloneTable(tab)
				e2 := e
				onFast := tab.last != nil && tab.lastID == id
				v1, d1, err1 := tab.Begin(&e)
				v2, d2, err2 := c.begin(&e2)
				if !bytes.Equal(v1, v2) || d1 != d2 || fmt.Sprint(err1) != fmt.Sprint(err2) {
					t.Fatalf("seed %d op %d: Begin = %q %v %v; begin = %q %v %v", seed, i, v1, d1, err1, v2, d2, err2)
				}
				if onFast && err1 == nil && !d1 {
					fast++
				}
				if diff := sameTable(tab, c); diff != "" {
					t.Fatalf("seed %d op %d (%+v): states differ: %s", seed, i, e, diff)
				}
				cmd := AppendCommand(nil, id, seq, acked, fmt.Appendf(nil, "p%d", i))
				Stamp(cmd, now)
				// BeginCommand must admit exactly what Begin's fast path
				// admits (decided on another copy).
				wantRaw := onFast && cloneTable(before).admitLast(now, seq, acked)
				payload, rawSeq, ok := raw.BeginCommand(cmd)
				if ok != wantRaw {
					t.Fatalf("seed %d op %d (%+v): BeginCommand admitted = %v; Begin's fast path: %v", seed, i, e, ok, wantRaw)
				}
				switch {
				case ok && (err1 != nil || d1 || rawSeq != seq || string(payload) != fmt.Sprintf("p%d", i)):
					t.Fatalf("seed %d op %d (%+v): BeginCommand admitted seq %d payload %q; Begin = %q %v %v", seed, i, e, rawSeq, payload, v1, d1, err1)
				case ok:
					rawFast++
					if diff := sameTable(tab, raw); diff != "" {
						t.Fatalf("seed %d op %d (%+v): BeginCommand's state differs from Begin's: %s", seed, i, e, diff)
					}
				default:
					if diff := sameTable(before, raw); diff != "" {
						t.Fatalf("seed %d op %d (%+v): BeginCommand declined but changed the table: %s", seed, i, e, diff)
					}
				}
				if err1 == nil && !d1 && r.IntN(15) != 0 {
					val := fmt.Appendf(nil, "%d/%d", id, seq)
					tab.Finish(&e, val)
					c.Finish(&e2, val)
					if diff := sameTable(tab, c); diff != "" {
						t.Fatalf("seed %d op %d: after Finish: %s", seed, i, diff)
					}
					if ok {
						raw.FinishLast(seq, val)
						if diff := sameTable(tab, raw); diff != "" {
							t.Fatalf("seed %d op %d: after FinishLast: %s", seed, i, diff)
						}
					}
				}
			}
			checkNewest(t, tab, fmt.Sprintf("seed %d op %d", seed, i))
		}
	}
	// The histories must reach the fast path's case, or the comparison
	// above says nothing about it.
	if fast == 0 || rawFast == 0 {
		t.Fatalf("%d commands of the session last used admitted, %d by BeginCommand: the histories never reach the fast path", fast, rawFast)
	}
	t.Logf("%d commands admitted on the fast-path candidates, %d of them by BeginCommand", fast, rawFast)
}

// int64Dur is a duration of n nanoseconds (the histories' TTLs are short).
func int64Dur(n int) time.Duration { return time.Duration(n) }

// TestTableFastPathExpiryBoundary: a session idle exactly TTL is open, one
// idle TTL+1ns has expired, also when it is the session last used and no
// sweep is due (the fast path decides).
func TestTableFastPathExpiryBoundary(t *testing.T) {
	ttl := int64(time.Hour)
	closeAt := func(tm int64, id ID) []byte { b := AppendClose(nil, id); Stamp(b, tm); return b }
	for _, tc := range []struct {
		idle int64
		want error
	}{{ttl, nil}, {ttl + 1, ErrSessionExpired}} {
		r := newReplica(t, DefaultConfig()) // TTL: an hour, sweeps every 15 minutes
		r.apply(registerAt(0))
		r.apply(cmdAt(1, 1, 1, 1, "a")) // lastActive 1
		r.apply(closeAt(ttl, 99))       // sweeps at ttl (session 1 kept), next sweep at ttl+15min
		if r.t.last == nil || r.t.lastID != 1 || r.t.nextSweep <= 1+tc.idle {
			t.Fatalf("setup misses the fast path")
		}
		_, err := r.apply(cmdAt(1+tc.idle, 1, 2, 2, "b"))
		if !errors.Is(err, tc.want) && !(err == nil && tc.want == nil) {
			t.Fatalf("idle %v: apply = %v; want %v", time.Duration(tc.idle), err, tc.want)
		}
	}
}

// TestTableRestoreOverWarmCache: a replica restores a newer table over its
// own, whose lookup cache holds the session (a follower installing a
// snapshot): a duplicate of a command the snapshot holds is answered from
// the cache, not applied again on the fast path.
func TestTableRestoreOverWarmCache(t *testing.T) {
	lead, follower := newReplica(t, DefaultConfig()), newReplica(t, DefaultConfig())
	for _, r := range []*replica{lead, follower} {
		r.apply(registerAt(1))
		r.apply(cmdAt(2, 1, 1, 1, "a"))
	}
	lead.apply(cmdAt(3, 1, 2, 1, "b")) // the follower misses it, then installs a snapshot over its warm cache
	if err := follower.t.UnmarshalBinary(encoding(t, lead.t)); err != nil {
		t.Fatal(err)
	}
	before := len(follower.applied)
	got, err := follower.apply(cmdAt(4, 1, 2, 1, "b")) // a retried copy
	if err != nil || len(follower.applied) != before || string(got) != "b#2" {
		t.Fatalf("duplicate after restore = %q, %v, %d applied; want the cached b#2 and none applied", got, err, len(follower.applied)-before)
	}
}

// TestBeginCommandLeavesTheRestToBegin: BeginCommand admits only a command
// envelope of the current format for the session last used; everything
// else (other kinds, format 1, another session, malformed fields, plain
// commands, a table without a session last used) it declines without
// changing the table, for the general path to decide. The last row is
// the admitted case, so the table is set up to reach it.
func TestBeginCommandLeavesTheRestToBegin(t *testing.T) {
	padded := func(b []byte) []byte { return append(b, make([]byte, commandLen)...) }
	// next is the command the table would admit; the rows below change
	// one thing of it, so that each is declined for that reason alone.
	next := func() []byte { return cmdAt(5, 1, 2, 1, "x") }
	with := func(at int, v byte) []byte { b := next(); b[at] = v; return b }
	tests := []struct {
		name  string
		cmd   []byte
		admit bool
	}{
		{"register with a command's fields", with(len(Magic), byte(KindRegister)), false},
		{"close with a command's fields", with(len(Magic), byte(KindClose)), false},
		{"format 1 header on fixed fields", with(len(Magic)-1, formatVarint), false},
		{"format 1 command", padded(appendV1(KindCommand, 1, 2, 1, 'x')), false},
		{"unknown format", with(len(Magic)-1, 9), false},
		{"unknown kind", with(len(Magic), 7), false},
		{"another session", cmdAt(5, 2, 2, 1, "x"), false},
		{"seq 0", cmdAt(5, 1, 0, 1, "x"), false},
		{"duplicate of the newest", cmdAt(5, 1, 1, 1, "x"), false},
		{"below the mark", cmdAt(5, 1, 2, 3, "x"), false},
		{"truncated header", cmdAt(5, 1, 2, 1, "")[:commandLen-1], false},
		{"plain command", padded([]byte("put x 1")), false},
		{"the next command", next(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReplica(t, DefaultConfig())
			r.apply(registerAt(1)) // session 1
			if _, err := r.apply(cmdAt(2, 1, 1, 1, "a")); err != nil {
				t.Fatal(err)
			}
			before := cloneTable(r.t)
			payload, seq, ok := r.t.BeginCommand(tt.cmd)
			if ok != tt.admit {
				t.Fatalf("BeginCommand admitted = %v; want %v", ok, tt.admit)
			}
			if !ok {
				if diff := sameTable(before, r.t); diff != "" {
					t.Fatalf("BeginCommand declined but changed the table: %s", diff)
				}
				return
			}
			if seq != 2 || string(payload) != "x" {
				t.Fatalf("BeginCommand = %q, seq %d; want \"x\", 2", payload, seq)
			}
		})
	}
	var zero Table
	if _, _, ok := zero.BeginCommand(cmdAt(5, 1, 2, 1, "x")); ok {
		t.Fatal("a Table not made by NewTable admitted a command")
	}
	var nilTable *Table
	if _, _, ok := nilTable.BeginCommand(cmdAt(5, 1, 2, 1, "x")); ok {
		t.Fatal("a nil Table admitted a command")
	}
	nilTable.FinishLast(1, nil) // must not panic
	zero.FinishLast(1, nil)
}

// FuzzBeginCommand: on any bytes, BeginCommand either declines and leaves
// the table as it was, or admits exactly what Parse and Begin admit on a
// copy of the table, with the same payload and seq and the same state
// after.
func FuzzBeginCommand(f *testing.F) {
	f.Add(cmdAt(5, 1, 2, 1, "x"))
	f.Add(cmdAt(5, 1, 9, 4, "y"))
	f.Add(cmdAt(5, 2, 2, 1, "x"))
	f.Add(append(AppendClose(nil, 1), make([]byte, commandLen)...))
	f.Add(appendV1(KindCommand, 1, 2, 1, 'x'))
	f.Add([]byte("plain"))
	f.Fuzz(func(t *testing.T, cmd []byte) {
		r := newReplica(t, Config{TTL: time.Hour, MaxSessions: 4, MaxPending: 3})
		r.apply(registerAt(1)) // session 1, the one last used
		if _, err := r.apply(cmdAt(2, 1, 1, 1, "a")); err != nil {
			t.Fatal(err)
		}
		other := cloneTable(r.t)
		before := cloneTable(r.t)
		payload, seq, ok := r.t.BeginCommand(cmd)
		if !ok {
			if diff := sameTable(before, r.t); diff != "" {
				t.Fatalf("BeginCommand declined %x but changed the table: %s", cmd, diff)
			}
			return
		}
		e, err := Parse(cmd)
		if err != nil {
			t.Fatalf("BeginCommand admitted %x, which Parse refuses: %v", cmd, err)
		}
		cached, dup, err := other.Begin(&e)
		if err != nil || dup || cached != nil || e.Seq != seq || !bytes.Equal(e.Payload, payload) {
			t.Fatalf("BeginCommand admitted %x (seq %d, payload %q); Parse and Begin: %+v, %q %v %v", cmd, seq, payload, e, cached, dup, err)
		}
		if diff := sameTable(other, r.t); diff != "" {
			t.Fatalf("after admitting %x, the states differ: %s", cmd, diff)
		}
	})
}

// TestBeginCommandSessionZero: a table given index 0 by Register has
// session 0 as the one last used; a command for session 0 is still
// malformed (Parse refuses it), and BeginCommand declines it rather than
// admit what the general path refuses.
func TestBeginCommandSessionZero(t *testing.T) {
	tab, err := NewTable(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if id := tab.Register(0, &Envelope{Kind: KindRegister, Time: 1}); id != 0 {
		t.Fatalf("Register(0) = %d; want 0", id)
	}
	cmd := cmdAt(2, 0, 1, 1, "x")
	if _, err := Parse(cmd); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Parse(session 0) = %v; want ErrMalformed", err)
	}
	if _, _, ok := tab.BeginCommand(cmd); ok {
		t.Fatal("BeginCommand admitted a command for session 0")
	}
}
