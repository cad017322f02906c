package txn_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
	"github.com/distkit/distkit/txn"
)

// inDoubtBound is how long, at most, a participant may stay in doubt once
// a majority of coordinator replicas is up and connected: an election
// (with pre-vote and check-quorum up to three minimum election timeouts,
// 3 x ElectionTicks ticks: the first candidate can be refused by a
// follower still within its leader lease) for a new leader, plus one
// query round (RetryInterval) in which it takes over through the log and
// sends the decisions, plus two coordinator ticks to notice the
// leadership. (A split vote could cost another election timeout; with
// these seeds none happens, and a failure here would say so.)
var inDoubtBound = 3*rcElectionTicks*rcTick + rcTxnConfig().RetryInterval + 2*rcTxnConfig().TickInterval

// crashStep is a point in the leader's work at which it crashes: the
// n-th time (1-based) its step hook reports step.
type crashStep struct {
	step string
	n    int
}

func (s crashStep) String() string {
	if s.n == 1 {
		return s.step
	}
	return fmt.Sprintf("%s#%d", s.step, s.n)
}

// crashSteps are the distinct steps of a transaction on the leader.
var crashSteps = []crashStep{
	{"send-prepare", 1},   // no PREPARE sent (nothing is in the log: there is no BEGIN)
	{"send-prepare", 2},   // one PREPARE sent
	{"send-prepare", 3},   // all PREPAREs but one sent
	{"propose COMMIT", 1}, // all YES votes in, COMMIT handed to the log
	{"applied COMMIT", 1}, // COMMIT in the log, no COMMIT sent
	{"send-commit", 2},    // one participant got COMMIT (§4.3.1.5's partition case)
	{"send-commit", 3},    // all COMMITs but one sent
	{"propose END", 1},    // every ACK in
	{"applied END", 1},    // the END in the log: the transaction forgotten
	{"send-abort", 1},     // a NO vote in, ABORT not sent (with noVote)
	{"send-abort", 2},     // one ABORT sent (with noVote)
}

// TestReplicatedCoordinatorCrashMatrix crashes the coordinator leader
// after every distinct step of a transaction over three participants,
// with and without a partition between the surviving replicas (healed
// later), with all YES votes and with one NO. Checks: every participant
// ends with one outcome; none is in doubt longer than inDoubtBound once
// a majority of replicas is up and connected; the transaction commits
// only if all voted YES; the caller never hears a different outcome.
func TestReplicatedCoordinatorCrashMatrix(t *testing.T) {
	for _, partition := range []bool{false, true} {
		for _, noVote := range []bool{false, true} {
			for _, cs := range crashSteps {
				name := fmt.Sprintf("%s/partition=%v/no=%v", cs, partition, noVote)
				t.Run(name, func(t *testing.T) {
					bubble(t, func(t *testing.T) { replicatedCrashScenario(t, cs, partition, noVote) })
				})
			}
		}
	}
}

func replicatedCrashScenario(t *testing.T, cs crashStep, partition, noVote bool) {
	replicas := 3
	if partition {
		replicas = 5
	}
	parts := []transport.NodeID{"p1", "p2", "p3"}
	c := newRCluster(t, replicas, memnet.Faults{}, parts...)
	setAccounts(t, c, 100)
	quiesceRC(t, c)
	leader := c.leader()
	var others []transport.NodeID
	for _, id := range c.replicas {
		if id != leader {
			others = append(others, id)
		}
	}
	var cut [][2]transport.NodeID
	if partition {
		// {leader, o0, o1} | {o2, o3}: the leader keeps a majority; once it
		// crashes neither side has one until the cut heals.
		for _, a := range []transport.NodeID{leader, others[0], others[1]} {
			for _, b := range others[2:] {
				cut = append(cut, [2]transport.NodeID{a, b}, [2]transport.NodeID{b, a})
			}
		}
		for _, l := range cut {
			c.net.Cut(l[0], l[1])
		}
	}

	var mu sync.Mutex
	seen := 0
	var crashedAt time.Time
	txn.SetStepHook(c.coords[leader], func(step string) {
		mu.Lock()
		defer mu.Unlock()
		if step != cs.step || !crashedAt.IsZero() {
			return
		}
		if seen++; seen == cs.n {
			crashedAt = time.Now()
			c.net.Crash(leader)
		}
	})

	amount := int64(10)
	if noVote {
		amount = 1000 // p1 cannot pay: NO
	}
	work := threeWayWork(t, amount)
	type outcome struct {
		r   txn.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, err := c.coords[leader].Run(ctx, work...)
		done <- outcome{r, err}
	}()

	// Wait for the crash (a step a scenario never reaches, such as a
	// COMMIT step with a NO vote, leaves the leader up: then the run must
	// simply finish).
	start := time.Now()
	for time.Since(start) < 2*time.Second {
		mu.Lock()
		crashed := !crashedAt.IsZero()
		mu.Unlock()
		if crashed {
			break
		}
		time.Sleep(rcTick)
	}
	mu.Lock()
	crashed := !crashedAt.IsZero()
	upAgain := crashedAt
	mu.Unlock()
	if partition {
		// No majority until the cut heals.
		time.Sleep(4 * rcElection)
		c.net.Heal()
		upAgain = time.Now()
	}

	if crashed {
		for time.Since(upAgain) <= 4*inDoubtBound && c.inDoubt() > 0 {
			time.Sleep(rcTick)
		}
		took := time.Since(upAgain)
		t.Logf("crashed at %s; in doubt for %v after a majority was up", cs, took)
		if c.inDoubt() > 0 || took > inDoubtBound {
			t.Errorf("participants in doubt for %v after a majority of replicas was up (%d still in doubt); bound %v", took, c.inDoubt(), inDoubtBound)
		}
	}
	got := <-done
	t.Logf("crashed=%v Run() = %v, %v", crashed, got.r.Outcome, got.err)
	quiesceRC(t, c)

	// One outcome everywhere, committed only if all voted YES.
	var changed []bool
	for _, p := range parts {
		v, _ := c.stores[p].Get("a")
		changed = append(changed, v != 100)
		if n := c.stores[p].Locked(); n != 0 {
			t.Errorf("%s holds %d locks at the end", p, n)
		}
	}
	committed := changed[0]
	if slices.Contains(changed, !committed) {
		t.Fatalf("participants disagree: balance changed = %v", changed)
	}
	if committed && noVote {
		t.Fatalf("committed although p1 voted NO")
	}
	switch {
	case got.err == nil && !committed:
		t.Fatalf("Run() = committed; participants aborted")
	case got.err != nil && got.r.Outcome == txn.Aborted && committed:
		t.Fatalf("Run() = %v; participants committed", got.err)
	case !crashed && got.err != nil && !noVote:
		t.Fatalf("Run() = %v with no crash; want committed", got.err)
	}
}

// threeWayWork moves amount from p1's "a" to p2's and p3's "a", half each.
func threeWayWork(t *testing.T, amount int64) []txn.Work {
	t.Helper()
	enc := func(n int64) []byte {
		b, err := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: "a", Amount: n})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return []txn.Work{{Participant: "p1", Ops: enc(-amount)}, {Participant: "p2", Ops: enc(amount / 2)}, {Participant: "p3", Ops: enc(amount - amount/2)}}
}

// TestBlockingSingleVersusReplicated shows the blocking problem and its
// cure with the same crash: the coordinator dies right after its COMMIT
// decision is durable, before any participant hears of it. With the
// single-node coordinator every participant stays in doubt (holding its
// locks) until that coordinator restarts; with the replicated one they
// learn the outcome within inDoubtBound of the crash.
func TestBlockingSingleVersusReplicated(t *testing.T) {
	parts := []transport.NodeID{"p1", "p2", "p3"}
	wait := 20 * inDoubtBound

	t.Run("single", func(t *testing.T) {
		bubble(t, func(t *testing.T) {
			c := newCluster(t, parts...)
			c.coord.Close()
			mem := txn.NewMemoryLog()
			coord, err := txn.NewCoordinator(c.trs["c"], &crashAfterCommitLog{Log: mem, crash: func() { c.net.Crash("c") }}, rcTxnConfig())
			if err != nil {
				t.Fatal(err)
			}
			c.coord = coord
			if _, err := coord.Run(context.Background(), threeWayWork(t, 10)...); err != nil {
				t.Fatalf("Run() = %v; want committed", err)
			}
			time.Sleep(wait)
			n := 0
			for _, p := range c.parts {
				n += p.Stats().InDoubt
			}
			if n != len(parts) {
				t.Fatalf("%d participants in doubt %v after the crash; want all %d (blocked)", n, wait, len(parts))
			}
			coord.Close()
			if err := c.net.Restart("c"); err != nil {
				t.Fatal(err)
			}
			if c.coord, err = txn.NewCoordinator(c.trs["c"], mem, rcTxnConfig()); err != nil {
				t.Fatal(err)
			}
			quiesce(t, c.coord)
			wantBalance(t, c.stores["p1"], "a", 90)
		})
	})

	t.Run("replicated", func(t *testing.T) {
		bubble(t, func(t *testing.T) {
			c := newRCluster(t, 3, memnet.Faults{}, parts...)
			setAccounts(t, c, 100)
			quiesceRC(t, c) // no step of the opening transaction is left to trip the hook
			leader := c.leader()
			var mu sync.Mutex
			var crashedAt time.Time
			txn.SetStepHook(c.coords[leader], func(step string) {
				mu.Lock()
				defer mu.Unlock()
				// The first COMMIT about to leave: the decision is in the
				// replicated log and no participant has heard it. (Run
				// itself may return before this step: its waiter learns
				// the outcome when the COMMIT entry is applied.)
				if step == "send-commit" && crashedAt.IsZero() {
					crashedAt = time.Now()
					c.net.Crash(leader)
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := c.coords[leader].Run(ctx, threeWayWork(t, 10)...); err != nil {
				t.Fatalf("Run() = %v; want committed", err)
			}
			fired := false
			for start := time.Now(); !fired && time.Since(start) < inDoubtBound; time.Sleep(rcTick) {
				mu.Lock()
				fired = !crashedAt.IsZero()
				mu.Unlock()
			}
			if !fired {
				t.Fatal("the leader did not crash before sending its COMMIT")
			}
			for start := time.Now(); c.inDoubt() > 0 && time.Since(start) < 10*inDoubtBound; {
				time.Sleep(rcTick)
			}
			mu.Lock()
			took := time.Since(crashedAt)
			mu.Unlock()
			if took > inDoubtBound {
				t.Fatalf("participants in doubt for %v after the leader crashed; want at most %v", took, inDoubtBound)
			}
			quiesceRC(t, c)
			wantBalance(t, c.stores["p1"], "a", 90)
			wantBalance(t, c.stores["p2"], "a", 105)
		})
	})
}
