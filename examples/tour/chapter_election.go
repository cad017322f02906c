package main

import (
	"context"
	"fmt"
	"time"

	"github.com/distkit/distkit/election"
	"github.com/distkit/distkit/election/electionsim"
	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
)

func init() {
	register(chapter{order: 80, name: "election", title: "Leader election: Bully and Ring, with epochs", run: runElection})
}

func runElection(ctx context.Context, t *tour) error {
	ids := []transport.NodeID{"n1", "n2", "n3", "n4", "n5"}
	t.Detail("Five nodes with priorities n1 < n2 < … < n5 run in the simulator. Each notices")
	t.Detail("crashes with the detector package (heartbeats, φ accrual) and every message")
	t.Detail("carries the sender's view (leader, epoch), so views converge and an old")
	t.Detail("election's late messages lose to newer epochs. Each node writes the highest")
	t.Detail("epoch it has seen to disk before announcing it, so a restart never goes back.")
	for _, alg := range []struct {
		name string
		node func(election.Config) *electionsim.Node
	}{{"bully", electionsim.NewBully}, {"ring", electionsim.NewRing}} {
		if err := ctx.Err(); err != nil {
			return err
		}
		s, err := sim.New(sim.Config{Seed: t.seed, Faults: sim.Faults{MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}})
		if err != nil {
			return err
		}
		msgs := 0
		for _, id := range ids {
			cfg := election.DefaultConfig()
			cfg.ID, cfg.Members = id, election.MembersByOrder(ids...)
			if err := s.AddNode(id, func() sim.Node {
				n := alg.node(cfg)
				n.OnSend = func(_, _ transport.NodeID, p []byte) {
					if election.DescribeMessage(p) != "HEARTBEAT" {
						msgs++
					}
				}
				return n
			}); err != nil {
				return err
			}
		}
		view := func(id transport.NodeID) election.Leader {
			if n, ok := s.Node(id).(*electionsim.Node); ok {
				return n.Leader()
			}
			return election.Leader{}
		}
		agree := func(down transport.NodeID, after uint64) (election.Leader, time.Duration, error) {
			start := s.Now()
			var l election.Leader
			ok := s.RunUntil(func() bool {
				l = view("n1")
				for _, id := range ids {
					if id != down && view(id) != l {
						return false
					}
				}
				return l.Known() && l.Epoch > after
			}, 10*time.Second)
			if !ok {
				return l, 0, fmt.Errorf("%s: no agreement", alg.name)
			}
			return l, s.Now().Sub(start), nil
		}

		first, _, err := agree("", 0)
		if err != nil {
			return err
		}
		t.Say("%s: elected %s at epoch %d with %d messages", alg.name, first.ID, first.Epoch, msgs)
		msgs = 0
		s.Crash(first.ID)
		next, took, err := agree(first.ID, first.Epoch)
		if err != nil {
			return err
		}
		t.Say("%s: %s crashed; %s leads at epoch %d, %v later, %d messages", alg.name, first.ID, next.ID, next.Epoch, took.Round(time.Millisecond), msgs)
		s.Restart(first.ID)
		boot := view(first.ID) // its epoch survived on its disk
		back, _, err := agree("", next.Epoch)
		if err != nil {
			return err
		}
		t.Say("%s: %s restarted at epoch %d (kept on disk, never back to 0) and took over again at epoch %d", alg.name, first.ID, boot.Epoch, back.Epoch)
	}

	t.Detail("No elector stops a deposed leader from acting before it hears the news. The")
	t.Detail("epoch makes that harmless: a resource that keeps the highest epoch it has seen")
	t.Detail("refuses an older leader's late request.")
	highest := uint64(0)
	for _, req := range []struct {
		l    election.Leader
		what string
	}{{election.Leader{ID: "n5", Epoch: 3}, "x=1"}, {election.Leader{ID: "n4", Epoch: 4}, "x=2"}, {election.Leader{ID: "n5", Epoch: 3}, "x=3"}} {
		if req.l.Epoch < highest {
			t.Say("refused %s from %s: epoch %d < %d", req.what, req.l.ID, req.l.Epoch, highest)
			continue
		}
		highest = req.l.Epoch
		t.Say("applied %s from %s at epoch %d", req.what, req.l.ID, req.l.Epoch)
	}
	return nil
}
