package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/consensus/session"
	"github.com/distkit/distkit/transport"
)

// TestForwardedRetryAppliesOnce is issue 13's failure in miniature: a
// follower forwards PUT x=A, the answer is lost, PUT x=B is applied, and
// the follower's retry of x=A reaches the leader. With the session stamp
// the leader proposes the retry as it is and the session table answers it
// from its cache: x stays B.
func TestForwardedRetryAppliesOnce(t *testing.T) {
	ids := []transport.NodeID{"n1", "n2", "n3"}
	servers, _, err := startCluster(ids, t.TempDir())
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := servers["n1"].do(ctx, "put", "x", "0"); err != nil {
		t.Fatal(err)
	}
	leader := servers["n1"].node.Status().Leader
	follower := ids[0]
	if follower == leader {
		follower = ids[1]
	}
	fwd := remoteProposer{rpc: servers[follower].rpc, to: leader}
	v, err := fwd.Propose(ctx, session.AppendRegister(nil))
	id, ok := v.(consensus.SessionID)
	if err != nil || !ok {
		t.Fatalf("register through %s = %v, %v; want a SessionID", follower, v, err)
	}
	putA := session.AppendCommand(nil, id, 1, 1, encodeCommand("put", "x", "A"))
	putB := session.AppendCommand(nil, id, 2, 1, encodeCommand("put", "x", "B"))
	steps := []struct {
		name string
		cmd  []byte
		want result
	}{
		{"put x=A", putA, result{Value: "A", Found: true}},
		{"put x=B", putB, result{Value: "B", Found: true}},
		{"retry of put x=A", putA, result{Value: "A", Found: true}}, // the cached answer
	}
	for _, st := range steps {
		v, err := fwd.Propose(ctx, st.cmd)
		if err != nil || v != st.want {
			t.Fatalf("%s forwarded by %s = %v, %v; want %v", st.name, follower, v, err, st.want)
		}
	}
	got, err := servers[leader].do(ctx, "get", "x", "")
	if err != nil || got != (result{Value: "B", Found: true}) {
		t.Fatalf("GET x = %+v, %v; want B: the retried PUT x=A was applied twice", got, err)
	}

	// A command without a session stamp is refused, not proposed.
	if v, err := fwd.Propose(ctx, encodeCommand("put", "x", "C")); err == nil || !strings.Contains(err.Error(), "session stamp") {
		t.Fatalf("an unstamped forwarded command = %v, %v; want refused", v, err)
	}
	if got, err := servers[leader].do(ctx, "get", "x", ""); err != nil || got.Value != "B" {
		t.Fatalf("GET x = %+v, %v after an unstamped command; want B", got, err)
	}
	if !servers[follower].client.Sessions() {
		t.Fatal("the node's client does not use sessions")
	}
}

// TestReplyEncoding checks that every outcome of Node.Propose crosses the
// network as itself: answers as values (the session table's refusals still
// matching their sentinels, which the Client looks for), failures as
// errors that keep "not applied" apart from "outcome unknown".
func TestReplyEncoding(t *testing.T) {
	tests := []struct {
		name    string
		v       any
		err     error
		wantV   any
		wantIs  error // matched against the answer (if an error) or the failure
		wantErr bool
	}{
		{"result", result{Value: "v", Found: true}, nil, result{Value: "v", Found: true}, nil, false},
		{"missing", result{}, nil, result{}, nil, false},
		{"session", consensus.SessionID(42), nil, consensus.SessionID(42), nil, false},
		{"nil", nil, nil, nil, nil, false},
		{"expired", fmt.Errorf("consensus: sessions: %w", consensus.ErrSessionExpired), nil, nil, consensus.ErrSessionExpired, false},
		{"discarded", fmt.Errorf("x: %w", consensus.ErrResultDiscarded), nil, nil, consensus.ErrResultDiscarded, false},
		{"too many pending", consensus.ErrTooManyPending, nil, nil, consensus.ErrTooManyPending, false},
		{"malformed", fmt.Errorf("x: %w", session.ErrMalformed), nil, nil, session.ErrMalformed, false},
		{"not cacheable", consensus.ErrResultNotCacheable, nil, nil, consensus.ErrResultNotCacheable, false},
		{"not leader", nil, fmt.Errorf("consensus: propose: %w", &raft.NotLeaderError{Leader: "n2"}), nil, consensus.ErrNotLeader, true},
		{"lost", nil, consensus.ErrProposalLost, nil, consensus.ErrProposalLost, true},
		{"closed", nil, consensus.ErrClosed, nil, consensus.ErrClosed, true},
		{"too large", nil, fmt.Errorf("%w: 9 bytes", consensus.ErrTooLarge), nil, consensus.ErrTooLarge, true},
		{"dropped", nil, raft.ErrProposalDropped, nil, raft.ErrProposalDropped, true},
		{"stopped", nil, consensus.ErrStopped, nil, consensus.ErrOutcomeUnknown, true},
		{"timed out", nil, fmt.Errorf("consensus: propose: %w", context.DeadlineExceeded), nil, consensus.ErrOutcomeUnknown, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := decodeReply("n1", encodeReply(tt.v, tt.err))
			if (err != nil) != tt.wantErr {
				t.Fatalf("decodeReply(encodeReply(%v, %v)) = %v, %v; want error %v", tt.v, tt.err, v, err, tt.wantErr)
			}
			switch {
			case tt.wantErr:
				if !errors.Is(err, tt.wantIs) {
					t.Fatalf("failure %v does not match %v", err, tt.wantIs)
				}
			case tt.wantIs != nil:
				if e, ok := v.(error); !ok || !errors.Is(e, tt.wantIs) {
					t.Fatalf("answer %v does not match %v", v, tt.wantIs)
				}
			case v != tt.wantV:
				t.Fatalf("answer = %#v; want %#v", v, tt.wantV)
			}
		})
	}
	var nle *raft.NotLeaderError
	if _, err := decodeReply("n1", encodeReply(nil, &raft.NotLeaderError{Leader: "n2"})); !errors.As(err, &nle) || nle.Leader != "n2" {
		t.Fatalf("not-leader reply = %v; want the leader hint n2", err)
	}
}

func FuzzDecodeReply(f *testing.F) {
	f.Add(encodeReply(result{Value: "v", Found: true}, nil))
	f.Add(encodeReply(consensus.SessionID(7), nil))
	f.Add(encodeReply(consensus.ErrSessionExpired, nil))
	f.Add(encodeReply(nil, &raft.NotLeaderError{Leader: "n2"}))
	f.Add([]byte{replyRefused, 200})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeReply("n1", b)
		if err != nil && v != nil {
			t.Fatalf("decodeReply(%q) = %v and %v", b, v, err)
		}
		if errors.Is(err, errBadReply) && !errors.Is(err, consensus.ErrOutcomeUnknown) {
			t.Fatalf("decodeReply(%q): a bad reply must leave the outcome unknown: %v", b, err)
		}
	})
}

func FuzzDecodeResult(f *testing.F) {
	f.Add(appendResult(nil, result{Value: "v", Found: true}))
	f.Add(appendResult(nil, result{Err: "bad"}))
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeResult(b)
		if err != nil {
			if !errors.Is(err, errBadResult) {
				t.Fatalf("decodeResult(%q) = %v; want errBadResult", b, err)
			}
			return
		}
		if again, err := decodeResult(appendResult(nil, r)); err != nil || again != r {
			t.Fatalf("decodeResult(%q) = %+v, which does not survive encoding: %+v, %v", b, r, again, err)
		}
	})
}
