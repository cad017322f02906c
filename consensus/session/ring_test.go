package session

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
)

// TestResultsRingEdges: wrap-around, growth while wrapped, puts in the
// middle of a wrapped ring (near and far from the back), dropping
// everything, against a map model, with deterministic randomness and long
// runs.
func TestResultsRingEdges(t *testing.T) {
	for seed := range uint64(longSeeds(300)) {
		r := rand.New(rand.NewPCG(seed, 7))
		var q results
		model := map[uint64][]byte{}
		low := uint64(1)
		next := uint64(1)
		for i := range 3000 {
			switch op := r.IntN(20); {
			case op < 4:
				low += uint64(r.IntN(5))
				if r.IntN(30) == 0 {
					low = next + uint64(r.IntN(3)) // everything
				}
				q.dropBelow(low)
				for s := range model {
					if s < low {
						delete(model, s)
					}
				}
			case op < 6:
				seq := low + uint64(r.IntN(int(max(next, low)-low)+3))
				got, ok := q.get(seq)
				want, wok := model[seq]
				if ok != wok || !bytes.Equal(got, want) {
					t.Fatalf("seed %d op %d: get(%d) = %q %v; want %q %v", seed, i, seq, got, ok, want, wok)
				}
			case op < 9 && next > low: // out of order, anywhere above low
				seq := low + uint64(r.IntN(int(next-low)))
				val := fmt.Appendf(nil, "%d/%d", seq, i)
				q.put(seq, val)
				model[seq] = val
			default:
				next = max(next, low)
				seq := next + uint64(r.IntN(3))
				next = seq + 1
				val := fmt.Appendf(nil, "%d/%d", seq, i)
				if r.IntN(2) == 0 {
					q.put(seq, val)
				} else if q.n < len(q.ring) {
					q.add(seq, val) // Finish's fast path
				} else {
					q.push(seq, val)
				}
				model[seq] = val
			}
			if q.len() != len(model) {
				t.Fatalf("seed %d op %d: len %d, model %d", seed, i, q.len(), len(model))
			}
			for j := range q.len() {
				if j > 0 && q.at(j-1).seq >= q.at(j).seq {
					t.Fatalf("seed %d op %d: out of order", seed, i)
				}
				if !bytes.Equal(model[q.at(j).seq], q.at(j).val) {
					t.Fatalf("seed %d op %d: seq %d wrong value", seed, i, q.at(j).seq)
				}
			}
			if len(q.ring)&(len(q.ring)-1) != 0 {
				t.Fatalf("ring length %d", len(q.ring))
			}
			want := uint64(0) // newest is the back of the ring, 0 if empty
			if q.n > 0 {
				want = q.at(q.n - 1).seq
			}
			if q.newest != want {
				t.Fatalf("seed %d op %d: newest = %d; want %d", seed, i, q.newest, want)
			}
		}
	}
}

// TestTableRestoredDecidesAlikeLong: like TestTableLazyMatchesRestored but
// with long runs, restoring at random points only, many in-flight
// commands per session and out-of-order seqs, so rings wrap and grow.
func TestTableRestoredDecidesAlikeLong(t *testing.T) {
	for seed := range uint64(longSeeds(200)) {
		r := rand.New(rand.NewPCG(seed, 11))
		cfg := Config{TTL: 1 << 40, MaxSessions: 3, MaxPending: 1 + r.IntN(40)}
		a, b := newReplica(t, cfg), newReplica(t, cfg)
		var sessions []ID
		lows := map[ID]uint64{}
		for i := range 2000 {
			var cmd []byte
			if len(sessions) == 0 || r.IntN(300) == 0 {
				cmd = registerAt(int64(i))
			} else {
				id := sessions[r.IntN(len(sessions))]
				lows[id] += uint64(r.IntN(3))
				low := max(lows[id], 1)
				seq := low + uint64(r.IntN(cfg.MaxPending+20))
				if r.IntN(10) == 0 {
					seq = max(1, low-uint64(r.IntN(4)))
				}
				acked := low - uint64(r.IntN(int(min(low, 20))))
				acked = max(acked, 1)
				cmd = cmdAt(int64(i), id, seq, acked, fmt.Sprintf("%d/%d", id, seq))
			}
			if r.IntN(25) == 0 {
				b.t = restore(t, cfg, b.t)
			}
			ra, errA := a.apply(cmd)
			rb, errB := b.apply(cmd)
			if !bytes.Equal(ra, rb) || fmt.Sprint(errA) != fmt.Sprint(errB) || len(a.applied) != len(b.applied) {
				t.Fatalf("seed %d entry %d: replicas disagree: %q, %v and %q, %v", seed, i, ra, errA, rb, errB)
			}
			if e, _ := Parse(cmd); e.Kind == KindRegister {
				sessions = append(sessions, ID(a.index))
			}
			if !bytes.Equal(encoding(t, a.t), encoding(t, b.t)) {
				t.Fatalf("seed %d entry %d: encodings differ", seed, i)
			}
		}
	}
}

// TestTableRingStaysBounded: a client that sends each command with
// acked == seq (one in flight, exact mark) never has a dead result
// dropped by Begin (the oldest one is admitted without a drop); Finish
// must drop them, or the ring grows with every command.
func TestTableRingStaysBounded(t *testing.T) {
	cfg := Config{TTL: 1 << 40, MaxSessions: 1, MaxPending: 4}
	r := newReplica(t, cfg)
	r.apply(registerAt(1))
	for seq := uint64(1); seq <= 5000; seq++ {
		if _, err := r.apply(cmdAt(2, 1, seq, seq, "x")); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(r.t.sessions[1].results.ring); n > 16 {
		t.Fatalf("after 5000 commands, one in flight, MaxPending 4: ring of %d slots", n)
	}
}

// TestTableFullRingOfLiveResults: MaxPending 8 and nine commands in
// flight fill a ring of 8 (then 16) slots with live results only: every
// one of them is still answered as a duplicate.
func TestTableFullRingOfLiveResults(t *testing.T) {
	for _, maxPending := range []int{8, 16} {
		cfg := Config{TTL: 1 << 40, MaxSessions: 1, MaxPending: maxPending}
		r := newReplica(t, cfg)
		r.apply(registerAt(1))
		// Command 1 stuck; 2..maxPending+1 applied, acked 1.
		for seq := uint64(2); seq <= uint64(maxPending)+1; seq++ {
			if _, err := r.apply(cmdAt(2, 1, seq, 1, fmt.Sprint(seq))); err != nil {
				t.Fatalf("seq %d: %v", seq, err)
			}
		}
		if _, err := r.apply(cmdAt(2, 1, 1, 1, "1")); err != nil { // the oldest, admitted
			t.Fatal(err)
		}
		before := len(r.applied)
		for seq := uint64(1); seq <= uint64(maxPending)+1; seq++ {
			if _, err := r.apply(cmdAt(2, 1, seq, 1, fmt.Sprint(seq))); err != nil {
				t.Fatalf("duplicate %d: %v", seq, err)
			}
		}
		if len(r.applied) != before {
			t.Fatalf("MaxPending %d: duplicates applied again: %q", maxPending, r.applied[before:])
		}
	}
}

// longSeeds is n seeds with DISTKIT_SOAK=1 and a tenth of them otherwise
// (the long runs take tens of seconds under -race).
func longSeeds(n int) int {
	if os.Getenv("DISTKIT_SOAK") == "1" {
		return n
	}
	return n / 10
}
