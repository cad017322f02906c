package consensus

// Tests of a session command's first attempt, which a Client makes on the
// presumed leader outside send's loop when that member is a *Node (the
// stub members of newSessionCluster are not, so these script members stand
// in for *Nodes the way BenchmarkClientOverhead's do), and of the ack
// mark's fast path in end.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/consensus/session"
	"github.com/distkit/distkit/transport"
)

// scriptMember answers each attempt (through Propose or, as a *Node does,
// through propose) with the next scripted answer; a register envelope is
// answered with a new SessionID.
type scriptMember struct {
	mu      sync.Mutex
	name    string
	script  []func(cmd []byte) (any, error)
	log     *[]string
	nextSID SessionID
}

func (m *scriptMember) KeepsSessions() bool { return true }

func (m *scriptMember) Propose(ctx context.Context, cmd []byte) (any, error) {
	return m.propose(ctx, cmd, false, time.Time{})
}

func (m *scriptMember) propose(_ context.Context, cmd []byte, _ bool, _ time.Time) (any, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	*m.log = append(*m.log, m.name)
	if e, err := session.Parse(cmd); err == nil && e.Kind == session.KindRegister {
		m.nextSID++
		return m.nextSID, nil
	}
	if len(m.script) == 0 {
		return "applied", nil
	}
	f := m.script[0]
	m.script = m.script[1:]
	return f(cmd)
}

func scriptedClient(t *testing.T, a, b *scriptMember) *Client {
	t.Helper()
	cl, err := NewClient(map[transport.NodeID]Proposer{"a": a, "b": b}, DefaultClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	cl.bounded[0], cl.bounded[1] = a, b // as NewClient does for *Nodes
	cl.sess.Store(newClientSession(1, sessionRing))
	return cl
}

// TestClientFirstAttemptAmbiguityKept: the first attempt, made on the
// presumed leader outside send's loop, hits its bound (it may have been
// applied); the retry on the other member finds the session expired. The
// outcome is unknown: the command must not be proposed again in a new
// session.
func TestClientFirstAttemptAmbiguityKept(t *testing.T) {
	var log []string
	a := &scriptMember{name: "a", log: &log, nextSID: 100, script: []func([]byte) (any, error){
		func([]byte) (any, error) { return nil, errAttemptBound },
	}}
	b := &scriptMember{name: "b", log: &log, nextSID: 200, script: []func([]byte) (any, error){
		func([]byte) (any, error) { return ErrSessionExpired, nil },
	}}
	cl := scriptedClient(t, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := cl.Propose(ctx, []byte("x"))
	if !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, ErrSessionExpired) {
		t.Fatalf("Propose = %v, %v (attempts %v); want ErrOutcomeUnknown wrapping ErrSessionExpired", res, err, log)
	}
}

// TestClientFirstAttemptFollowsHint: the presumed leader refuses the first
// attempt with a hint; the next attempt goes to the hinted member, which
// becomes the presumed leader.
func TestClientFirstAttemptFollowsHint(t *testing.T) {
	var log []string
	a := &scriptMember{name: "a", log: &log, script: []func([]byte) (any, error){
		func([]byte) (any, error) {
			return nil, fmt.Errorf("consensus: propose: %w", &raft.NotLeaderError{Leader: "b"})
		},
	}}
	b := &scriptMember{name: "b", log: &log}
	cl := scriptedClient(t, a, b)
	res, err := cl.Propose(context.Background(), []byte("x"))
	if err != nil || res != "applied" || len(log) != 2 || log[1] != "b" || cl.Leader() != "b" {
		t.Fatalf("Propose = %v, %v; attempts %v, leader %s; want applied on b after one attempt on a", res, err, log, cl.Leader())
	}
}

// TestClientFirstAttemptRefusals: refusals answered to the first attempt
// are handled as send's answers are: ErrTooManyPending is retried (the
// same stamp), ErrSessionExpired (nothing ambiguous) reopens a session.
func TestClientFirstAttemptRefusals(t *testing.T) {
	for _, refusal := range []error{ErrTooManyPending, ErrSessionExpired} {
		var log []string
		a := &scriptMember{name: "a", log: &log, nextSID: 100, script: []func([]byte) (any, error){
			func([]byte) (any, error) { return fmt.Errorf("consensus: sessions: %w", refusal), nil },
		}}
		b := &scriptMember{name: "b", log: &log, nextSID: 200}
		cl := scriptedClient(t, a, b)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := cl.Propose(ctx, []byte("x"))
		cancel()
		if err != nil || res != "applied" {
			t.Fatalf("first attempt refused with %v: Propose = %v, %v (attempts %v); want applied", refusal, res, err, log)
		}
	}
}

// TestClientFirstAttemptAckMark: the first attempt's stamp acknowledges
// no number whose caller still waits.
func TestClientFirstAttemptAckMark(t *testing.T) {
	var log []string
	held, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	acks := map[uint64]uint64{}
	a := &scriptMember{name: "a", log: &log}
	a.script = []func([]byte) (any, error){
		func(cmd []byte) (any, error) {
			e, _ := session.Parse(cmd)
			mu.Lock()
			acks[e.Seq] = e.Acked
			mu.Unlock()
			a.mu.Unlock() // let the second command in while this one is held
			close(held)
			<-release
			a.mu.Lock()
			return "applied", nil
		},
		func(cmd []byte) (any, error) {
			e, _ := session.Parse(cmd)
			mu.Lock()
			acks[e.Seq] = e.Acked
			mu.Unlock()
			return "applied", nil
		},
	}
	b := &scriptMember{name: "b", log: &log}
	cl := scriptedClient(t, a, b)
	done := make(chan error, 1)
	go func() { _, err := cl.Propose(context.Background(), []byte("slow")); done <- err }()
	<-held
	if _, err := cl.Propose(context.Background(), []byte("fast")); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if acks[2] != 1 {
		t.Fatalf("command 2 was stamped acked %d while command 1 was in flight; want 1 (%v)", acks[2], acks)
	}
}

// TestClientAckMarkNeverPassesOpen: a checker watches the mark while
// callers take numbers, hold them for random times and end them in any
// order: it never passes a number still held, and it reaches next.
func TestClientAckMarkNeverPassesOpen(t *testing.T) {
	for _, ring := range []int{1, 2, 4, 8, 64} {
		c := &Client{}
		s := newClientSession(1, ring)
		const callers, each = 8, 2000
		open := make([]atomic.Bool, callers*each+2)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var bad atomic.Uint64
		stop := make(chan struct{})
		var cw sync.WaitGroup
		cw.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				// The mark (every command's stamp) never passes a
				// number still held.
				low := s.low.Load()
				for seq := max(1, low-min(low, uint64(2*ring))); seq < low; seq++ {
					if open[seq].Load() {
						bad.Store(seq)
					}
				}
				runtime.Gosched()
			}
		})
		var wg sync.WaitGroup
		for g := range callers {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(g), uint64(ring)))
				for range each {
					seq, err := c.begin(ctx, s)
					if err != nil {
						t.Error(err)
						return
					}
					open[seq].Store(true)
					for range r.IntN(4) {
						runtime.Gosched()
					}
					open[seq].Store(false)
					c.end(s, seq)
				}
			})
		}
		wg.Wait()
		close(stop)
		cw.Wait()
		cancel()
		if b := bad.Load(); b != 0 {
			t.Fatalf("ring %d: the mark passed open number %d", ring, b)
		}
		if low, next := s.low.Load(), s.next.Load(); low != next || next != callers*each+1 {
			t.Fatalf("ring %d: mark %d, next %d; want both %d", ring, low, next, callers*each+1)
		}
	}
}
