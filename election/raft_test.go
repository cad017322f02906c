package election_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/election"
)

// scriptedRaft is a RaftNode and RaftObserver whose leadership the test
// announces by hand on ch.
type scriptedRaft struct {
	status consensus.Status
	ch     chan consensus.LeaderInfo // size 1: the test announces without waiting for the elector
}

func (s *scriptedRaft) Status() consensus.Status { return s.status }

func (s *scriptedRaft) Observe(ctx context.Context) <-chan consensus.LeaderInfo { return s.ch }

// TestRaftElectorEpochNeverGoesBack: a leadership notification with a
// lower term than one already published (a late notification, or a
// restarted node that has not caught up) is not published: the epochs the
// elector reports, the fencing tokens, only grow.
func TestRaftElectorEpochNeverGoesBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		node := &scriptedRaft{ch: make(chan consensus.LeaderInfo, 1)}
		node.status.Status = raft.Status{ID: "r1", Leader: "r2", Term: 5}
		el, err := election.NewRaft(node, election.DefaultRaftConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer el.Close()
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
		el, err := election.NewRaft(node, election.DefaultRaftConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer el.Close()
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
