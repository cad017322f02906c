package consensus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/consensus/session"
	"github.com/distkit/distkit/transport"
	"pgregory.net/rapid"
)

// fakeProposer answers from a script, one reply per call.
type fakeProposer struct {
	mu       sync.Mutex // guards replies and calls
	replies  []error
	fallback error // the reply once replies run out (nil: success)
	calls    int
	block    bool // wait for ctx instead of answering
}

func (f *fakeProposer) Propose(ctx context.Context, cmd []byte) (any, error) {
	f.mu.Lock()
	f.calls++
	block := f.block
	err := f.fallback
	if len(f.replies) > 0 {
		err, f.replies = f.replies[0], f.replies[1:]
	}
	f.mu.Unlock()
	if block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	return "ok", nil
}

func TestClientPropose(t *testing.T) {
	notLeader := func(id transport.NodeID) error { return &raft.NotLeaderError{Leader: id} }
	tests := []struct {
		name       string
		a, b, c    *fakeProposer
		wantErr    error            // nil: success
		wantLeader transport.NodeID // the leader the client remembers afterwards
	}{
		{"first node leads", &fakeProposer{}, &fakeProposer{}, &fakeProposer{}, nil, "a"},
		{"follows the hint", &fakeProposer{replies: []error{notLeader("c")}}, &fakeProposer{}, &fakeProposer{}, nil, "c"},
		{"leader unknown: tries the next", &fakeProposer{replies: []error{notLeader("")}}, &fakeProposer{}, &fakeProposer{}, nil, "b"},
		{"lost proposal is retried", &fakeProposer{replies: []error{ErrProposalLost}}, &fakeProposer{}, &fakeProposer{}, nil, "b"},
		{"closed node is skipped", &fakeProposer{replies: []error{ErrClosed}}, &fakeProposer{}, &fakeProposer{}, nil, "b"},
		{"stopped is ambiguous: returned", &fakeProposer{replies: []error{ErrStopped}}, &fakeProposer{}, &fakeProposer{}, ErrStopped, "a"},
		{"unknown outcome is ambiguous: returned", &fakeProposer{replies: []error{ErrOutcomeUnknown}}, &fakeProposer{}, &fakeProposer{}, ErrOutcomeUnknown, "a"},
		{"too large is final", &fakeProposer{replies: []error{ErrTooLarge}}, &fakeProposer{}, &fakeProposer{}, ErrTooLarge, "a"},
		{"no leader anywhere: deadline", &fakeProposer{fallback: notLeader("")}, &fakeProposer{fallback: notLeader("")},
			&fakeProposer{fallback: notLeader("")}, context.DeadlineExceeded, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultClientConfig()
			cfg.RetryInterval = time.Millisecond
			cl, err := NewClient(map[transport.NodeID]Proposer{"a": tt.a, "b": tt.b, "c": tt.c}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			_, err = cl.Propose(ctx, []byte("x"))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Propose err = %v; want %v", err, tt.wantErr)
			}
			if got := cl.Leader(); got != tt.wantLeader {
				t.Fatalf("Leader() = %q; want %q", got, tt.wantLeader)
			}
		})
	}
}

// TestClientAttemptTimeoutMovesOn: with sessions, an attempt that times
// out is retried on the next node.
func TestClientAttemptTimeoutMovesOn(t *testing.T) {
	cfg := DefaultClientConfig()
	cfg.AttemptTimeout = 10 * time.Millisecond
	cl, _ := newSessionCluster(t, cfg, func(_ *sessionCluster, node int, _ session.Envelope) sessionFault {
		if node == 0 {
			return faultHang
		}
		return faultNone
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cl.Propose(ctx, []byte("x")); err != nil || cl.Leader() != "b" {
		t.Fatalf("Propose = %v, leader %q; want success on b", err, cl.Leader())
	}
}

// TestClientWithoutSessionsReturnsAmbiguous: a cluster without sessions
// silentProposer never answers: each attempt waits for its context, and
// its length is recorded.
type silentProposer struct {
	mu    sync.Mutex // guards hangs
	hangs []time.Duration
}

func (p *silentProposer) KeepsSessions() bool { return true }

func (p *silentProposer) Propose(ctx context.Context, cmd []byte) (any, error) {
	start := time.Now()
	<-ctx.Done()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hangs = append(p.hangs, time.Since(start))
	return nil, ctx.Err()
}

// TestClientAttemptBoundWithBackgroundContext: a caller passing
// context.Background() still gets every attempt bounded by AttemptTimeout
// (a shared window context, between AttemptTimeout and 9/8 of it), also
// across windows: member a never answers, so each measured command waits
// out one attempt on it, then succeeds on b. A session command picks its
// window by its seq, so the measured ones are numbered attemptWindows
// apart (commands sent straight to b fill the numbers between): they all
// use one window, which must have been replaced once stale. Virtual time:
// a missing bound makes the bubble deadlock, which fails the test.
func TestClientAttemptBoundWithBackgroundContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := DefaultClientConfig()
		_, c := newSessionCluster(t, cfg, nil)
		silent := &silentProposer{}
		cl, err := NewClient(map[transport.NodeID]Proposer{"a": silent, "b": &sessionNode{c: c, i: 1, keeps: true}}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		const commands = 6
		for i := 0; i < commands; {
			s := cl.sess.Load()
			if s == nil || s.next.Load()%attemptWindows != 0 {
				cl.leader.Store(1) // b: registers the session, or fills a number
				if _, err := cl.Propose(context.Background(), []byte("filler")); err != nil {
					t.Fatalf("Propose(filler) = %v", err)
				}
				continue
			}
			cl.leader.Store(0) // a: the measured attempt
			if _, err := cl.Propose(context.Background(), fmt.Appendf(nil, "c%d", i)); err != nil {
				t.Fatalf("Propose(c%d) = %v", i, err)
			}
			time.Sleep(time.Duration(i) * cfg.AttemptTimeout / 5) // windows go stale
			i++
		}
		silent.mu.Lock()
		defer silent.mu.Unlock()
		if len(silent.hangs) != commands {
			t.Fatalf("%d attempts on the silent member; want %d", len(silent.hangs), commands)
		}
		for i, d := range silent.hangs {
			if d < cfg.AttemptTimeout || d > cfg.AttemptTimeout*9/8 {
				t.Errorf("attempt %d on the silent member lasted %v; want between %v and %v", i, d, cfg.AttemptTimeout, cfg.AttemptTimeout*9/8)
			}
		}
	})
}

// gets no retry of a timed-out attempt: it could apply the command twice.
func TestClientWithoutSessionsReturnsAmbiguous(t *testing.T) {
	cfg := DefaultClientConfig()
	cfg.AttemptTimeout = 10 * time.Millisecond
	b := &fakeProposer{}
	cl, _ := NewClient(map[transport.NodeID]Proposer{"a": &fakeProposer{block: true}, "b": b}, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cl.Propose(ctx, []byte("x")); !errors.Is(err, context.DeadlineExceeded) || b.calls != 0 {
		t.Fatalf("Propose = %v after %d calls on b; want the attempt's deadline error and no retry", err, b.calls)
	}
}

func TestNewClientRejectsBadArguments(t *testing.T) {
	tests := []struct {
		name    string
		members map[transport.NodeID]Proposer
		cfg     ClientConfig
	}{
		{"no members", nil, DefaultClientConfig()},
		{"nil member", map[transport.NodeID]Proposer{"a": nil}, DefaultClientConfig()},
		{"empty ID", map[transport.NodeID]Proposer{"": &fakeProposer{}}, DefaultClientConfig()},
		{"zero attempt timeout", map[transport.NodeID]Proposer{"a": &fakeProposer{}}, ClientConfig{RetryInterval: time.Millisecond}},
		{"zero retry interval", map[transport.NodeID]Proposer{"a": &fakeProposer{}}, ClientConfig{AttemptTimeout: time.Second}},
		{"typed nil member", map[transport.NodeID]Proposer{"a": (*Node)(nil)}, DefaultClientConfig()},
		{"members disagree on sessions", map[transport.NodeID]Proposer{"a": &sessionNode{keeps: true}, "b": &sessionNode{}}, DefaultClientConfig()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewClient(tt.members, tt.cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("NewClient err = %v; want ErrInvalidConfig", err)
			}
		})
	}
}

// TestClientStaleHintsPause: two nodes that name each other as the leader
// (stale views during an election) do not make the client spin: following
// hints counts as trying nodes, so after a round it pauses like any other
// round without a leader.
func TestClientStaleHintsPause(t *testing.T) {
	cfg := DefaultClientConfig()
	cfg.RetryInterval = time.Hour // the pause outlasts ctx: the test counts calls before it
	a := &fakeProposer{fallback: &raft.NotLeaderError{Leader: "b"}}
	b := &fakeProposer{fallback: &raft.NotLeaderError{Leader: "a"}}
	cl, _ := NewClient(map[transport.NodeID]Proposer{"a": a, "b": b}, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := cl.Propose(ctx, []byte("x")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Propose = %v; want context.DeadlineExceeded", err)
	}
	if calls := a.calls + b.calls; calls > 4 {
		t.Fatalf("Propose made %d calls before its deadline; want at most 4 (one round, then a pause)", calls)
	}
}

// recordSM records the commands it applies; a command's result is how
// many have been applied, so a command applied twice shows.
type recordSM struct {
	applied []string
}

func (r *recordSM) Apply(e Entry) any {
	r.applied = append(r.applied, string(e.Command))
	return len(r.applied)
}

func (r *recordSM) Snapshot(w io.Writer) error {
	return json.NewEncoder(w).Encode(r.applied)
}

func (r *recordSM) Restore(rd io.Reader) error {
	r.applied = nil
	return json.NewDecoder(rd).Decode(&r.applied)
}

// sessionFault is what goes wrong with one attempt on a sessionNode.
type sessionFault int

const (
	faultNone         sessionFault = iota
	faultHang                      // never answers (not applied)
	faultLostReply                 // applied, but the answer is lost: ErrStopped
	faultExpiredError              // refused as a forwarder reports it: an error wrapping ErrSessionExpired
)

// sessionCluster is an in-process stand-in for a cluster whose state
// machine is a SessionMachine over a recordSM: every node proposes into
// the same machine (one replicated state), as a leader at time now, and
// fault scripts each attempt's failures.
type sessionCluster struct {
	mu    sync.Mutex // guards every field
	sm    *SessionMachine
	rec   *recordSM
	index uint64
	now   int64 // the leader's clock, in Unix nanoseconds
	jump  int64 // added to now after the current attempt's apply
	calls int
	fault func(c *sessionCluster, node int, e session.Envelope) sessionFault
}

// sessionNode is one member of a sessionCluster (or, with c nil, a member
// that only answers KeepsSessions).
type sessionNode struct {
	c     *sessionCluster
	i     int
	keeps bool
}

func (n *sessionNode) KeepsSessions() bool { return n.keeps }

func (n *sessionNode) Propose(ctx context.Context, cmd []byte) (any, error) {
	c := n.c
	c.mu.Lock()
	c.calls++
	e, _ := session.Parse(cmd)
	f := faultNone
	if c.fault != nil {
		f = c.fault(c, n.i, e)
	}
	if f == faultHang {
		c.mu.Unlock()
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if f == faultExpiredError {
		c.mu.Unlock()
		return nil, fmt.Errorf("forwarded: %w", ErrSessionExpired)
	}
	cmd = bytes.Clone(cmd)
	session.Stamp(cmd, c.now)
	c.index++
	v := c.sm.Apply(Entry{Index: c.index, Term: 1, Command: cmd})
	c.now, c.jump = c.now+c.jump, 0
	c.mu.Unlock()
	if f == faultLostReply {
		return nil, ErrStopped
	}
	return v, nil
}

func (c *sessionCluster) appliedCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.rec.applied)
}

// newSessionCluster returns a Client for a two-node sessionCluster ("a",
// "b") with a one-hour session TTL.
func newSessionCluster(t *testing.T, cfg ClientConfig, fault func(c *sessionCluster, node int, e session.Envelope) sessionFault) (*Client, *sessionCluster) {
	t.Helper()
	rec := &recordSM{}
	sm, err := WithSessions(rec, DefaultSessionConfig())
	if err != nil {
		t.Fatal(err)
	}
	c := &sessionCluster{sm: sm, rec: rec, now: int64(time.Hour), fault: fault}
	cfg.RetryInterval = time.Millisecond
	cl, err := NewClient(map[transport.NodeID]Proposer{"a": &sessionNode{c: c, i: 0, keeps: true}, "b": &sessionNode{c: c, i: 1, keeps: true}}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !cl.Sessions() {
		t.Fatalf("Client.Sessions() = false with members that keep sessions")
	}
	return cl, c
}

// TestClientRetriesWithSameStamp: every command's first attempt is applied
// but its answer lost; the client retries with the same stamp, and the
// retry is answered from the session cache: each command is applied once
// and its caller gets the first application's result.
func TestClientRetriesWithSameStamp(t *testing.T) {
	lost := map[string]bool{}
	cl, c := newSessionCluster(t, DefaultClientConfig(), func(_ *sessionCluster, _ int, e session.Envelope) sessionFault {
		if e.Kind == session.KindCommand && !lost[string(e.Payload)] {
			lost[string(e.Payload)] = true
			return faultLostReply
		}
		return faultNone
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 1; i <= 20; i++ {
		res, err := cl.Propose(ctx, fmt.Appendf(nil, "cmd%d", i))
		if err != nil || res != i {
			t.Fatalf("Propose(cmd%d) = %v, %v; want %d, nil (applied once)", i, res, err, i)
		}
	}
	if got := c.appliedCount(); got != 20 {
		t.Fatalf("the state machine applied %d commands; want 20: %q", got, c.rec.applied)
	}
}

// TestClientConcurrentRetries: concurrent callers share one session; with
// random lost answers every command is still applied exactly once.
func TestClientConcurrentRetries(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cl, c := newSessionCluster(t, DefaultClientConfig(), func(*sessionCluster, int, session.Envelope) sessionFault {
		if rng.IntN(3) == 0 {
			return faultLostReply
		}
		return faultNone
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const callers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, callers*each)
	for g := range callers {
		wg.Go(func() {
			for i := range each {
				if _, err := cl.Propose(ctx, fmt.Appendf(nil, "g%d-%d", g, i)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Propose = %v", err)
	}
	seen := map[string]bool{}
	for _, cmd := range c.rec.applied {
		if seen[cmd] {
			t.Fatalf("%s applied twice", cmd)
		}
		seen[cmd] = true
	}
	if len(seen) != callers*each {
		t.Fatalf("applied %d commands; want %d", len(seen), callers*each)
	}
	// The cache is trimmed by the acknowledgement mark each command
	// carries (its Client's lowest unanswered sequence number). How far the
	// mark lagged while the callers ran depends on scheduling (one command
	// whose reply was lost holds it back while the others go on), so the
	// check is made with one more command, proposed when nothing is
	// outstanding: its mark acknowledges every earlier result, and only
	// its own may stay cached.
	if _, err := cl.Propose(ctx, []byte("last")); err != nil {
		t.Fatalf("Propose(last) = %v", err)
	}
	if p := c.sm.table.Pending(cl.sess.Load().id); p > 1 {
		t.Fatalf("the session caches %d results after every earlier command was answered; want at most 1 (the last one's)", p)
	}
}

// TestClientReopensExpiredSession: a client idle past the TTL finds its
// session expired; the command was refused (not applied), so the client
// registers a new session and proposes it again.
func TestClientReopensExpiredSession(t *testing.T) {
	registers := 0
	cl, c := newSessionCluster(t, DefaultClientConfig(), func(_ *sessionCluster, _ int, e session.Envelope) sessionFault {
		if e.Kind == session.KindRegister {
			registers++
		}
		return faultNone
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cl.Propose(ctx, []byte("before")); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.now += int64(2 * time.Hour)
	c.mu.Unlock()
	if res, err := cl.Propose(ctx, []byte("after")); err != nil || res != 2 {
		t.Fatalf("Propose after expiry = %v, %v; want 2, nil", res, err)
	}
	if registers != 2 || c.appliedCount() != 2 {
		t.Fatalf("%d registrations, %d commands applied; want 2 and 2", registers, c.appliedCount())
	}
}

// TestClientExpiredAfterAmbiguousIsUnknown: the first attempt is applied,
// its answer lost, and the session expires before the retry: the result
// is gone, so the client reports the outcome as unknown instead of
// proposing the command again in a new session (which would apply it
// twice).
func TestClientExpiredAfterAmbiguousIsUnknown(t *testing.T) {
	cl, c := newSessionCluster(t, DefaultClientConfig(), func(c *sessionCluster, _ int, e session.Envelope) sessionFault {
		if e.Kind == session.KindCommand && e.Seq == 1 && c.calls == 2 {
			c.jump = int64(2 * time.Hour) // the retry comes too late
			return faultLostReply
		}
		return faultNone
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := cl.Propose(ctx, []byte("x"))
	if !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, ErrSessionExpired) {
		t.Fatalf("Propose = %v; want ErrOutcomeUnknown wrapping ErrSessionExpired", err)
	}
	if got := c.appliedCount(); got != 1 {
		t.Fatalf("applied %d times; want once", got)
	}
	if res, err := cl.Propose(ctx, []byte("y")); err != nil || res != 2 {
		t.Fatalf("next Propose = %v, %v; want 2, nil in a new session", res, err)
	}
}

// TestClientAcknowledgesResults: a client that proposes one command at a
// time keeps at most one cached result in its session.
func TestClientAcknowledgesResults(t *testing.T) {
	cl, c := newSessionCluster(t, DefaultClientConfig(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 50 {
		if _, err := cl.Propose(ctx, fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.sm.table.Pending(SessionID(1)); p > 1 {
		t.Fatalf("session caches %d results; want at most 1", p)
	}
}

// TestClientWaitsForCacheRoom: an old command is stuck while newer ones
// fill the session cache (their results cannot be dropped while the
// client still waits for the old one). The newer ones are refused with
// ErrTooManyPending (not applied) and retried; the old one is admitted
// regardless, so everything completes, each command applied once.
func TestClientWaitsForCacheRoom(t *testing.T) {
	started := make(chan struct{})
	cl, c := newSessionCluster(t, slowOnceConfig(), slowOnceFault(started))
	crowdAroundSlow(t, cl, c, started, 5, 5*time.Second, "")
}

// slowOnceConfig is the client configuration of the crowdAroundSlow tests:
// attempts bounded at 50 ms.
func slowOnceConfig() ClientConfig {
	cfg := DefaultClientConfig()
	cfg.AttemptTimeout = 50 * time.Millisecond
	return cfg
}

// slowOnceFault hangs the first attempt of the command "slow" (see
// hangSlowOnce), closing started when it does.
func slowOnceFault(started chan struct{}) func(*sessionCluster, int, session.Envelope) sessionFault {
	hang := hangSlowOnce(started)
	return func(_ *sessionCluster, _ int, e session.Envelope) sessionFault {
		if hang(e) {
			return faultHang
		}
		return faultNone
	}
}

// TestClientWakesWhenCacheHasRoom: as in TestClientWaitsForCacheRoom, a
// stuck old command fills the cache and a newer command is refused; the
// refused command is retried as soon as the old one returns (the mark
// moves), not after a pause: RetryInterval is an hour here, far beyond the
// test's context (which only turns a missed wake-up into a failure).
func TestClientWakesWhenCacheHasRoom(t *testing.T) {
	started := make(chan struct{})
	hang := hangSlowOnce(started)
	cfg := DefaultClientConfig()
	cfg.AttemptTimeout = 50 * time.Millisecond
	refused := 0
	cl, c := newSessionCluster(t, cfg, func(c *sessionCluster, _ int, e session.Envelope) sessionFault {
		if hang(e) {
			return faultHang
		}
		if e.Kind == session.KindCommand && c.sm.table.Pending(e.Session) >= 2 && e.Seq != e.Acked {
			refused++
		}
		return faultNone
	})
	cl.cfg.RetryInterval = time.Hour
	crowdAroundSlow(t, cl, c, started, 4, 10*time.Second, " (a refused command not woken when the mark moved?)")
	c.mu.Lock()
	defer c.mu.Unlock()
	if refused == 0 {
		t.Fatalf("no command was refused for a full cache: the test did not test the wake-up")
	}
}

// hangSlowOnce returns a check, for a sessionCluster fault function, that
// is true for the first attempt of the command "slow" only (which then
// hangs), and closes started at that moment.
func hangSlowOnce(started chan struct{}) func(session.Envelope) bool {
	var once sync.Once
	return func(e session.Envelope) bool {
		if e.Kind != session.KindCommand || string(e.Payload) != "slow" {
			return false
		}
		hang := false
		once.Do(func() { hang = true; close(started) })
		return hang
	}
}

// crowdAroundSlow is the scenario of the cache tests: a session with room
// for two results, a first command, the command "slow" (whose first
// attempt hangs: started closes then), and newer commands proposed while
// it is stuck. Every command must complete and be applied exactly once.
// hint is added to the message of a newer command that fails.
func crowdAroundSlow(t *testing.T, cl *Client, c *sessionCluster, started <-chan struct{}, newer int, timeout time.Duration, hint string) {
	t.Helper()
	scfg := DefaultSessionConfig()
	scfg.MaxPending = 2
	sm, err := WithSessions(c.rec, scfg)
	if err != nil {
		t.Fatal(err)
	}
	c.sm = sm // before the first Propose: the session is registered in it
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if _, err := cl.Propose(ctx, []byte("first")); err != nil {
		t.Fatal(err)
	}
	slow := make(chan error, 1)
	go func() {
		_, err := cl.Propose(ctx, []byte("slow"))
		slow <- err
	}()
	<-started
	for i := range newer {
		if _, err := cl.Propose(ctx, fmt.Appendf(nil, "new%d", i)); err != nil {
			t.Fatalf("Propose(new%d) = %v%s", i, err, hint)
		}
	}
	if err := <-slow; err != nil {
		t.Fatalf("Propose(slow) = %v", err)
	}
	if got, want := c.appliedCount(), newer+2; got != want {
		t.Fatalf("applied %d commands; want %d (each once): %q", got, want, c.rec.applied)
	}
}

// TestClientExpiredAsError: a forwarding Proposer that reports the
// session's expiry as an error (not a result) gets the same treatment:
// the command was not applied, so the client reopens a session.
func TestClientExpiredAsError(t *testing.T) {
	refused := false
	cl, c := newSessionCluster(t, DefaultClientConfig(), func(_ *sessionCluster, _ int, e session.Envelope) sessionFault {
		if e.Kind == session.KindCommand && !refused {
			refused = true
			return faultExpiredError
		}
		return faultNone
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if res, err := cl.Propose(ctx, []byte("x")); err != nil || res != 1 {
		t.Fatalf("Propose = %v, %v; want 1, nil after reopening the session", res, err)
	}
	if c.sm.Sessions() != 2 {
		t.Fatalf("%d sessions; want 2 (the client reopened one)", c.sm.Sessions())
	}
}

// TestClientClose: Close ends the session on the nodes; the next Propose
// opens a new one.
func TestClientClose(t *testing.T) {
	cl, c := newSessionCluster(t, DefaultClientConfig(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.Close(ctx); err != nil {
		t.Fatalf("Close without a session = %v; want nil", err)
	}
	if _, err := cl.Propose(ctx, []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := cl.Close(ctx); err != nil || c.sm.Sessions() != 0 {
		t.Fatalf("Close = %v with %d sessions open; want nil, 0", err, c.sm.Sessions())
	}
	if res, err := cl.Propose(ctx, []byte("b")); err != nil || res != 2 || c.sm.Sessions() != 1 {
		t.Fatalf("Propose after Close = %v, %v with %d sessions; want 2, nil, 1", res, err, c.sm.Sessions())
	}
	var zero *Client
	if err := zero.Close(ctx); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Close on a nil Client = %v; want ErrInvalidConfig", err)
	}
}

// TestClientAckMark: whatever order the callers of a session's commands
// return in, the acknowledgement mark the Client sends is the lowest
// sequence number still waited for (the next one if none is), and it
// never moves down, also once the ring of open numbers wraps around.
func TestClientAckMark(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		c := &Client{}
		ring := 1 << rapid.IntRange(0, 3).Draw(rt, "ring log2")
		s := newClientSession(1, ring)
		ctx := context.Background()
		open := map[uint64]bool{}
		for range rapid.IntRange(1, 300).Draw(rt, "ops") {
			// begin would wait with ring numbers taken from the mark up.
			if s.next.Load()-s.low.Load() < uint64(ring) && (len(open) == 0 || rapid.IntRange(0, 2).Draw(rt, "op") == 0) {
				seq, err := c.begin(ctx, s)
				if err != nil || open[seq] || seq != s.next.Load()-1 {
					rt.Fatalf("begin = %d, %v; open %v, next %d", seq, err, open, s.next.Load())
				}
				open[seq] = true
			} else {
				var seqs []uint64
				for seq := range open {
					seqs = append(seqs, seq)
				}
				slices.Sort(seqs)
				seq := rapid.SampledFrom(seqs).Draw(rt, "end")
				delete(open, seq)
				c.end(s, seq)
			}
			want := s.next.Load()
			for seq := range open {
				want = min(want, seq)
			}
			if got := s.low.Load(); got != want {
				rt.Fatalf("ack mark %d; want %d (open %v, next %d)", got, want, open, s.next.Load())
			}
		}
	})
}

// TestClientAckMarkConcurrent: callers numbering and finishing commands
// at once never see the mark pass a number they still hold, and once all
// returned the mark is the next number. With a small ring, callers wait
// for room (the oldest open number to return) instead of reusing a slot.
func TestClientAckMarkConcurrent(t *testing.T) {
	for _, ring := range []int{2, 64} {
		c := &Client{}
		s := newClientSession(1, ring)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for g := range 16 {
			wg.Go(func() {
				for i := range 500 {
					seq, err := c.begin(ctx, s)
					if err != nil {
						errs <- err
						return
					}
					if i%(g+1) == 0 {
						runtime.Gosched() // hold it a little
					}
					if low := s.low.Load(); low > seq {
						errs <- fmt.Errorf("mark %d passed open number %d", low, seq)
					}
					c.end(s, seq)
				}
			})
		}
		wg.Wait()
		cancel()
		close(errs)
		for err := range errs {
			t.Fatalf("ring %d: %v", ring, err)
		}
		if low, next := s.low.Load(), s.next.Load(); low != next || next != 16*500+1 {
			t.Fatalf("ring %d: after every caller returned: mark %d, next %d; want both %d", ring, low, next, 16*500+1)
		}
	}
}

// TestClientCommandLimit: a Client proposing to *Nodes hands them its
// attempts directly (Node.propose, not Node.Propose), and the nodes still
// refuse a command over MaxCommandBytes, counting the session's stamp: the
// limit is what keeps every entry small enough to replicate. Before, a
// Client whose leader was a local Node bypassed it.
func TestClientCommandLimit(t *testing.T) {
	const limit = 64
	tests := []struct {
		name     string
		sessions bool
		size     int
		tooLarge bool
	}{
		{"plain at the limit", false, limit, false},
		{"plain over the limit", false, limit + 1, true},
		{"stamped at the limit", true, limit - session.MaxCommandOverhead, false},
		// The payload fits; with the session's stamp it does not.
		{"stamped over the limit", true, limit - session.MaxCommandOverhead + 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			recs := map[transport.NodeID]*syncRecordSM{}
			nodes := startThree(t, func(cfg *Config) { cfg.MaxCommandBytes = limit }, func(id transport.NodeID) StateMachine {
				recs[id] = &syncRecordSM{}
				if tt.sessions {
					return newSessionMachine(t, recs[id])
				}
				return recs[id]
			})
			members := map[transport.NodeID]Proposer{}
			for id, n := range nodes {
				members[id] = n
			}
			cl, err := NewClient(members, DefaultClientConfig())
			if err != nil || cl.Sessions() != tt.sessions {
				t.Fatalf("NewClient = %v, sessions %v; want sessions %v", err, cl.Sessions(), tt.sessions)
			}
			if _, err := cl.Propose(ctx, []byte("first")); err != nil { // a leader, and the session
				t.Fatal(err)
			}
			_, err = cl.Propose(ctx, bytes.Repeat([]byte("x"), tt.size))
			if got := errors.Is(err, ErrTooLarge); got != tt.tooLarge || (!tt.tooLarge && err != nil) {
				t.Fatalf("Propose(%d bytes) = %v; want ErrTooLarge %v", tt.size, err, tt.tooLarge)
			}
			if _, err := cl.Propose(ctx, []byte("last")); err != nil { // applied after the big one, if it was
				t.Fatal(err)
			}
			rec := recs[cl.Leader()]
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if applied := len(rec.rec.applied); applied != map[bool]int{true: 2, false: 3}[tt.tooLarge] {
				t.Fatalf("the leader applied %d commands (%.20q); want the big one %s", applied, rec.rec.applied, map[bool]string{true: "refused", false: "applied"}[tt.tooLarge])
			}
		})
	}
}

// TestClientBeginAfterTheMarkMoved: begin reads the ack mark before the
// next number. Other callers may take and finish numbers between the two
// reads; read the other way round, the mark could pass the number read
// and the ring look full for good (found when TestClientAckMarkConcurrent
// hung on a loaded machine, its ring of 2 "18446744073709550855
// commands" full).
func TestClientBeginAfterTheMarkMoved(t *testing.T) {
	c := &Client{}
	s := newClientSession(1, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // guards a hang only
	defer cancel()
	calls := 0
	s.beginHook = func() { // between begin's read of low and of next
		if calls++; calls > 1 {
			return
		}
		for range 10 { // other callers meanwhile, each done before the next
			seq, err := c.begin(ctx, s)
			if err != nil {
				t.Errorf("another caller's begin = %v", err)
				return
			}
			c.end(s, seq)
		}
	}
	seq, err := c.begin(ctx, s)
	if err != nil || seq != 11 {
		t.Fatalf("begin after others took and finished 10 numbers = %d, %v; want 11", seq, err)
	}
}
