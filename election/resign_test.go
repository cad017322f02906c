package election_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/distkit/distkit/election"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// slowTransport delays every Send by a second while slow is set, as a
// congested link would; a Node's loop is then held in the middle of
// sending a Ready's messages.
type slowTransport struct {
	transport.Transport
	slow atomic.Bool
}

func (s *slowTransport) Send(ctx context.Context, to transport.NodeID, service string, payload []byte) error {
	if s.slow.Load() {
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return s.Transport.Send(ctx, to, service, payload)
}

// TestResignEndsLeadershipBeforeReturning: once Resign returns, the node
// no longer reports itself leader: a caller that resigns and then checks
// Leader (or stops its leader work when Observe says so) must not be told
// it still leads. Sending the resignation to the others is slow here, so
// a Resign that returned before the loop published the resigned view
// would be seen.
func TestResignEndsLeadershipBeforeReturning(t *testing.T) {
	for _, rt := range runtimes {
		t.Run(rt.name, func(t *testing.T) {
			var a *election.Node
			synctest.Test(t, func(t *testing.T) {
				net, err := memnet.New(memnet.DefaultConfig())
				if err != nil {
					t.Fatal(err)
				}
				defer net.Close()
				members := election.MembersByOrder("b", "a") // a has the higher priority
				var tr *slowTransport
				for _, id := range []transport.NodeID{"b", "a"} {
					mt, err := net.Join(id)
					if err != nil {
						t.Fatal(err)
					}
					cfg := election.DefaultConfig()
					cfg.ID, cfg.Members, cfg.BootDelay = id, members, 0
					var ttr transport.Transport = mt
					if id == "a" {
						tr = &slowTransport{Transport: mt}
						ttr = tr
					}
					nd, err := rt.new(ttr, cfg)
					if err != nil {
						t.Fatal(err)
					}
					defer nd.Close()
					if id == "a" {
						a = nd
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				won, err := a.Campaign(ctx)
				if err != nil || won.ID != "a" {
					t.Fatalf("Campaign() = %+v, %v; want a leading", won, err)
				}
				tr.slow.Store(true)
				if err := a.Resign(ctx); err != nil {
					t.Fatalf("Resign() = %v", err)
				}
				if got := a.Leader(); got.ID == "a" {
					t.Errorf("Leader() right after Resign returned = %+v; want a no longer leading", got)
				}
				tr.slow.Store(false)
				time.Sleep(2 * time.Second) // virtual: the slow sends are done, b takes over
				if got := a.Leader(); got.ID != "b" || got.Epoch <= won.Epoch {
					t.Errorf("Leader() 2 s after Resign = %+v; want b leading above epoch %d", got, won.Epoch)
				}
			})
		})
	}
}
