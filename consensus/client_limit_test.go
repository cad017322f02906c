package consensus

// Tests of the Client's limit on the commands a session numbers at once,
// learned from its *Node members (sessionLimiter).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distkit/distkit/consensus/session"
	"github.com/distkit/distkit/transport"
)

// payloadCounter is a state machine that counts how often each command
// was applied.
type payloadCounter struct {
	mu      sync.Mutex
	applied map[string]int
}

func (s *payloadCounter) Apply(e Entry) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applied[string(e.Command)]++
	return nil
}

func (s *payloadCounter) Snapshot(io.Writer) error { return nil }
func (s *payloadCounter) Restore(io.Reader) error  { return nil }

func (s *payloadCounter) count(cmd string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied[cmd]
}

// holdingNode is a *Node reached as a plain Proposer (the Client asserts
// *Node itself for its first-attempt path, so this takes the other one)
// that still tells the Client its session limit: sessionMaxPending is
// promoted from the embedded *Node. It counts the commands the table
// refused as too many pending, and holds back the answer of the command
// "hold" until release is closed, so that its caller keeps the session's
// ack mark where it is.
type holdingNode struct {
	*Node
	refused *atomic.Int64
	held    chan<- struct{} // closed when "hold" is answered and held
	release <-chan struct{}
	once    *sync.Once
}

func (n holdingNode) Propose(ctx context.Context, cmd []byte) (any, error) {
	res, err := n.Node.Propose(ctx, cmd)
	if errors.Is(refusal(res), ErrTooManyPending) {
		n.refused.Add(1)
	}
	if e, perr := session.Parse(cmd); perr == nil && string(e.Payload) == "hold" && err == nil {
		n.once.Do(func() {
			close(n.held)
			<-n.release
		})
	}
	return res, err
}

// TestClientNumbersNoMoreThanTheTableCaches: with *Node members whose
// session tables cache MaxPending results, a Client numbers at most that
// many commands past the oldest one its callers wait for, so the table
// never has to refuse one as too many pending (a refused command costs a
// log entry on every node and a retry). One command's answer is held
// back (its caller keeps the ack mark) while other callers go on: they
// must wait for room in begin, not be numbered and refused.
func TestClientNumbersNoMoreThanTheTableCaches(t *testing.T) {
	const maxPending = 4
	sms := map[transport.NodeID]*payloadCounter{}
	var smMu sync.Mutex
	nodes := startThree(t, nil, func(id transport.NodeID) StateMachine {
		scfg := DefaultSessionConfig()
		scfg.MaxPending = maxPending
		pc := &payloadCounter{applied: map[string]int{}}
		smMu.Lock()
		sms[id] = pc
		smMu.Unlock()
		sm, err := WithSessions(pc, scfg)
		if err != nil {
			t.Fatal(err)
		}
		return sm
	})
	refused := new(atomic.Int64)
	held, release := make(chan struct{}), make(chan struct{})
	once := new(sync.Once)
	members := map[transport.NodeID]Proposer{}
	for id, n := range nodes {
		members[id] = holdingNode{Node: n, refused: refused, held: held, release: release, once: once}
	}
	cl, err := NewClient(members, DefaultClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	if cl.inFlight != maxPending {
		t.Fatalf("client numbers %d commands at once; want the members' MaxPending %d", cl.inFlight, maxPending)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := cl.Propose(ctx, []byte("first")); err != nil { // registers the session
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	wg.Go(func() {
		if _, err := cl.Propose(ctx, []byte("hold")); err != nil {
			errs <- fmt.Errorf("Propose(hold) = %w", err)
		}
	})
	select {
	case <-held:
	case <-ctx.Done():
		wg.Wait() // Propose(hold) returns with ctx
		t.Fatal("the command hold was never answered")
	}
	const callers, each = 8, 4
	for c := range callers {
		wg.Go(func() {
			for i := range each {
				if _, err := cl.Propose(ctx, fmt.Appendf(nil, "c%d-%d", c, i)); err != nil {
					errs <- fmt.Errorf("Propose(c%d-%d) = %w", c, i, err)
					return
				}
			}
		})
	}
	// Release hold once a caller waits for room (what the limit makes
	// them do) or a command was refused (what happens without it).
	s := cl.sess.Load()
	for s.waiters.Load() == 0 && refused.Load() == 0 {
		if ctx.Err() != nil {
			close(release)
			wg.Wait()
			t.Fatal("no caller ever waited for room and none was refused, with one command held")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if r := refused.Load(); r != 0 {
		t.Errorf("%d commands refused as too many pending; want none: the client numbered more than the table caches", r)
	}
	leader := sms[cl.Leader()]
	for _, cmd := range []string{"first", "hold"} {
		if got := leader.count(cmd); got != 1 {
			t.Errorf("%s applied %d times; want once", cmd, got)
		}
	}
	for c := range callers {
		for i := range each {
			if got := leader.count(fmt.Sprintf("c%d-%d", c, i)); got != 1 {
				t.Errorf("c%d-%d applied %d times; want once", c, i, got)
			}
		}
	}
}

// TestClientLimitFromMembers: NewClient takes the smallest MaxPending of
// its *Node members as its limit, capped at sessionRing; members that are
// not *Nodes (or keep no sessions) leave it at sessionRing.
func TestClientLimitFromMembers(t *testing.T) {
	withPending := func(k int) func(transport.NodeID) StateMachine {
		return func(transport.NodeID) StateMachine {
			scfg := DefaultSessionConfig()
			scfg.MaxPending = k
			sm, err := WithSessions(&countSM{}, scfg)
			if err != nil {
				t.Fatal(err)
			}
			return sm
		}
	}
	small := startThree(t, nil, withPending(3))
	huge := startThree(t, nil, withPending(4*sessionRing))
	plain := startThree(t, nil, func(transport.NodeID) StateMachine { return &countSM{} })
	tests := []struct {
		name    string
		members map[transport.NodeID]Proposer
		want    int
	}{
		{"nodes with MaxPending 3", map[transport.NodeID]Proposer{"n1": small["n1"], "n2": small["n2"]}, 3},
		{"one node of MaxPending 3 among larger ones", map[transport.NodeID]Proposer{"n1": huge["n1"], "n2": small["n2"]}, 3},
		{"nodes caching more than the ring", map[transport.NodeID]Proposer{"n1": huge["n1"]}, sessionRing},
		{"nodes without sessions", map[transport.NodeID]Proposer{"n1": plain["n1"]}, sessionRing},
		{"stubs", map[transport.NodeID]Proposer{"a": nopProposer{keeps: true}}, sessionRing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// NewClient ranges over a map: 20 times, so that the members
			// come in every order (a limit taken from whichever comes
			// last would show).
			for range 20 {
				cl, err := NewClient(tt.members, DefaultClientConfig())
				if err != nil {
					t.Fatal(err)
				}
				if cl.inFlight != tt.want {
					t.Fatalf("client numbers %d commands at once; want %d", cl.inFlight, tt.want)
				}
			}
		})
	}
	var zero *Node
	if got := zero.sessionMaxPending(); got != 0 {
		t.Fatalf("nil Node's sessionMaxPending = %d; want 0", got)
	}
}
