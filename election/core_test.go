package election

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/distkit/distkit/transport"
	"pgregory.net/rapid"
)

var t0 = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// testConfig is node id of {n1, n2, n3} (priorities 1, 2, 3) with a long
// heartbeat, so the detector declares no one Failed during a scripted test.
func testConfig(id transport.NodeID) Config {
	cfg := DefaultConfig()
	cfg.ID, cfg.Members = id, MembersByOrder("n1", "n2", "n3")
	cfg.Detector.HeartbeatInterval = time.Hour
	cfg.Detector.ProbeTimeout = time.Hour
	cfg.Detector.CheckInterval = time.Hour
	return cfg
}

// sent returns the election messages in rd (heartbeats left out) as
// "to KIND" descriptions.
func sent(rd Ready) []string {
	var out []string
	for _, e := range rd.Messages {
		if d := DescribeMessage(e.Payload); d != "HEARTBEAT" {
			out = append(out, string(e.To)+" "+d)
		}
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func wire(kind msgKind, view Leader) []byte { return (&message{kind: kind, view: view}).encode() }

func mustReceive(t *testing.T, c Core, now time.Time, from transport.NodeID, payload []byte) {
	t.Helper()
	if err := c.Receive(now, from, payload); err != nil {
		t.Fatalf("Receive from %s: %v", from, err)
	}
}

// TestBullyRestartsWhenCoordinatorNeverComes: a candidate that got an OK
// and then waits CoordinatorTimeout without a COORDINATOR starts over
// (the higher node may have crashed after answering).
func TestBullyRestartsWhenCoordinatorNeverComes(t *testing.T) {
	cfg := testConfig("n2")
	c, err := NewBullyCore(cfg, State{}, 1, t0)
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(cfg.BootDelay)
	c.Tick(now)
	if got, want := sent(c.Ready()), []string{"n3 ELECTION"}; !equal(got, want) {
		t.Fatalf("after boot sent %q; want %q", got, want)
	}
	mustReceive(t, c, now.Add(time.Millisecond), "n3", wire(kindOK, Leader{}))
	now = now.Add(time.Millisecond + cfg.CoordinatorTimeout - 1)
	c.Tick(now)
	if got := sent(c.Ready()); len(got) != 0 {
		t.Fatalf("before CoordinatorTimeout sent %q; want nothing", got)
	}
	if next := c.NextTick(); next.After(now.Add(1)) {
		t.Fatalf("NextTick() = %v; want by the coordinator deadline %v", next, now.Add(1))
	}
	c.Tick(now.Add(1))
	if got, want := sent(c.Ready()), []string{"n3 ELECTION"}; !equal(got, want) {
		t.Fatalf("after CoordinatorTimeout sent %q; want %q (a new election)", got, want)
	}
	if st := c.Stats(); st.Restarts != 1 || st.Elections != 2 {
		t.Errorf("Stats() = %+v; want 1 restart of 2 elections", st)
	}
	// No OK this time: n2 wins after ElectionTimeout and tells everyone.
	c.Tick(now.Add(1 + cfg.ElectionTimeout))
	if got, want := sent(c.Ready()), []string{"n1 COORDINATOR n2@1", "n3 COORDINATOR n2@1"}; !equal(got, want) {
		t.Fatalf("after ElectionTimeout sent %q; want %q", got, want)
	}
}

func TestBullyViews(t *testing.T) {
	tests := []struct {
		name     string
		self     transport.NodeID
		from     []transport.NodeID
		msgs     [][]byte
		wantView Leader
		wantSent []string
	}{
		{
			name:     "late coordinator from an older epoch is ignored",
			self:     "n1",
			from:     []transport.NodeID{"n3", "n2"},
			msgs:     [][]byte{wire(kindCoordinator, Leader{ID: "n3", Epoch: 5}), wire(kindCoordinator, Leader{ID: "n2", Epoch: 4})},
			wantView: Leader{ID: "n3", Epoch: 5},
		},
		{
			name:     "duplicate coordinator changes nothing",
			self:     "n1",
			from:     []transport.NodeID{"n3", "n3"},
			msgs:     [][]byte{wire(kindCoordinator, Leader{ID: "n3", Epoch: 5}), wire(kindCoordinator, Leader{ID: "n3", Epoch: 5})},
			wantView: Leader{ID: "n3", Epoch: 5},
		},
		{
			name:     "same epoch, higher priority wins",
			self:     "n1",
			from:     []transport.NodeID{"n2", "n3"},
			msgs:     [][]byte{wire(kindCoordinator, Leader{ID: "n2", Epoch: 5}), wire(kindCoordinator, Leader{ID: "n3", Epoch: 5})},
			wantView: Leader{ID: "n3", Epoch: 5},
		},
		{
			name:     "resignation outranks its own epoch's leader",
			self:     "n1",
			from:     []transport.NodeID{"n2", "n2"},
			msgs:     [][]byte{wire(kindCoordinator, Leader{ID: "n2", Epoch: 5}), wire(kindCoordinator, Leader{Epoch: 5})},
			wantView: Leader{Epoch: 5},
			// n1 now has no leader: it asks the nodes above it.
			wantSent: []string{"n2 ELECTION", "n3 ELECTION"},
		},
		{
			name:     "heartbeat gossip carries the view",
			self:     "n1",
			from:     []transport.NodeID{"n2"},
			msgs:     [][]byte{(&message{kind: kindHeartbeat, view: Leader{ID: "n3", Epoch: 9}, inner: nil}).encode()},
			wantView: Leader{ID: "n3", Epoch: 9},
		},
		{
			name:     "a higher node bullies a lower coordinator",
			self:     "n3",
			from:     []transport.NodeID{"n2"},
			msgs:     [][]byte{wire(kindCoordinator, Leader{ID: "n2", Epoch: 4})},
			wantView: Leader{ID: "n3", Epoch: 5},
			wantSent: []string{"n1 COORDINATOR n3@5", "n2 COORDINATOR n3@5"},
		},
		{
			// Garcia-Molina §3: only a higher node answers; n2 is
			// already asking n3 (it did at boot) and stays silent.
			name: "election from above is not answered",
			self: "n2",
			from: []transport.NodeID{"n3"},
			msgs: [][]byte{wire(kindElection, Leader{})},
		},
		{
			name:     "election from below is answered",
			self:     "n2",
			from:     []transport.NodeID{"n3", "n1"},
			msgs:     [][]byte{wire(kindCoordinator, Leader{ID: "n3", Epoch: 2}), wire(kindElection, Leader{})},
			wantView: Leader{ID: "n3", Epoch: 2},
			wantSent: []string{"n1 OK"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(tt.self)
			c, err := NewBullyCore(cfg, State{}, 1, t0)
			if err != nil {
				t.Fatal(err)
			}
			now := t0.Add(cfg.BootDelay)
			c.Tick(now)
			for i, m := range tt.msgs {
				c.Ready() // only the reaction to the last message counts
				mustReceive(t, c, now, tt.from[i], m)
			}
			if got := sent(c.Ready()); !equal(got, tt.wantSent) {
				t.Errorf("sent %q; want %q", got, tt.wantSent)
			}
			if got := c.Leader(); got != tt.wantView {
				t.Errorf("Leader() = %+v; want %+v", got, tt.wantView)
			}
		})
	}
}

func TestResignAnnouncesNoLeader(t *testing.T) {
	cfg := testConfig("n3")
	c, err := NewBullyCore(cfg, State{}, 1, t0)
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(cfg.BootDelay)
	c.Tick(now)
	c.Ready()
	if got := c.Leader(); got != (Leader{ID: "n3", Epoch: 1}) {
		t.Fatalf("Leader() = %+v; want n3@1", got)
	}
	c.SetCandidate(now, false)
	if got, want := sent(c.Ready()), []string{"n1 COORDINATOR none@1", "n2 COORDINATOR none@1"}; !equal(got, want) {
		t.Fatalf("Resign sent %q; want %q", got, want)
	}
	// A non-candidate answers no ELECTION.
	mustReceive(t, c, now, "n1", wire(kindElection, Leader{Epoch: 1}))
	if got := sent(c.Ready()); len(got) != 0 {
		t.Errorf("non-candidate answered ELECTION with %q", got)
	}
}

func TestReceiveRejects(t *testing.T) {
	tests := []struct {
		name    string
		from    transport.NodeID
		payload []byte
		want    error
	}{
		{"non-member sender", "x", wire(kindOK, Leader{}), ErrUnknownMember},
		{"self as sender", "n1", wire(kindOK, Leader{}), ErrUnknownMember},
		{"garbage", "n2", []byte{0xff, 1}, ErrMalformed},
		{"view names a non-member", "n2", wire(kindCoordinator, Leader{ID: "x", Epoch: 9}), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, build := range []func(Config, uint64, time.Time) (Core, error){
				func(c Config, s uint64, n time.Time) (Core, error) { return NewBullyCore(c, State{}, s, n) },
				func(c Config, s uint64, n time.Time) (Core, error) { return NewRingCore(c, State{}, s, n) },
			} {
				c, err := build(testConfig("n1"), 1, t0)
				if err != nil {
					t.Fatal(err)
				}
				if err := c.Receive(t0, tt.from, tt.payload); !errors.Is(err, tt.want) {
					t.Errorf("Receive() error = %v; want %v", err, tt.want)
				}
				if got := c.Ready().Leader; got != (Leader{}) {
					t.Errorf("view changed to %+v by a rejected message", got)
				}
			}
		})
	}
}

func token(round uint64, cand transport.NodeID) []byte {
	return (&message{kind: kindRingElection, round: round, candidate: cand}).encode()
}

func TestRingTokenRules(t *testing.T) {
	tests := []struct {
		name     string
		self     transport.NodeID
		from     []transport.NodeID
		msgs     [][]byte
		wantSent []string
		wantView Leader
	}{
		{"forwards a higher candidate", "n1", []transport.NodeID{"n3"}, [][]byte{token(1, "n3")},
			[]string{"n2 RING-ELECTION round 1 best n3"}, Leader{}},
		{"puts itself on a lower candidate", "n2", []transport.NodeID{"n1"}, [][]byte{token(1, "n1")},
			[]string{"n3 RING-ELECTION round 1 best n2"}, Leader{}},
		{"swallows what brings nothing new", "n2", []transport.NodeID{"n1", "n1"}, [][]byte{token(1, "n1"), token(1, "n1")},
			nil, Leader{}},
		{"wins when its own candidacy returns", "n3", []transport.NodeID{"n1", "n2"}, [][]byte{token(1, "n1"), token(1, "n3")},
			[]string{"n1 RING-ELECTED n3@1"}, Leader{ID: "n3", Epoch: 1}},
		{"drops a decided round", "n1", []transport.NodeID{"n3", "n3"},
			[][]byte{wire(kindRingElected, Leader{ID: "n3", Epoch: 2}), token(2, "n3")}, nil, Leader{ID: "n3", Epoch: 2}},
		{"passes ELECTED on once", "n1", []transport.NodeID{"n3", "n3"},
			[][]byte{wire(kindRingElected, Leader{ID: "n3", Epoch: 2}), wire(kindRingElected, Leader{ID: "n3", Epoch: 2})}, nil, Leader{ID: "n3", Epoch: 2}},
		{"ELECTED goes round", "n1", []transport.NodeID{"n3"},
			[][]byte{wire(kindRingElected, Leader{ID: "n3", Epoch: 2})}, []string{"n2 RING-ELECTED n3@2"}, Leader{ID: "n3", Epoch: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(tt.self)
			cfg.BootDelay = time.Hour // no campaign of its own
			c, err := NewRingCore(cfg, State{}, 1, t0)
			if err != nil {
				t.Fatal(err)
			}
			for i, m := range tt.msgs {
				c.Ready()
				mustReceive(t, c, t0, tt.from[i], m)
			}
			if got := sent(c.Ready()); !equal(got, tt.wantSent) {
				t.Errorf("sent %q; want %q", got, tt.wantSent)
			}
			if got := c.Leader(); got != tt.wantView {
				t.Errorf("Leader() = %+v; want %+v", got, tt.wantView)
			}
		})
	}
}

// TestViewOrderIsTotal checks better against its definition: a strict
// total order on views, so pairwise merging converges to the maximum
// whatever the order messages arrive in.
func TestViewOrderIsTotal(t *testing.T) {
	c, err := NewBullyCore(testConfig("n1"), State{}, 1, t0)
	if err != nil {
		t.Fatal(err)
	}
	type view struct {
		l       Leader
		unknown bool
	}
	// ids are the leaders a view can name; "?" is "not known yet".
	ids := []transport.NodeID{"?", "", "n1", "n2", "n3"}
	// rank is the reference: epoch, then "no leader" (resigned), then the
	// leaders by priority, then "not known".
	rank := func(v view) uint64 {
		r := map[transport.NodeID]uint64{"n1": 1, "n2": 2, "n3": 3, "": 4}[v.l.ID]
		if v.unknown {
			r = 0
		}
		return v.l.Epoch*8 + r
	}
	gen := rapid.Custom(func(t *rapid.T) view {
		id := rapid.SampledFrom(ids).Draw(t, "id")
		epoch := rapid.Uint64Range(0, 5).Draw(t, "epoch")
		if id == "?" {
			return view{l: Leader{Epoch: epoch}, unknown: true}
		}
		return view{l: Leader{ID: id, Epoch: epoch}}
	})
	better := func(a, b view) bool { return c.better(a.l, a.unknown, b.l, b.unknown) }
	rapid.Check(t, func(t *rapid.T) {
		vs := rapid.SliceOfN(gen, 1, 8).Draw(t, "views")
		merged := vs[0]
		best := vs[0]
		for _, v := range vs[1:] {
			if better(v, merged) {
				merged = v
			}
			if rank(v) > rank(best) {
				best = v
			}
			if better(v, vs[0]) != (rank(v) > rank(vs[0])) {
				t.Fatalf("better(%+v, %+v) = %v; reference says %v", v, vs[0], better(v, vs[0]), rank(v) > rank(vs[0]))
			}
		}
		if merged != best {
			t.Fatalf("merge of %+v = %+v; want %+v", vs, merged, best)
		}
	})
}

// TestPersistBeforeSend drives three cores through random deliveries,
// losses, ticks, candidacy changes and crashes (a crash rebuilds the core
// from the last State its driver saved), and checks the durability
// contract against a dumb reference, the saved epoch: no message carries
// an epoch (view or ring round) above what is saved once its Ready has
// been persisted, no reported view is above it either, and a node's
// reported epoch never goes back, across crashes too.
func TestPersistBeforeSend(t *testing.T) {
	kinds := []struct {
		name  string
		build func(Config, State, uint64, time.Time) (Core, error)
	}{
		{"bully", func(c Config, st State, s uint64, n time.Time) (Core, error) { return NewBullyCore(c, st, s, n) }},
		{"ring", func(c Config, st State, s uint64, n time.Time) (Core, error) { return NewRingCore(c, st, s, n) }},
	}
	ids := []transport.NodeID{"n1", "n2", "n3"}
	for _, k := range kinds {
		for seed := uint64(1); seed <= 20; seed++ {
			rng := rand.New(rand.NewPCG(seed, 3))
			now := t0
			cores := map[transport.NodeID]Core{}
			saved := map[transport.NodeID]uint64{}    // the reference disk
			reported := map[transport.NodeID]uint64{} // highest epoch reported
			type inflight struct {
				from, to transport.NodeID
				payload  []byte
			}
			var net []inflight
			boot := func(id transport.NodeID) {
				cfg := DefaultConfig()
				cfg.ID, cfg.Members = id, MembersByOrder(ids...)
				c, err := k.build(cfg, State{Epoch: saved[id]}, rng.Uint64(), now)
				if err != nil {
					t.Fatal(err)
				}
				cores[id] = c
			}
			drain := func(id transport.NodeID) {
				rd := cores[id].Ready()
				if rd.State.Epoch != 0 {
					if rd.State.Epoch < saved[id] {
						t.Fatalf("%s seed %d: %s asked to save epoch %d below the saved %d", k.name, seed, id, rd.State.Epoch, saved[id])
					}
					saved[id] = rd.State.Epoch
				}
				for _, m := range rd.Messages {
					msg, err := decode(m.Payload)
					if err != nil {
						t.Fatalf("%s seed %d: %s sent an undecodable message: %v", k.name, seed, id, err)
					}
					if e := max(msg.view.Epoch, msg.round); e > saved[id] {
						t.Fatalf("%s seed %d: %s sends %s with epoch %d; saved only %d", k.name, seed, id, msg.kind, e, saved[id])
					}
					net = append(net, inflight{id, m.To, m.Payload})
				}
				if e := rd.Leader.Epoch; e > saved[id] || e < reported[id] {
					t.Fatalf("%s seed %d: %s reports epoch %d; saved %d, reported before %d", k.name, seed, id, e, saved[id], reported[id])
				}
				reported[id] = rd.Leader.Epoch
			}
			for _, id := range ids {
				boot(id)
				drain(id)
			}
			for step := 0; step < 400; step++ {
				now = now.Add(time.Duration(rng.IntN(30)) * time.Millisecond)
				id := ids[rng.IntN(len(ids))]
				switch r := rng.IntN(20); {
				case r < 12 && len(net) > 0:
					i := rng.IntN(len(net))
					m := net[i]
					net = append(net[:i], net[i+1:]...)
					if rng.IntN(10) > 0 { // else lost
						_ = cores[m.to].Receive(now, m.from, m.payload)
						id = m.to
					}
				case r < 17:
					cores[id].Tick(now)
				case r < 19:
					cores[id].SetCandidate(now, rng.IntN(3) > 0)
				default:
					boot(id) // a crash: only the saved epoch survives
				}
				drain(id)
			}
		}
	}
}

// TestPriorityNotIDOrder: Members' priorities, not how node IDs compare as
// strings, decide who outranks whom. Here the priority order (c < b < a)
// is the reverse of the string order.
func TestPriorityNotIDOrder(t *testing.T) {
	members := []Member{{ID: "c", Priority: 1}, {ID: "b", Priority: 2}, {ID: "a", Priority: 3}}
	config := func() Config {
		cfg := testConfig("b")
		cfg.Members = members
		return cfg
	}
	t.Run("bully defers to a higher coordinator", func(t *testing.T) {
		cfg := config()
		c, err := NewBullyCore(cfg, State{}, 1, t0)
		if err != nil {
			t.Fatal(err)
		}
		now := t0.Add(cfg.BootDelay)
		mustReceive(t, c, t0, "a", wire(kindCoordinator, Leader{ID: "a", Epoch: 1}))
		c.Tick(now)
		if got := sent(c.Ready()); len(got) != 0 {
			t.Errorf("b (priority 2) under coordinator a (priority 3) sent %q; want nothing", got)
		}
		if got, want := c.Leader(), (Leader{ID: "a", Epoch: 1}); got != want {
			t.Errorf("Leader() = %+v; want %+v", got, want)
		}
	})
	t.Run("ring forwards the higher candidate", func(t *testing.T) {
		cfg := config()
		cfg.BootDelay = time.Hour // no campaign of its own
		c, err := NewRingCore(cfg, State{}, 1, t0)
		if err != nil {
			t.Fatal(err)
		}
		mustReceive(t, c, t0, "c", token(1, "a"))
		if got, want := sent(c.Ready()), []string{"a RING-ELECTION round 1 best a"}; !equal(got, want) {
			t.Errorf("b passed on %q; want %q (a has the higher priority)", got, want)
		}
	})
}

// TestRingNonCandidateNotOnToken: a Ring node that does not stand for
// election forwards the token's candidate, never itself, even when it
// has the higher priority.
func TestRingNonCandidateNotOnToken(t *testing.T) {
	cfg := testConfig("n2")
	cfg.BootDelay = time.Hour
	c, err := NewRingCore(cfg, State{}, 1, t0)
	if err != nil {
		t.Fatal(err)
	}
	c.SetCandidate(t0, false)
	c.Ready()
	mustReceive(t, c, t0, "n1", token(1, "n1"))
	if got, want := sent(c.Ready()), []string{"n3 RING-ELECTION round 1 best n1"}; !equal(got, want) {
		t.Errorf("non-candidate n2 passed on %q; want %q", got, want)
	}
}

// TestRingRetriesInNewerRound: a Ring round whose token is lost times out
// after RingTimeout and the node starts a newer round; the node that had
// already forwarded the old round takes part in the new one instead of
// swallowing it as a round it has seen.
func TestRingRetriesInNewerRound(t *testing.T) {
	cfg := testConfig("n1")
	cfg.BootDelay = 0
	c, err := NewRingCore(cfg, State{}, 1, t0)
	if err != nil {
		t.Fatal(err)
	}
	c.Tick(t0)
	first := c.Ready()
	if got, want := sent(first), []string{"n2 RING-ELECTION round 1 best n1"}; !equal(got, want) {
		t.Fatalf("after boot sent %q; want %q", got, want)
	}
	// n2 forwards round 1 (its token is then lost on the way to n3).
	cfg2 := testConfig("n2")
	cfg2.BootDelay = time.Hour
	n2, err := NewRingCore(cfg2, State{}, 1, t0)
	if err != nil {
		t.Fatal(err)
	}
	mustReceive(t, n2, t0, "n1", first.Messages[0].Payload)
	n2.Ready()
	// Nothing comes back to n1 within RingTimeout: it tries again.
	now := t0.Add(cfg.RingTimeout)
	c.Tick(now)
	retry := c.Ready()
	if got, want := sent(retry), []string{"n2 RING-ELECTION round 2 best n1"}; !equal(got, want) {
		t.Fatalf("after RingTimeout sent %q; want %q (a newer round)", got, want)
	}
	mustReceive(t, n2, now, "n1", retry.Messages[0].Payload)
	if got, want := sent(n2.Ready()), []string{"n3 RING-ELECTION round 2 best n2"}; !equal(got, want) {
		t.Errorf("n2 passed on %q for the retry; want %q", got, want)
	}
}

// TestSilentLeaderSuspectedAgain: the detector's Failed verdict is an
// edge. A leader it holds Failed that answers once (an OK, which the
// detector does not see, clears the suspicion) and then falls silent for
// good raises no second verdict: the core must suspect it again after a
// detection period of silence, and elect a new leader.
func TestSilentLeaderSuspectedAgain(t *testing.T) {
	cfg := testConfig("n2")
	cfg.BootDelay = 0
	cfg.Detector.HeartbeatInterval = 20 * time.Millisecond
	cfg.Detector.ProbeTimeout = 20 * time.Millisecond
	cfg.Detector.CheckInterval = 5 * time.Millisecond
	c, err := NewBullyCore(cfg, State{}, 1, t0)
	if err != nil {
		t.Fatal(err)
	}
	mustReceive(t, c, t0, "n3", wire(kindCoordinator, Leader{ID: "n3", Epoch: 1}))
	c.Ready()
	now := t0
	step := func() []string {
		now = now.Add(5 * time.Millisecond)
		c.Tick(now)
		return sent(c.Ready())
	}
	// n3 (and n1) fall silent: the detector declares n3 Failed and n2
	// asks n3 whether it is alive.
	asked := false
	for i := 0; i < 400 && !asked; i++ {
		asked = equal(step(), []string{"n3 ELECTION"})
	}
	if !asked {
		t.Fatalf("n2 never suspected the silent leader n3; Leader() = %+v", c.Leader())
	}
	// n3 answers OK (it still leads in epoch 1), then is silent for good.
	mustReceive(t, c, now, "n3", wire(kindOK, Leader{ID: "n3", Epoch: 1}))
	c.Ready()
	for i := 0; i < 400 && c.Leader().ID != "n2"; i++ {
		step()
	}
	if got := c.Leader(); got.ID != "n2" || got.Epoch <= 1 {
		t.Fatalf("2 s after the leader's last word, Leader() = %+v; want n2 leading above epoch 1", got)
	}
}
