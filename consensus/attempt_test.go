package consensus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/distkit/distkit/transport"
)

// gateSM echoes each command as its result. While its gate is shut, Apply
// blocks (the node's loop with it) until the gate opens.
type gateSM struct {
	mu      sync.Mutex
	gate    chan struct{} // nil: open
	applied []string
}

func (g *gateSM) shut() {
	g.mu.Lock()
	g.gate = make(chan struct{})
	g.mu.Unlock()
}

func (g *gateSM) open() {
	g.mu.Lock()
	if g.gate != nil {
		close(g.gate)
		g.gate = nil
	}
	g.mu.Unlock()
}

func (g *gateSM) Apply(e Entry) any {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		<-gate
	}
	g.mu.Lock()
	g.applied = append(g.applied, string(e.Command))
	g.mu.Unlock()
	return string(e.Command)
}

func (g *gateSM) Snapshot(io.Writer) error { return nil }
func (g *gateSM) Restore(io.Reader) error  { return nil }

func (g *gateSM) appliedCommands() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.applied...)
}

// startSingle starts a one-node cluster (startAlone) and waits until it
// leads.
func startSingle(t *testing.T, sm StateMachine) *Node {
	t.Helper()
	n := startAlone(t, []transport.NodeID{"n1"}, sm, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n.WaitLeader(ctx); err != nil {
		t.Fatalf("no leader: %v", err)
	}
	return n
}

// TestAttemptBoundWhileLoopStuck: the bound a Client hands a Node answers
// an attempt at its deadline even when the node's loop is stuck (here in
// the state machine's Apply; a disk that never returns from fsync is the
// same), and a proposal whose bound passed while it sat in the queue is
// never proposed once the loop moves again. Virtual time: a bound that is
// never enforced deadlocks the bubble, which fails the test.
func TestAttemptBoundWhileLoopStuck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sm := &gateSM{}
		n := startSingle(t, sm)
		sm.shut()
		const timeout = time.Second
		start := time.Now()
		var wg sync.WaitGroup
		errs := make([]error, 2)
		took := make([]time.Duration, 2)
		for i := range 2 {
			if i == 1 {
				synctest.Wait() // the first is stuck in Apply, the loop with it
			}
			wg.Go(func() {
				_, errs[i] = n.propose(context.Background(), fmt.Appendf(nil, "c%d", i), false, time.Now().Add(timeout))
				took[i] = time.Since(start)
			})
		}
		wg.Wait()
		for i, err := range errs {
			if !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("attempt %d = %v; want the attempt bound's error (ErrOutcomeUnknown, DeadlineExceeded)", i, err)
			}
			if took[i] != timeout {
				t.Errorf("attempt %d answered after %v; want exactly its bound, %v", i, took[i], timeout)
			}
		}
		sm.open()
		if _, err := n.Propose(context.Background(), []byte("after")); err != nil {
			t.Fatalf("Propose after the loop moved again = %v", err)
		}
		// c0 was proposed (it was in Apply): its outcome was unknown, and
		// it is applied. c1's bound passed in the queue: never proposed.
		if got, want := fmt.Sprint(sm.appliedCommands()), "[c0 after]"; got != want {
			t.Fatalf("applied %s; want %s", got, want)
		}
	})
}

// TestClientAttemptBoundOnStuckLeader: a Client whose caller passes
// context.Background() gives up on a leader whose loop is stuck after
// AttemptTimeout (to 9/8 of it: the shared window), and retries its
// command, with its session stamp, on the leader the others elect.
// Virtual time.
func TestClientAttemptBoundOnStuckLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sms := map[transport.NodeID]*gateSM{}
		nodes := startThree(t, nil, func(id transport.NodeID) StateMachine {
			sms[id] = &gateSM{}
			return newSessionMachine(t, sms[id])
		})
		members := map[transport.NodeID]Proposer{}
		for id, n := range nodes {
			members[id] = n
		}
		cfg := DefaultClientConfig()
		cl, err := NewClient(members, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Propose(context.Background(), []byte("warm-up")); err != nil {
			t.Fatal(err)
		}
		stuck := cl.Leader()
		sms[stuck].shut()
		defer sms[stuck].open()
		start := time.Now()
		// Without the bound the Propose below never returns, and virtual
		// time runs on (the other nodes tick): fail rather than hang.
		watchdog := time.AfterFunc(time.Minute, func() {
			panic("TestClientAttemptBoundOnStuckLeader: Propose still waits on the stuck leader after a virtual minute: its attempt bound was not enforced")
		})
		res, err := cl.Propose(context.Background(), []byte("x"))
		watchdog.Stop()
		took := time.Since(start)
		if err != nil {
			t.Fatalf("Propose with the leader stuck = %v", err)
		}
		if res != "x" || cl.Leader() == stuck {
			t.Fatalf("Propose = %v through %s; want x applied by a new leader (not %s)", res, cl.Leader(), stuck)
		}
		if took < cfg.AttemptTimeout || took > cfg.AttemptTimeout*9/8+500*time.Millisecond {
			t.Fatalf("Propose took %v; want the stuck leader's attempt bound (%v to %v) plus an election", took, cfg.AttemptTimeout, cfg.AttemptTimeout*9/8)
		}
	})
}

// TestAttemptBoundConcurrentRecycling: many callers with bounds short
// enough that some pass and some do not, on a live node, proposals
// recycled all along: every caller gets its own command's result or the
// bound's error, never another caller's answer (a recycled proposal that
// the loop or the sweeper still held would deliver one), and no proposal
// whose bound passed in the queue is applied.
func TestAttemptBoundConcurrentRecycling(t *testing.T) {
	sm := &gateSM{}
	n := startSingle(t, sm)
	const callers, each = 16, 300
	var bounded, answered atomic.Int64
	var wg sync.WaitGroup
	for g := range callers {
		wg.Go(func() {
			for i := range each {
				cmd := fmt.Appendf(nil, "g%d-%d", g, i)
				var bound time.Time
				if i%3 != 0 {
					bound = time.Now().Add(time.Duration(i%7) * 20 * time.Microsecond)
					bounded.Add(1)
				}
				res, err := n.propose(context.Background(), cmd, i%2 == 0, bound)
				switch {
				case err == nil && res == string(cmd):
					answered.Add(1)
				case err == nil:
					t.Errorf("%s answered %v: another caller's result", cmd, res)
					return
				case !errors.Is(err, errAttemptBound) || bound.IsZero():
					t.Errorf("%s = %v", cmd, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if answered.Load() == 0 || answered.Load() == int64(callers*each) {
		t.Logf("answered %d of %d (%d bounded): the bounds never or always passed", answered.Load(), callers*each, bounded.Load())
	}
	applied := map[string]int{}
	for _, c := range sm.appliedCommands() {
		if applied[c]++; applied[c] > 1 {
			t.Fatalf("%s applied twice", c)
		}
	}
	if len(applied) < int(answered.Load()) {
		t.Fatalf("%d distinct commands applied; %d were answered", len(applied), answered.Load())
	}
}

// sweeperOnly returns a Node with nothing but its proposal pool and the
// record of its bound sweeper, whose timer does nothing: the test runs
// the sweeps itself. Bounds count from an hour ago, so bound 1 has long
// passed.
func sweeperOnly(t *testing.T) *Node {
	n := &Node{}
	n.proposals.New = func() any { return &proposal{done: make(chan result, 1)} }
	n.bounds.epoch = time.Now().Add(-time.Hour)
	n.bounds.timer = time.AfterFunc(time.Hour, func() {})
	t.Cleanup(func() { n.bounds.timer.Stop() })
	return n
}

// boundedUse starts a use of p bounded by deadline, registered as
// Node.propose registers it.
func boundedUse(n *Node, p *proposal, deadline int64) {
	p.ctx, p.cmd = context.Background(), []byte("cmd")
	p.bound.Store(deadline)
	n.propMu.Lock()
	n.bounds.register(p, deadline)
	n.propMu.Unlock()
}

// wantBoundAnswer fails unless p's current use (named what) has been
// answered with errAttemptBound.
func wantBoundAnswer(t *testing.T, p *proposal, what string) {
	t.Helper()
	select {
	case r := <-p.done:
		if !errors.Is(r.err, errAttemptBound) {
			t.Fatalf("%s was answered %v, %v; want errAttemptBound", what, r.val, r.err)
		}
	default:
		t.Fatalf("%s: its bound passed and the sweep did not answer it", what)
	}
}

// TestSweepDoesNotAnswerARecycledUse: the sweeper reads a proposal's bound
// (passed), and before it answers, the loop answers that use, its caller
// recycles the proposal and a new, unbounded use of it starts. The
// sweeper must leave the new use alone: its use count differs.
func TestSweepDoesNotAnswerARecycledUse(t *testing.T) {
	n := sweeperOnly(t)
	p := n.newProposal(context.Background(), nil)
	boundedUse(n, p, 1) // passed long ago
	n.bounds.readHook = func(q *proposal) {
		q.answer(result{val: "old"})
		<-q.done
		n.recycle(q)
		q.ctx, q.cmd = context.Background(), []byte("new")
	}
	n.sweepBounds()
	if st := p.word.Load() & propStateMask; st != propPending || len(p.done) != 0 {
		t.Fatalf("the new use is in state %d with %d answers queued; want pending, none (the sweeper answered a use it never saw)", st, len(p.done))
	}
}

// TestSweepReadsTheCurrentUse: the sweeper's record holds proposals, not
// uses. A pooled proposal recorded by one bounded use and used again must
// have its new use's bound enforced, whether the record still held it
// (the next use's registration appends nothing) or a sweep had dropped it
// in between (the next use must be recorded anew).
func TestSweepReadsTheCurrentUse(t *testing.T) {
	for _, sweepBetween := range []bool{false, true} {
		t.Run(fmt.Sprintf("sweep-between-uses=%v", sweepBetween), func(t *testing.T) {
			n := sweeperOnly(t)
			// The uses of one pooled proposal (taken from the pool here
			// rather than hoping the pool hands the same one out again).
			p := n.newProposal(context.Background(), nil)
			boundedUse(n, p, n.bounds.now()+int64(time.Hour)) // far off
			p.answer(result{val: "first"})
			<-p.done
			n.recycle(p)
			if sweepBetween {
				n.sweepBounds() // finds no bounded use pending: drops it
				if p.listed {
					t.Fatal("a sweep kept a proposal without a bounded use pending")
				}
			}
			boundedUse(n, p, 1) // passed long ago
			if got := n.bounds.armedAt; got != 1 {
				t.Fatalf("the timer is set for %d after the second use registered; want its bound, 1", got)
			}
			n.sweepBounds()
			wantBoundAnswer(t, p, "the second use")
		})
	}
}

// TestSweepKeepsALaterBound: a sweep that runs before a pending use's
// bound (another bound was earlier) keeps it, and a later sweep answers it.
func TestSweepKeepsALaterBound(t *testing.T) {
	n := sweeperOnly(t)
	p := n.newProposal(context.Background(), nil)
	boundedUse(n, p, n.bounds.now()+int64(time.Hour))
	n.sweepBounds()
	if len(p.done) != 0 || !p.listed {
		t.Fatalf("a sweep before the bound answered the use (%d answers) or forgot it (listed %v)", len(p.done), p.listed)
	}
	n.bounds.epoch = n.bounds.epoch.Add(-2 * time.Hour) // two hours pass
	n.sweepBounds()
	wantBoundAnswer(t, p, "the use")
}
