package raft

import (
	"testing"
	"time"

	"github.com/distkit/distkit/sim"
)

// Liveness when responses are slow: check-quorum must count any message
// heard from a follower in the window, and a new leader must get a full
// window before its first check.

// A new leader gets a full window before it is judged: a leader whose
// responses are all late survives its first check, and steps down only
// after a whole window without hearing from anyone.
func TestCheckQuorumNewLeaderGetsFullWindow(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	// Nothing but the votes reaches n1 within the window.
	c.drop = func(m Message) bool { return m.To == "n1" && m.Type != MsgVoteResp }
	c.nodes["n1"].r.campaign(false, false)
	c.process()
	if c.leader() != "n1" {
		t.Fatal("n1 did not win")
	}
	c.drop = func(m Message) bool { return m.To == "n1" }
	for range DefaultConfig().ElectionTicks {
		c.nodes["n1"].Tick()
		c.process()
	}
	if st := c.nodes["n1"].Status(); st.Role != Leader {
		t.Errorf("new leader stepped down at its first check, before a full window had passed")
	}
	for range DefaultConfig().ElectionTicks {
		c.nodes["n1"].Tick()
		c.process()
	}
	if st := c.nodes["n1"].Status(); st.Role == Leader {
		t.Errorf("leader still leads after a whole window without hearing from anyone")
	}
}

// Any message of the term counts, not only timely responses: a vote
// response that arrives after the election was won, or a follower read.
func TestCheckQuorumCountsAnyMessage(t *testing.T) {
	tests := []struct {
		name string
		m    func(term uint64) Message
	}{
		{"late vote response", func(term uint64) Message {
			return Message{Type: MsgVoteResp, From: "n2", To: "n1", Term: term}
		}},
		{"follower read", func(term uint64) Message {
			return Message{Type: MsgReadIndex, From: "n2", To: "n1", Term: term, Context: []byte("x")}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCluster(t, 3, nil)
			c.electNode("n1")
			c.drop = func(m Message) bool { return m.To == "n1" }
			ticks := DefaultConfig().ElectionTicks
			// Run to just after a check, so the window is fresh.
			for c.nodes["n1"].r.electionElapsed != 0 {
				c.nodes["n1"].Tick()
			}
			for range ticks - 1 {
				c.nodes["n1"].Tick()
			}
			if err := c.nodes["n1"].Step(tt.m(c.nodes["n1"].Status().Term)); err != nil {
				t.Fatal(err)
			}
			c.nodes["n1"].Tick()
			c.process()
			if st := c.nodes["n1"].Status(); st.Role != Leader {
				t.Errorf("leader stepped down although it heard from n2 (%s) in the window", tt.name)
			}
		})
	}
}

// slowShare is the share of responses (in tenths) that are slow.
var slowShare = 8

// slowResponses delays most responses by 200 ms to 2 s (reordering them),
// far beyond the election timeout of 100-200 ms, while requests travel fast.
func slowResponses(env sim.Env, m Message) time.Duration {
	switch m.Type {
	case MsgAppResp, MsgHeartbeatResp, MsgVoteResp, MsgPreVoteResp, MsgSnapResp, MsgReadIndexResp:
		if env.Rand().IntN(10) < slowShare {
			return 200*time.Millisecond + time.Duration(env.Rand().Int64N(int64(1800*time.Millisecond)))
		}
	}
	return 0
}

// TestSimSlowResponses runs a cluster whose responses are mostly (80%)
// slower than the election timeout (200 ms-2 s against 100-200 ms), with
// the check-quorum window set by the documented rule (worst response
// latency plus an election timeout): commits must progress steadily,
// second after second, with few leader changes.
func TestSimSlowResponses(t *testing.T) {
	window := func(cfg *Config) {
		cfg.CheckQuorumTicks = int(2*time.Second/simTick) + cfg.ElectionTicks
	}
	sim.Seeds(t, seedsFor(20), func(t *testing.T, seed int64) {
		c := newSimCluster(t, seed, 3, 3, sim.Faults{MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}, window, false)
		c.sendDelay = slowResponses
		maxCommit := func() uint64 {
			var m uint64
			for _, id := range c.ids {
				if s := c.server(id); s != nil {
					m = max(m, s.rn.r.log.committed)
				}
			}
			return m
		}
		// The first election may take a few tries (most votes arrive after
		// the candidate timed out); steady progress is required from the
		// first commit on.
		if !c.s.RunUntil(func() bool { return maxCommit() > 0 }, 10*time.Second) {
			c.fail("seed %d: nothing committed within 10s", seed)
		}
		prev := maxCommit()
		for window := range 10 {
			c.s.Run(time.Second)
			now := maxCommit()
			if now <= prev && !c.failed {
				c.fail("seed %d: no commit progress in window %d (commit index stuck at %d, %d terms so far)", seed, window, now, len(c.leaders))
			}
			prev = now
		}
		t.Logf("seed %d: commit index %d after %v, %d terms", seed, prev, c.s.Elapsed(), len(c.leaders))
		if len(c.leaders) > 2 && !c.failed {
			c.fail("seed %d: %d terms with a leader in %v: leaders keep stepping down", seed, len(c.leaders), c.s.Elapsed())
		}
	})
}
