package election_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/election"
	"github.com/distkit/distkit/transport"
)

// scriptedRaft is a RaftNode and RaftObserver whose leadership the test
// announces by hand on ch.
type scriptedRaft struct {
	status consensus.Status
	ch     chan consensus.LeaderInfo // size 1: the test announces without waiting for the elector
}

func (s *scriptedRaft) Status() consensus.Status { return s.status }

func (s *scriptedRaft) Observe(ctx context.Context) <-chan consensus.LeaderInfo { return s.ch }

// newRaftElector returns an elector over node, closed when the test ends.
func newRaftElector(t *testing.T, node election.RaftNode) *election.RaftElector {
	t.Helper()
	el, err := election.NewRaft(node, election.DefaultRaftConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { el.Close() })
	return el
}

// TestRaftElectorEpochNeverGoesBack: a leadership notification with a
// lower term than one already published (a late notification, or a
// restarted node that has not caught up) is not published: the epochs the
// elector reports, the fencing tokens, only grow.
func TestRaftElectorEpochNeverGoesBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		node := &scriptedRaft{ch: make(chan consensus.LeaderInfo, 1)}
		node.status.Status = raft.Status{ID: "r1", Leader: "r2", Term: 5}
		el := newRaftElector(t, node)
		want := election.Leader{ID: "r2", Epoch: 5}
		if got := el.Leader(); got != want {
			t.Fatalf("Leader() at start = %+v; want %+v", got, want)
		}
		node.ch <- consensus.LeaderInfo{Leader: "r3", Term: 4}
		synctest.Wait()
		if got := el.Leader(); got != want {
			t.Errorf("after a notification of term 4, Leader() = %+v; want %+v (terms never go back)", got, want)
		}
		node.ch <- consensus.LeaderInfo{Leader: "r3", Term: 6}
		synctest.Wait()
		if got, want := el.Leader(), (election.Leader{ID: "r3", Epoch: 6}); got != want {
			t.Errorf("after a notification of term 6, Leader() = %+v; want %+v", got, want)
		}
	})
}

// TestRaftElectorCampaignWaitsForSelf: Campaign returns only when this
// node is the Raft leader, not while another node leads.
func TestRaftElectorCampaignWaitsForSelf(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		node := &scriptedRaft{ch: make(chan consensus.LeaderInfo, 1)}
		node.status.Status = raft.Status{ID: "r1", Leader: "r2", Term: 5}
		el := newRaftElector(t, node)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if l, err := el.Campaign(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Campaign() while r2 leads = %+v, %v; want context.DeadlineExceeded", l, err)
		}
		node.ch <- consensus.LeaderInfo{Leader: "r1", Term: 6}
		l, err := el.Campaign(context.Background())
		if want := (election.Leader{ID: "r1", Epoch: 6}); err != nil || l != want {
			t.Errorf("Campaign() once r1 leads = %+v, %v; want %+v", l, err, want)
		}
	})
}

// transferringRaft is a scriptedRaft that can hand its leadership over:
// TransferLeadership makes to (or r2) the leader in the next term at once,
// as the node sees it, and leaves the notification of it unsent, as if it
// were still on its way to the elector.
type transferringRaft struct {
	scriptedRaft
	mu sync.Mutex
}

func (s *transferringRaft) Status() consensus.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

func (s *transferringRaft) set(leader transport.NodeID, term uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status.Leader, s.status.Term = leader, term
}

func (s *transferringRaft) TransferLeadership(_ context.Context, to transport.NodeID) error {
	if to == "" {
		to = "r2"
	}
	st := s.Status()
	s.set(to, st.Term+1)
	return nil
}

// TestRaftElectorResignEndsLeadershipBeforeReturning: once Resign returns
// nil, Leader no longer names this node, even while the node's
// notification of the new leader has not reached the elector: after a
// transfer, and on a node whose leadership had already gone.
func TestRaftElectorResignEndsLeadershipBeforeReturning(t *testing.T) {
	tests := []struct {
		name string
		// lostBefore: the node already follows when Resign is called,
		// and the elector has not heard of it yet.
		lostBefore bool
		want       election.Leader
	}{
		{"leader hands over", false, election.Leader{ID: "r2", Epoch: 6}},
		{"leadership already lost", true, election.Leader{ID: "r3", Epoch: 6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				node := &transferringRaft{scriptedRaft: scriptedRaft{ch: make(chan consensus.LeaderInfo, 1)}}
				node.status.Status = raft.Status{ID: "r1", Leader: "r1", Term: 5}
				el := newRaftElector(t, node)
				if got := el.Leader(); got.ID != "r1" {
					t.Fatalf("Leader() at start = %+v; want r1", got)
				}
				if tt.lostBefore {
					node.set("r3", 6)
				}
				if err := el.Resign(context.Background()); err != nil {
					t.Fatalf("Resign() = %v", err)
				}
				if got := el.Leader(); got != tt.want {
					t.Errorf("Leader() right after Resign = %+v; want %+v", got, tt.want)
				}
			})
		})
	}
}
