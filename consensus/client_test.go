package consensus

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
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
		ambiguous  bool
		wantErr    error            // nil: success
		wantLeader transport.NodeID // the leader the client remembers afterwards
	}{
		{"first node leads", &fakeProposer{}, &fakeProposer{}, &fakeProposer{}, false, nil, "a"},
		{"follows the hint", &fakeProposer{replies: []error{notLeader("c")}}, &fakeProposer{}, &fakeProposer{}, false, nil, "c"},
		{"leader unknown: tries the next", &fakeProposer{replies: []error{notLeader("")}}, &fakeProposer{}, &fakeProposer{}, false, nil, "b"},
		{"lost proposal is retried", &fakeProposer{replies: []error{ErrProposalLost}}, &fakeProposer{}, &fakeProposer{}, false, nil, "b"},
		{"closed node is skipped", &fakeProposer{replies: []error{ErrClosed}}, &fakeProposer{}, &fakeProposer{}, false, nil, "b"},
		{"stopped is ambiguous: returned", &fakeProposer{replies: []error{ErrStopped}}, &fakeProposer{}, &fakeProposer{}, false, ErrStopped, "a"},
		{"unknown outcome is ambiguous: returned", &fakeProposer{replies: []error{ErrOutcomeUnknown}}, &fakeProposer{}, &fakeProposer{}, false, ErrOutcomeUnknown, "a"},
		{"stopped is retried when allowed", &fakeProposer{replies: []error{ErrStopped}}, &fakeProposer{}, &fakeProposer{}, true, nil, "b"},
		{"too large is final", &fakeProposer{replies: []error{ErrTooLarge}}, &fakeProposer{}, &fakeProposer{}, true, ErrTooLarge, "a"},
		{"no leader anywhere: deadline", &fakeProposer{fallback: notLeader("")}, &fakeProposer{fallback: notLeader("")},
			&fakeProposer{fallback: notLeader("")}, false, context.DeadlineExceeded, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultClientConfig()
			cfg.RetryInterval = time.Millisecond
			cfg.RetryAmbiguous = tt.ambiguous
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

func TestClientAttemptTimeoutMovesOn(t *testing.T) {
	cfg := DefaultClientConfig()
	cfg.AttemptTimeout = 10 * time.Millisecond
	cfg.RetryAmbiguous = true
	dead := &fakeProposer{block: true}
	cl, _ := NewClient(map[transport.NodeID]Proposer{"a": dead, "b": &fakeProposer{}}, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cl.Propose(ctx, []byte("x")); err != nil || cl.Leader() != "b" {
		t.Fatalf("Propose = %v, leader %q; want success on b", err, cl.Leader())
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
