package consensus

// Tests of the first attempt against members that keep a real session
// table (newSessionCluster's), reached as a *Node is: found by review of
// an ack hint (a mark behind low, which first attempts stamped for a
// while in the sixth session of issue 13).

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/distkit/distkit/consensus/session"
)

// boundedSessionNode is a sessionNode that a Client also reaches the way
// it reaches a *Node (boundedProposer): the first attempt of every
// session command takes proposeStamped's fast path. It counts the
// commands refused as too many pending.
type boundedSessionNode struct {
	*sessionNode
	refused *int
}

func (n boundedSessionNode) propose(ctx context.Context, cmd []byte, _ bool, bound time.Time) (any, error) {
	actx := ctx
	if !bound.IsZero() {
		var cancel context.CancelFunc
		actx, cancel = context.WithDeadline(ctx, bound)
		defer cancel()
	}
	res, err := n.Propose(actx, cmd)
	if err != nil && actx.Err() != nil && ctx.Err() == nil {
		return nil, errAttemptBound // as a *Node answers an attempt at its bound
	}
	if errors.Is(refusal(res), ErrTooManyPending) {
		n.c.mu.Lock()
		*n.refused++
		n.c.mu.Unlock()
	}
	return res, err
}

// boundedSessionCluster is newSessionCluster (with cfg and fault) whose
// members take the first-attempt path and whose SessionMachine has
// MaxPending maxPending (0: the default); it returns the count of
// refusals as too many pending.
func boundedSessionCluster(t *testing.T, cfg ClientConfig, fault func(*sessionCluster, int, session.Envelope) sessionFault, maxPending int) (*Client, *sessionCluster, *int) {
	cl, c := newSessionCluster(t, cfg, fault)
	if maxPending > 0 {
		scfg := DefaultSessionConfig()
		scfg.MaxPending = maxPending
		sm, err := WithSessions(c.rec, scfg)
		if err != nil {
			t.Fatal(err)
		}
		c.sm = sm
	}
	refused := new(int)
	for i := range cl.ids {
		cl.bounded[i] = boundedSessionNode{sessionNode: &sessionNode{c: c, i: i, keeps: true}, refused: refused}
	}
	return cl, c, refused
}

// TestClientSequentialNeverRefused: a client whose callers never overlap
// (one command in flight at a time) acknowledges every earlier command,
// so its session caches at most one live result and none of its
// commands is ever refused as too many pending, whatever MaxPending.
func TestClientSequentialNeverRefused(t *testing.T) {
	for _, maxPending := range []int{1, 2, 4, 15} {
		cl, c, refused := boundedSessionCluster(t, DefaultClientConfig(), nil, maxPending)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		const n = 64
		for i := range n {
			if _, err := cl.Propose(ctx, []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		cancel()
		c.mu.Lock()
		entries, applied, r := c.index, len(c.rec.applied), *refused
		c.mu.Unlock()
		if r != 0 {
			t.Errorf("MaxPending %d: %d sequential commands: %d refused as too many pending, %d log entries for %d applied; want none refused",
				maxPending, n, r, entries, applied)
		}
	}
}

// TestClientBoundedCrowdAroundSlow: crowdAroundSlow (one stuck command,
// MaxPending 2) with members that take the first-attempt path, with
// RetryInterval an hour so that a missed wake-up or a wait on a stale
// mark shows as a failure.
func TestClientBoundedCrowdAroundSlow(t *testing.T) {
	for _, newer := range []int{4, 20, 40} {
		started := make(chan struct{})
		cl, c, refused := boundedSessionCluster(t, slowOnceConfig(), slowOnceFault(started), 0)
		cl.cfg.RetryInterval = time.Hour
		// crowdAroundSlow replaces c.sm; the bounded members share c.
		crowdAroundSlow(t, cl, c, started, newer, 10*time.Second, " (stalled on a stale mark?)")
		t.Logf("newer %d: %d refusals", newer, *refused)
	}
}

// TestClientBoundedConcurrentSmallCache: many callers, MaxPending 2, some
// first attempts hang to their bound; RetryInterval an hour so that any
// wait not ended by the mark moving fails the test. Every command
// completes, each applied once.
func TestClientBoundedConcurrentSmallCache(t *testing.T) {
	for _, maxPending := range []int{1, 2, 3} {
		cfg := DefaultClientConfig()
		cfg.AttemptTimeout = 5 * time.Millisecond
		var hung sync.Map
		cl, c, refused := boundedSessionCluster(t, cfg, func(_ *sessionCluster, node int, e session.Envelope) sessionFault {
			if e.Kind == session.KindCommand && e.Seq%7 == 3 {
				if _, loaded := hung.LoadOrStore(e.Seq, true); !loaded {
					return faultHang
				}
			}
			return faultNone
		}, maxPending)
		cl.cfg.RetryInterval = time.Hour
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		var wg sync.WaitGroup
		const callers, each = 8, 100
		for g := range callers {
			wg.Go(func() {
				for i := range each {
					if _, err := cl.Propose(ctx, fmt.Appendf(nil, "%d/%d", g, i)); err != nil {
						t.Errorf("MaxPending %d: %v", maxPending, err)
						return
					}
				}
			})
		}
		wg.Wait()
		cancel()
		if got := c.appliedCount(); got != callers*each {
			t.Fatalf("MaxPending %d: applied %d; want %d", maxPending, got, callers*each)
		}
		t.Logf("MaxPending %d: %d refusals", maxPending, *refused)
	}
}

// TestClientAbandonedCommandLateCopyRefused: a caller abandons command 2
// (its ctx ends while its only attempt is held up on the way to the
// log); the client's next command, once applied, tells the table that 2
// was abandoned, so a late copy of 2 reaching the log afterwards is
// refused (ErrResultDiscarded: "a command that its client had already
// acknowledged or abandoned"), not applied.
func TestClientAbandonedCommandLateCopyRefused(t *testing.T) {
	var late []byte
	held := make(chan struct{})
	cfg := DefaultClientConfig()
	cfg.AttemptTimeout = time.Minute
	cl, c := newSessionCluster(t, cfg, func(_ *sessionCluster, _ int, e session.Envelope) sessionFault {
		if e.Kind == session.KindCommand && string(e.Payload) == "slow" && late == nil {
			return faultHang
		}
		return faultNone
	})
	refused := new(int)
	for i := range cl.ids {
		n := boundedSessionNode{sessionNode: &sessionNode{c: c, i: i, keeps: true}, refused: refused}
		cl.bounded[i] = lateCopyNode{n, &late, held}
	}
	if _, err := cl.Propose(context.Background(), []byte("first")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err := cl.Propose(ctx, []byte("slow"))
	cancel()
	if err == nil {
		t.Fatal("Propose(slow) succeeded; want its ctx's error")
	}
	<-held
	if _, err := cl.Propose(context.Background(), []byte("next")); err != nil {
		t.Fatal(err)
	}
	// The held copy of "slow" reaches the log now.
	c.mu.Lock()
	c.index++
	cmd := append([]byte(nil), late...)
	session.Stamp(cmd, c.now)
	res := c.sm.Apply(Entry{Index: c.index, Term: 1, Command: cmd})
	applied := append([]string(nil), c.rec.applied...)
	c.mu.Unlock()
	if !errors.Is(refusal(res), ErrResultDiscarded) {
		e, _ := session.Parse(late)
		t.Fatalf("late copy of abandoned command %d (stamped acked %d) answered %v after the next command; want ErrResultDiscarded; applied %q",
			e.Seq, e.Acked, res, applied)
	}
}

// lateCopyNode holds the first copy of "slow" it is given (as a
// forwarder would, on its way to the leader) and reports it to the test.
type lateCopyNode struct {
	boundedSessionNode
	late *[]byte
	held chan struct{}
}

func (n lateCopyNode) propose(ctx context.Context, cmd []byte, owned bool, bound time.Time) (any, error) {
	if e, err := session.Parse(cmd); err == nil && e.Kind == session.KindCommand && string(e.Payload) == "slow" && *n.late == nil {
		*n.late = append([]byte(nil), cmd...)
		close(n.held)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return n.boundedSessionNode.propose(ctx, cmd, owned, bound)
}
