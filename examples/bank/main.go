// Command bank replays the classic two-phase-commit story, move money
// between accounts at different banks atomically, and its failures, then
// the two remedies the txn package offers: a replicated coordinator and
// sagas.
//
//	go run ./examples/bank [-seed n]
//
// Scenes 0 to 4 run the txn package's deterministic cores on the
// simulator (package sim: virtual time, a seeded network, disks that keep
// only what was synced), so one seed prints one story, line for line.
// Every line names its transaction.
//
//  0. Opening balances, themselves a transaction.
//  1. Success: both banks vote YES, the coordinator logs COMMIT, both apply.
//  2. Insufficient funds: bank1 votes NO, the transfer aborts, nothing moves.
//  3. The coordinator crashes right after logging its decision, before any
//     COMMIT leaves. Both banks are in doubt, holding their locks, asking
//     for the outcome; only the coordinator's restart ends it (2PC's
//     blocking problem).
//  4. The textbook's partition case (§4.3.1.5): one bank receives COMMIT,
//     the other does not; that one stays in doubt until the partition heals.
//  5. Scene 3's crash with a replicated coordinator (three replicas, Raft):
//     the next leader finishes the commit and nobody waits for the dead
//     one. This scene runs on real goroutines over an in-memory network;
//     its lines are printed at fixed points, so they too repeat.
//  6. A saga: book a flight, a hotel and a car; the car fails; the hotel
//     and the flight are cancelled (package txn/saga, with its barrier).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/txn"
)

func main() {
	os.Exit(cli(os.Args[1:], os.Stdout, os.Stderr))
}

// cli parses the flags and runs the story: exit status 0, 1 on failure, 2
// on bad usage (-h prints the usage and exits 0).
func cli(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bank", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Int64("seed", 1, "simulation seed: the same seed prints the same story")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: bank [-seed n]\n\nReplays two-phase commit between banks (success, a NO vote, a coordinator\ncrash, a partition), the same crash with a replicated coordinator, and a saga.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bank: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if err := run(stdout, *seed); err != nil {
		fmt.Fprintln(stderr, "bank:", err)
		return 1
	}
	return 0
}

// printer serializes output.
type printer struct {
	mu sync.Mutex // guards w
	w  io.Writer
}

func (p *printer) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, args...)
}

func run(w io.Writer, seed int64) error {
	out := &printer{w: w}
	out.printf("(seed %d)\n\n", seed)
	b, err := newSimBank(out, seed)
	if err != nil {
		return err
	}

	out.printf("Scene 0: the banks open their accounts, in one transaction\n")
	if _, r := b.transact([]txn.Work{add("bank1", "A", 100), add("bank2", "B", 0), add("bank3", "C", 0)}, time.Second); r.Outcome != txn.Committed {
		return fmt.Errorf("scene 0: %v", r.Outcome)
	}
	b.balances()

	transfer := []txn.Work{add("bank1", "A", -100), add("bank2", "B", 100)}
	out.printf("Scene 1: transfer 100 from A@bank1 to B@bank2\n")
	if _, r := b.transact(transfer, time.Second); r.Outcome != txn.Committed {
		return fmt.Errorf("scene 1: %v", r.Outcome)
	}
	b.balances()

	out.printf("Scene 2: transfer 100 again; A holds 0\n")
	id, r := b.transact(transfer, time.Second)
	if r.Outcome != txn.Aborted || r.Err == nil {
		return fmt.Errorf("scene 2: %v; want an abort", r.Outcome)
	}
	b.st.say(id, "outcome: aborted, %v voted NO: %s", r.Err.Participants, r.Err.Reason)
	b.balances()

	out.printf("Scene 3: A receives 100 (a transaction); transfer it; the coordinator crashes right after logging COMMIT\n")
	if _, r := b.transact([]txn.Work{add("bank1", "A", 100)}, time.Second); r.Outcome != txn.Committed {
		return fmt.Errorf("scene 3 deposit: %v", r.Outcome)
	}
	b.coord.crashOnCommit = true
	id = b.newID()
	b.s.Inject(coordinator, func(env sim.Env) { b.coord.begin(env, id, transfer) })
	b.s.Run(time.Second)
	b.st.say(id, "one second later: %d banks in doubt, holding %d locks; they asked the coordinator and each other, in vain",
		b.inDoubt(), b.parts["bank1"].store.Locked()+b.parts["bank2"].store.Locked())
	b.st.say(id, "this is 2PC's blocking problem: only the coordinator knows, and it is down")
	b.s.Restart(coordinator)
	b.settle(id, time.Second)
	b.st.say(id, "outcome: committed by the restarted coordinator; %d banks in doubt", b.inDoubt())
	b.balances()

	out.printf("Scene 4: the partition case (§4.3.1.5): transfer 30 from B@bank2 to C@bank3; bank2 receives COMMIT, bank3 does not\n")
	id = b.newID()
	var cutAt time.Duration
	b.coord.partition = func(e txn.Envelope) bool {
		if e.To == "bank3" && e.Msg.Type == txn.MsgDecision && e.Msg.Outcome == txn.Committed && cutAt == 0 {
			cutAt = b.s.Elapsed()
			b.s.Isolate("bank3")
			b.st.cut["bank3"] = true
			b.s.At(500*time.Millisecond, func() {
				b.st.say(id, "the partition heals after 500ms")
				b.s.Heal()
				delete(b.st.cut, "bank3")
			})
			b.st.say(id, "a partition cuts bank3 off")
			return true
		}
		return false
	}
	b.s.Inject(coordinator, func(env sim.Env) { b.coord.begin(env, id, []txn.Work{add("bank2", "B", -30), add("bank3", "C", 30)}) })
	if !b.s.RunUntil(func() bool { return cutAt != 0 && b.parts["bank2"].core.Outcome(id) == txn.Committed }, time.Second) {
		return errors.New("scene 4: bank2 did not commit")
	}
	b.st.say(id, "bank2 has committed (B = %d); bank3 is in doubt (%d in doubt), its lock on C held: it cannot commit or abort on its own",
		b.balance("bank2", "B"), b.parts["bank3"].core.Status().InDoubt)
	b.settle(id, 2*time.Second)
	b.coord.partition = nil
	if b.inDoubt() != 0 || b.coord.results[id].Outcome != txn.Committed {
		return errors.New("scene 4: not committed everywhere")
	}
	b.st.say(id, "outcome: committed everywhere; bank3 was in doubt until the partition healed")
	b.balances()

	if err := replicatedScene(out, seed); err != nil {
		return fmt.Errorf("scene 5: %w", err)
	}
	if err := sagaScene(out); err != nil {
		return fmt.Errorf("scene 6: %w", err)
	}
	return nil
}
