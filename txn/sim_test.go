package txn_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/txn"
)

var (
	coordID = transport.NodeID("c")
	partIDs = []transport.NodeID{"p1", "p2", "p3"}
)

// crashScenario is one transaction over three participants.
type crashScenario struct {
	name       string
	amounts    [3]int64 // added to key "x" on each participant (x starts at 0)
	wantCommit bool
	// slowP3 delays the coordinator's messages to p3 past a tick, so the
	// coordinator syncs its lazy BEGIN record while it waits for votes:
	// a crash then is recovered by actively aborting the transaction.
	slowP3 bool
}

// TestCrashPoints crashes the coordinator or one participant after each of
// its effects (every log write or sync and every message, so before and
// after each, the last one included), restarts it from its disk, and checks that the system settles on
// one outcome that every participant applies, with no one left in doubt,
// and commit only if every participant voted YES.
func TestCrashPoints(t *testing.T) {
	scenarios := []crashScenario{
		{name: "all-yes", amounts: [3]int64{1, 2, 3}, wantCommit: true},
		{name: "p3-votes-no", amounts: [3]int64{1, 2, -5}, wantCommit: false},
		{name: "p3-slow", amounts: [3]int64{1, 2, 3}, wantCommit: true, slowP3: true},
	}
	downs := []time.Duration{300 * time.Millisecond, 5 * time.Second}
	delays := []time.Duration{0, 10 * time.Millisecond}
	nets := map[string]sim.Faults{
		"clean": {MinDelay: time.Millisecond, MaxDelay: 3 * time.Millisecond},
		"lossy": {Drop: 0.15, Duplicate: 0.15, MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, Reorder: 0.1},
	}
	for _, netName := range []string{"clean", "lossy"} {
		for _, sc := range scenarios {
			for _, down := range downs {
				for _, delay := range delays {
					for _, victim := range append([]transport.NodeID{coordID}, partIDs...) {
						name := fmt.Sprintf("%s/%s/down=%v/delay=%v/%s", netName, sc.name, down, delay, victim)
						t.Run(name, func(t *testing.T) {
							points, abortedOnRecovery := 0, 0
							for k := 0; ; k++ {
								fired, aborted := runCrashPoint(t, nets[netName], sc, victim, k, down, delay)
								if !fired {
									break
								}
								points++
								abortedOnRecovery += aborted
							}
							if points == 0 {
								t.Fatalf("%s never reached a crash point", victim)
							}
							if sc.slowP3 && victim == coordID && abortedOnRecovery == 0 {
								t.Fatalf("no crash point left a BEGIN record without a decision; want the recovering coordinator to abort at least once")
							}
							t.Logf("%s crashed at each of its %d steps; %d recoveries aborted a begun transaction", victim, points, abortedOnRecovery)
						})
					}
				}
			}
		}
	}
}

// runCrashPoint runs one scenario with victim crashing after k effects and
// reports whether the crash happened (false once k exceeds its effects)
// and how many transactions a recovering coordinator aborted actively.
func runCrashPoint(t *testing.T, faults sim.Faults, sc crashScenario, victim transport.NodeID, k int, down, delay time.Duration) (fired bool, abortedOnRecovery int) {
	t.Helper()
	w := newSimCluster(t, int64(k)+1, faults)
	w.plan.node, w.plan.after, w.plan.down, w.plan.delay = victim, k, down, delay
	if sc.slowP3 {
		w.s.SetLinkFaults(coordID, partIDs[2], sim.Faults{MinDelay: 120 * time.Millisecond, MaxDelay: 130 * time.Millisecond})
	}
	id := uuid.MustParse("6ba7b810-9dad-41d1-80b4-00c04fd430c8")
	work := addToX(t, sc.amounts[:]...)
	w.begin(coordID, id, work)
	settled := func() bool {
		if w.s.Node(victim) == nil || w.inDoubt(partIDs) > 0 {
			return false
		}
		c, ok := w.s.Node(coordID).(*coordNode)
		return ok && c.core.Status() == txn.CoordinatorStatus{}
	}
	w.s.Run(10 * time.Millisecond)
	if !w.s.RunUntil(settled, time.Minute) {
		t.Fatalf("crash %s after %d effects: not settled after a minute; in doubt: %d", victim, k, w.inDoubt(partIDs))
	}
	checkOutcome(t, w, sc, id, fmt.Sprintf("crash %s after %d effects", victim, k))
	if !w.plan.fired {
		// k is past the victim's last effect: crash it after that one
		// too, once everything has settled, and check that its recovery
		// keeps the outcome.
		w.s.Crash(victim)
		w.s.Run(down)
		w.s.Restart(victim)
		if !w.s.RunUntil(settled, time.Minute) {
			t.Fatalf("crash %s after its last effect: not settled after a minute; in doubt: %d", victim, w.inDoubt(partIDs))
		}
		checkOutcome(t, w, sc, id, fmt.Sprintf("crash %s after its last effect (%d)", victim, k))
	}
	return w.plan.fired, w.abortedOnRecovery
}

// checkOutcome checks a settled crash-point run: one outcome applied by
// every participant or by none, commit only if all voted YES (and only if
// the scenario allows it), and the coordinator's report matching.
func checkOutcome(t *testing.T, w *world, sc crashScenario, id uuid.UUID, where string) {
	t.Helper()
	checkWorld(t, w)
	applied := 0
	for i, p := range partIDs {
		if w.applied[p][id] {
			applied++
			if got, _ := w.stores[p].Get("x"); got != sc.amounts[i] {
				t.Errorf("%s: %s x = %d; want %d", where, p, got, sc.amounts[i])
			}
		} else if got, _ := w.stores[p].Get("x"); got != 0 {
			t.Errorf("%s: %s x = %d; want 0 (not committed)", where, p, got)
		}
	}
	if applied != 0 && applied != len(partIDs) {
		t.Fatalf("%s: commit applied at %d of %d participants", where, applied, len(partIDs))
	}
	if applied > 0 {
		for _, p := range partIDs {
			if w.votes[id][p] != txn.Committed {
				t.Fatalf("%s: committed although %s voted %v", where, p, w.votes[id][p])
			}
		}
	}
	if !sc.wantCommit && applied > 0 {
		t.Fatalf("%s: committed; want abort", where)
	}
	if r, ok := w.results[id]; ok && (r.Outcome == txn.Committed) != (applied > 0) {
		t.Fatalf("%s: coordinator reported %v but applied at %d participants", where, r.Outcome, applied)
	}
}

func checkWorld(t *testing.T, w *world) {
	t.Helper()
	if len(w.errs) > 0 {
		t.Fatalf("node errors: %v", w.errs)
	}
	if err := w.s.Err(); err != nil {
		t.Fatalf("sim: %v", err)
	}
}

// TestNoCrashCommits checks that, with no crash, the commit scenario
// commits (so the crash-point test above is not vacuous).
func TestNoCrashCommits(t *testing.T) {
	w := newSimCluster(t, 1, sim.Faults{})
	id := uuid.New()
	w.begin(coordID, id, addToX(t, 7, 7, 7))
	w.s.Run(time.Second)
	checkWorld(t, w)
	if got := w.results[id].Outcome; got != txn.Committed {
		t.Fatalf("outcome = %v; want committed", got)
	}
	for _, p := range partIDs {
		if got, _ := w.stores[p].Get("x"); got != 7 {
			t.Errorf("%s: x = %d; want 7", p, got)
		}
	}
}

// bank test parameters.
var (
	bankIDs  = []transport.NodeID{"bank1", "bank2", "bank3"}
	coordIDs = []transport.NodeID{"c1", "c2"}
	accounts = []string{"a", "b", "c", "d"}
	initial  = int64(100)
)

type transfer struct {
	fromBank, toBank transport.NodeID
	from, to         string
	amount           int64
}

// TestBankInvariant runs random transfers between accounts of three banks
// under message loss, duplication, reordering and crashes of banks and
// coordinators, then checks: the total is conserved, no account is
// negative, every transfer is applied on both sides or on neither, every
// reported commit is applied, and no reported abort is.
func TestBankInvariant(t *testing.T) {
	n := 40
	if testing.Short() {
		n = 8
	}
	sim.Seeds(t, n, func(t *testing.T, seed int64) {
		runBank(t, seed)
	})
}

func runBank(t *testing.T, seed int64) uint64 {
	w, err := newWorld(seed, sim.Faults{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range coordIDs {
		w.addCoordinator(c)
	}
	for _, b := range bankIDs {
		w.addParticipant(b)
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 99))
	// Open the accounts with one transaction (Store.Set is not logged).
	var setup []txn.Work
	for _, b := range bankIDs {
		var ops []txn.Op
		for _, a := range accounts {
			ops = append(ops, txn.Op{Kind: txn.OpPut, Key: a, Amount: initial})
		}
		enc, _ := txn.EncodeOps(ops...)
		setup = append(setup, txn.Work{Participant: b, Ops: enc})
	}
	setupID := seededID(rng)
	w.begin(coordIDs[0], setupID, setup)
	w.s.Run(time.Second)
	if w.results[setupID].Outcome != txn.Committed {
		t.Fatalf("setup: %v", w.results[setupID])
	}

	w.s.SetFaults(sim.Faults{Drop: 0.05, Duplicate: 0.05, MinDelay: time.Millisecond, MaxDelay: 15 * time.Millisecond, Reorder: 0.05})
	transfers := map[uuid.UUID]transfer{}
	duration := 4 * time.Second
	if os.Getenv(sim.EnvSoak) == "1" {
		duration = 20 * time.Second
	}
	all := append(append([]transport.NodeID{}, coordIDs...), bankIDs...)
	for at := time.Duration(0); at < duration; at += time.Duration(5+rng.IntN(20)) * time.Millisecond {
		tr := transfer{fromBank: bankIDs[rng.IntN(3)], toBank: bankIDs[rng.IntN(3)],
			from: accounts[rng.IntN(len(accounts))], to: accounts[rng.IntN(len(accounts))], amount: 1 + rng.Int64N(80)}
		if tr.fromBank == tr.toBank && tr.from == tr.to {
			continue
		}
		id := seededID(rng)
		transfers[id] = tr
		c := coordIDs[rng.IntN(len(coordIDs))]
		w.s.At(at, func() { w.begin(c, id, transferWork(tr)) })
		if rng.IntN(40) == 0 {
			victim := all[rng.IntN(len(all))]
			w.s.At(at, func() { w.s.Crash(victim) })
			w.s.At(at+time.Duration(50+rng.IntN(800))*time.Millisecond, func() { w.s.Restart(victim) })
		}
	}
	// Check the no-negative invariant on the committed state all along.
	for at := time.Duration(0); at < duration; at += 50 * time.Millisecond {
		w.s.At(at, func() {
			for _, b := range bankIDs {
				if w.s.Node(b) == nil {
					continue
				}
				for k, v := range w.stores[b].Values() {
					if v < 0 {
						w.fail(fmt.Errorf("%s/%s = %d at %v", b, k, v, w.s.Elapsed()))
					}
				}
			}
		})
	}
	w.s.Run(duration + time.Second)
	// Heal and settle.
	w.s.SetFaults(sim.Faults{MinDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond})
	w.s.Heal()
	for _, id := range all {
		if w.s.Node(id) == nil {
			w.s.Restart(id)
		}
	}
	settled := func() bool {
		if w.inDoubt(bankIDs) > 0 {
			return false
		}
		for _, c := range coordIDs {
			if n, ok := w.s.Node(c).(*coordNode); !ok || n.core.Status() != (txn.CoordinatorStatus{}) {
				return false
			}
		}
		return true
	}
	if !w.s.RunUntil(settled, 5*time.Minute) {
		t.Fatalf("not settled: %d in doubt", w.inDoubt(bankIDs))
	}
	checkWorld(t, w)

	want := map[transport.NodeID]map[string]int64{}
	for _, b := range bankIDs {
		want[b] = map[string]int64{}
		for _, a := range accounts {
			want[b][a] = initial
		}
	}
	committed, aborted := 0, 0
	for id, tr := range transfers {
		src, dst := w.applied[tr.fromBank][id], w.applied[tr.toBank][id]
		if src != dst {
			t.Fatalf("transfer %s %+v applied at source %v, at destination %v", id, tr, src, dst)
		}
		r, reported := w.results[id]
		switch {
		case reported && r.Outcome == txn.Committed && !src:
			t.Fatalf("transfer %s reported committed but not applied", id)
		case reported && r.Outcome == txn.Aborted && src:
			t.Fatalf("transfer %s reported aborted (%v) but applied", id, r.Err)
		}
		if src {
			committed++
			want[tr.fromBank][tr.from] -= tr.amount
			want[tr.toBank][tr.to] += tr.amount
		} else {
			aborted++
		}
	}
	var total int64
	for _, b := range bankIDs {
		got := w.stores[b].Values()
		for _, a := range accounts {
			total += got[a]
			if got[a] != want[b][a] {
				t.Errorf("%s/%s = %d; want %d", b, a, got[a], want[b][a])
			}
			if got[a] < 0 {
				t.Errorf("%s/%s = %d; negative", b, a, got[a])
			}
		}
		if l := w.stores[b].Locked(); l != 0 {
			t.Errorf("%s: %d keys still locked", b, l)
		}
	}
	if wantTotal := initial * int64(len(bankIDs)*len(accounts)); total != wantTotal {
		t.Errorf("total = %d; want %d", total, wantTotal)
	}
	if committed == 0 {
		t.Errorf("no transfer committed out of %d", len(transfers))
	}
	t.Logf("seed %d: %d committed, %d aborted", seed, committed, aborted)
	return w.s.TraceHash()
}

func transferWork(tr transfer) []txn.Work {
	if tr.fromBank == tr.toBank {
		ops, _ := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: tr.from, Amount: -tr.amount}, txn.Op{Kind: txn.OpAdd, Key: tr.to, Amount: tr.amount})
		return []txn.Work{{Participant: tr.fromBank, Ops: ops}}
	}
	debit, _ := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: tr.from, Amount: -tr.amount})
	credit, _ := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: tr.to, Amount: tr.amount})
	return []txn.Work{{Participant: tr.fromBank, Ops: debit}, {Participant: tr.toBank, Ops: credit}}
}

// TestBankDeterministic runs one seed twice and compares the traces: the
// cores and the harness draw nothing from outside the seed.
func TestBankDeterministic(t *testing.T) {
	hash := func() uint64 {
		var h uint64
		t.Run("run", func(t *testing.T) { h = runBank(t, 7) })
		return h
	}
	if a, b := hash(), hash(); a != b {
		t.Fatalf("trace hashes differ: %x vs %x", a, b)
	}
}
