package sim_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// gossip is a busy test protocol: every node sends a numbered message to a
// random peer every tick, appends what it receives to its disk and syncs
// every few messages. Everything it does depends on the Env, so two runs
// with the same seed must match.
type gossip struct {
	peers    []transport.NodeID
	tick     time.Duration
	sent     uint64
	received int
	last     map[transport.NodeID]uint64 // highest number seen from each peer
}

func (g *gossip) Start(env sim.Env) {
	env.SetTimer(g.tick, "tick")
}

func (g *gossip) Timer(env sim.Env, _ sim.TimerID, _ string) {
	to := g.peers[env.Rand().IntN(len(g.peers))]
	g.sent++
	env.Send(to, "gossip", binary.BigEndian.AppendUint64(nil, g.sent))
	env.SetTimer(g.tick, "tick")
}

func (g *gossip) Receive(env sim.Env, msg transport.Message) {
	if g.last == nil {
		g.last = map[transport.NodeID]uint64{}
	}
	g.last[msg.From] = max(g.last[msg.From], binary.BigEndian.Uint64(msg.Payload))
	g.received++
	_ = env.Disk().Append("log", msg.Payload)
	if g.received%4 == 0 {
		_ = env.Disk().Sync("log")
	}
}

var five = []transport.NodeID{"n1", "n2", "n3", "n4", "n5"}

// newCluster builds a five-node gossip cluster with faults.
func newCluster(t testing.TB, seed int64, f sim.Faults) (*sim.Sim, map[transport.NodeID]*gossip) {
	t.Helper()
	s, err := sim.New(sim.Config{Seed: seed, Faults: f, TornWrites: true})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	nodes := map[transport.NodeID]*gossip{}
	for _, id := range five {
		peers := slices.DeleteFunc(slices.Clone(five), func(p transport.NodeID) bool { return p == id })
		if err := s.AddNode(id, func() sim.Node {
			g := &gossip{peers: peers, tick: 10 * time.Millisecond}
			nodes[id] = g
			return g
		}); err != nil {
			t.Fatalf("AddNode(%s): %v", id, err)
		}
	}
	return s, nodes
}

var lossy = sim.Faults{Drop: 0.1, Duplicate: 0.05, MinDelay: time.Millisecond, MaxDelay: 30 * time.Millisecond, Reorder: 0.1}

// scenario runs a fixed script of faults over a cluster and returns the
// trace hash.
func scenario(t testing.TB, seed int64) uint64 {
	s, _ := newCluster(t, seed, lossy)
	s.At(time.Second, func() { s.Partition(five[:2], five[2:]) })
	s.At(2*time.Second, func() { s.Crash("n3") })
	s.At(3*time.Second, func() { s.Heal(); s.Restart("n3") })
	s.At(4*time.Second, func() { s.Cut("n1", "n2") })
	s.Run(5 * time.Second)
	if err := s.Err(); err != nil {
		t.Fatalf("Err() = %v; want nil", err)
	}
	return s.TraceHash()
}

func TestTraceHashDeterministic(t *testing.T) {
	sim.Seeds(t, 5, func(t *testing.T, seed int64) {
		first, second := scenario(t, seed), scenario(t, seed)
		if first != second {
			t.Fatalf("seed %d: trace hashes %x and %x differ; want equal", seed, first, second)
		}
		if other := scenario(t, seed+1000); other == first {
			t.Fatalf("seeds %d and %d: trace hash %x for both; want different", seed, seed+1000, first)
		}
	})
}

func TestSameTraceLines(t *testing.T) {
	run := func() []string {
		s, err := sim.New(sim.Config{Seed: 9, Faults: lossy, Trace: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range five[:3] {
			if err := s.AddNode(id, func() sim.Node { return &gossip{peers: five[:3], tick: 7 * time.Millisecond} }); err != nil {
				t.Fatal(err)
			}
		}
		s.Run(200 * time.Millisecond)
		return s.Trace()
	}
	a, b := run(), run()
	if !slices.Equal(a, b) {
		t.Fatalf("two runs with seed 9 gave different traces (%d and %d lines)", len(a), len(b))
	}
	if len(a) < 50 {
		t.Fatalf("trace has %d lines; want a busy run (>= 50)", len(a))
	}
}

// recorder is a node that remembers everything that happens to it.
type recorder struct {
	starts int
	got    []transport.Message
	fired  []string
}

func (r *recorder) Start(sim.Env)                               { r.starts++ }
func (r *recorder) Receive(_ sim.Env, m transport.Message)      { r.got = append(r.got, m) }
func (r *recorder) Timer(_ sim.Env, _ sim.TimerID, name string) { r.fired = append(r.fired, name) }
func (r *recorder) payloads() (out []string) {
	for _, m := range r.got {
		out = append(out, string(m.Payload))
	}
	return out
}

// pair builds a sim with nodes a and b that record what they get.
func pair(t *testing.T, cfg sim.Config) (*sim.Sim, *recorder, *recorder) {
	t.Helper()
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ra, rb := &recorder{}, &recorder{}
	if err := s.AddNode("a", func() sim.Node { ra = &recorder{starts: ra.starts}; return ra }); err != nil {
		t.Fatal(err)
	}
	if err := s.AddNode("b", func() sim.Node { rb = &recorder{starts: rb.starts}; return rb }); err != nil {
		t.Fatal(err)
	}
	return s, ra, rb
}

func send(s *sim.Sim, from, to transport.NodeID, payloads ...string) {
	s.Inject(from, func(env sim.Env) {
		for _, p := range payloads {
			env.Send(to, "test", []byte(p))
		}
	})
}

func TestZeroFaultsFIFO(t *testing.T) {
	s, _, _ := pair(t, sim.Config{Seed: 1})
	var want []string
	for i := range 100 {
		want = append(want, fmt.Sprint(i))
	}
	send(s, "a", "b", want...)
	s.Run(time.Millisecond)
	rb := s.Node("b").(*recorder)
	if got := rb.payloads(); !slices.Equal(got, want) {
		t.Fatalf("b received %v; want %v", got, want)
	}
}

func TestFaults(t *testing.T) {
	const n = 4000
	tests := []struct {
		name                       string
		faults                     sim.Faults
		minDelivered, maxDelivered int
		wantDropped, wantDuplicate bool
	}{
		{"perfect", sim.Faults{}, n, n, false, false},
		{"drop all", sim.Faults{Drop: 1}, 0, 0, true, false},
		{"drop 30%", sim.Faults{Drop: 0.3}, n * 6 / 10, n * 8 / 10, true, false},
		{"duplicate all", sim.Faults{Duplicate: 1}, 2 * n, 2 * n, false, true},
		{"duplicate 20%", sim.Faults{Duplicate: 0.2}, n * 11 / 10, n * 13 / 10, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, _ := pair(t, sim.Config{Seed: 3, Faults: tt.faults})
			payloads := make([]string, n)
			send(s, "a", "b", payloads...)
			s.Run(time.Second)
			st := s.Stats()
			got := len(s.Node("b").(*recorder).got)
			if got < tt.minDelivered || got > tt.maxDelivered {
				t.Errorf("delivered %d; want in [%d, %d]", got, tt.minDelivered, tt.maxDelivered)
			}
			if (st.Dropped > 0) != tt.wantDropped || (st.Duplicated > 0) != tt.wantDuplicate {
				t.Errorf("Stats() = %+v; want dropped>0 %v, duplicated>0 %v", st, tt.wantDropped, tt.wantDuplicate)
			}
			if ls := s.LinkStats("a", "b"); ls.Sent != n || ls.Delivered != uint64(got) || ls.Dropped != st.Dropped {
				t.Errorf("LinkStats(a, b) = %+v; want sent %d, delivered %d, dropped %d", ls, n, got, st.Dropped)
			}
		})
	}
}

func TestDelayBounds(t *testing.T) {
	s, _, _ := pair(t, sim.Config{Seed: 5, Faults: sim.Faults{MinDelay: 10 * time.Millisecond, MaxDelay: 20 * time.Millisecond}})
	var payloads []string
	for i := range 200 {
		payloads = append(payloads, fmt.Sprint(i))
	}
	send(s, "a", "b", payloads...)
	s.Run(10*time.Millisecond - 1)
	if got := len(s.Node("b").(*recorder).got); got != 0 {
		t.Fatalf("delivered %d before MinDelay; want 0", got)
	}
	s.Run(10 * time.Millisecond)
	rb := s.Node("b").(*recorder)
	if got := len(rb.got); got != 200 {
		t.Fatalf("delivered %d by MaxDelay; want 200", got)
	}
	if slices.Equal(rb.payloads(), payloads) {
		t.Fatalf("200 messages with 10ms of jitter arrived in order; want some reordering")
	}
}

func TestReorder(t *testing.T) {
	s, _, _ := pair(t, sim.Config{Seed: 5, Faults: sim.Faults{Reorder: 0.2, ReorderDelay: 5 * time.Millisecond}})
	var payloads []string
	for i := range 200 {
		payloads = append(payloads, fmt.Sprint(i))
	}
	send(s, "a", "b", payloads...)
	s.Run(5 * time.Millisecond)
	rb := s.Node("b").(*recorder)
	got := rb.payloads()
	if len(got) != 200 {
		t.Fatalf("delivered %d; want 200", len(got))
	}
	if slices.Equal(got, payloads) {
		t.Fatalf("messages arrived in order with Reorder 0.2; want some reordering")
	}
}

func TestPartitionsAndCuts(t *testing.T) {
	tests := []struct {
		name     string
		fault    func(s *sim.Sim)
		wantAtoB bool
		wantBtoA bool
	}{
		{"none", func(*sim.Sim) {}, true, true},
		{"partition", func(s *sim.Sim) { s.Partition([]transport.NodeID{"a"}, []transport.NodeID{"b"}) }, false, false},
		{"partition one named", func(s *sim.Sim) { s.Partition([]transport.NodeID{"a"}) }, false, false},
		{"same group", func(s *sim.Sim) { s.Partition([]transport.NodeID{"a", "b"}) }, true, true},
		{"cut a->b", func(s *sim.Sim) { s.Cut("a", "b") }, false, true},
		{"isolate b", func(s *sim.Sim) { s.Isolate("b") }, false, false},
		{"healed", func(s *sim.Sim) { s.Partition([]transport.NodeID{"a"}); s.Cut("b", "a"); s.Heal() }, true, true},
		{"link drop", func(s *sim.Sim) { s.SetLinkFaults("b", "a", sim.Faults{Drop: 1}) }, true, false},
		{"link reset", func(s *sim.Sim) { s.SetLinkFaults("b", "a", sim.Faults{Drop: 1}); s.ResetLinkFaults("b", "a") }, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, _ := pair(t, sim.Config{Seed: 1, Faults: sim.Faults{MaxDelay: time.Millisecond}})
			tt.fault(s)
			send(s, "a", "b", "x")
			send(s, "b", "a", "y")
			s.Run(time.Second)
			gotAtoB := len(s.Node("b").(*recorder).got) == 1
			gotBtoA := len(s.Node("a").(*recorder).got) == 1
			if gotAtoB != tt.wantAtoB || gotBtoA != tt.wantBtoA {
				t.Errorf("delivered a->b %v, b->a %v; want %v, %v", gotAtoB, gotBtoA, tt.wantAtoB, tt.wantBtoA)
			}
		})
	}
}

func TestPartitionDropsInFlight(t *testing.T) {
	s, _, _ := pair(t, sim.Config{Seed: 1, Faults: sim.Faults{MinDelay: 10 * time.Millisecond, MaxDelay: 10 * time.Millisecond}})
	send(s, "a", "b", "in flight")
	s.Run(5 * time.Millisecond)
	s.Partition([]transport.NodeID{"a"}, []transport.NodeID{"b"})
	s.Run(time.Second)
	if got := len(s.Node("b").(*recorder).got); got != 0 {
		t.Fatalf("b received %d messages sent before a partition; want 0", got)
	}
	if st := s.Stats(); st.Dropped != 1 {
		t.Fatalf("Stats().Dropped = %d; want 1", st.Dropped)
	}
}

// timerNode sets timers on Start and cancels some.
type timerNode struct{ fired []string }

func (n *timerNode) Start(env sim.Env) {
	env.SetTimer(30*time.Millisecond, "c")
	env.SetTimer(10*time.Millisecond, "a")
	env.SetTimer(10*time.Millisecond, "b") // same instant: fires after "a", in set order
	cancelled := env.SetTimer(20*time.Millisecond, "cancelled")
	env.CancelTimer(cancelled)
	env.CancelTimer(cancelled) // twice is harmless
	env.CancelTimer(12345)     // unknown is harmless
}
func (n *timerNode) Receive(sim.Env, transport.Message)          {}
func (n *timerNode) Timer(_ sim.Env, _ sim.TimerID, name string) { n.fired = append(n.fired, name) }

func TestTimers(t *testing.T) {
	s, err := sim.New(sim.Config{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	n := &timerNode{}
	if err := s.AddNode("a", func() sim.Node { return n }); err != nil {
		t.Fatal(err)
	}
	s.Run(25 * time.Millisecond)
	if want := []string{"a", "b"}; !slices.Equal(n.fired, want) {
		t.Fatalf("after 25ms fired %v; want %v", n.fired, want)
	}
	if got, want := s.Now().Sub(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)), 25*time.Millisecond; got != want {
		t.Fatalf("Now() is start+%v; want start+%v", got, want)
	}
	s.Run(time.Second)
	if want := []string{"a", "b", "c"}; !slices.Equal(n.fired, want) {
		t.Fatalf("fired %v; want %v", n.fired, want)
	}
	if st := s.Stats(); st.Timers != 3 {
		t.Fatalf("Stats().Timers = %d; want 3", st.Timers)
	}
	if s.Step() {
		t.Fatalf("Step() = true with nothing scheduled; want false")
	}
}

func TestCrashRestart(t *testing.T) {
	s, err := sim.New(sim.Config{Seed: 1, Faults: sim.Faults{MinDelay: 10 * time.Millisecond, MaxDelay: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	starts := 0
	if err := s.AddNode("a", func() sim.Node { return &recorder{} }); err != nil {
		t.Fatal(err)
	}
	if err := s.AddNode("b", func() sim.Node {
		starts++
		return &timerNode{}
	}); err != nil {
		t.Fatal(err)
	}
	var stale sim.Env
	s.Inject("b", func(env sim.Env) {
		stale = env
		env.Send("a", "test", []byte("from b before crash"))
	})
	send(s, "a", "b", "to b before crash")
	s.Run(5 * time.Millisecond)
	s.Crash("b")
	s.Crash("b") // twice is harmless
	if s.Node("b") != nil {
		t.Fatalf("Node(b) = %v while crashed; want nil", s.Node("b"))
	}
	injected := false
	s.Inject("b", func(sim.Env) { injected = true })
	stale.Send("a", "test", []byte("from a dead incarnation"))
	if id := stale.SetTimer(time.Millisecond, "zombie"); id != 0 {
		t.Fatalf("SetTimer through a crashed node's Env = %d; want 0", id)
	}
	s.Run(time.Second)
	if injected {
		t.Fatalf("Inject ran on a crashed node")
	}
	if got := s.Node("a").(*recorder).got; len(got) != 0 {
		t.Fatalf("a received %v; want nothing (sender crashed while in flight)", got)
	}
	if st := s.Stats(); st.Dropped != 2 || st.Timers != 0 {
		t.Fatalf("Stats() = %+v; want 2 dropped, 0 timers fired (crash cancels them)", st)
	}
	s.Restart("b")
	if starts != 2 {
		t.Fatalf("factory called %d times; want 2", starts)
	}
	s.Run(time.Second)
	if got := s.Node("b").(*timerNode).fired; !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("restarted node fired %v; want [a b c]", got)
	}
	s.Restart("b") // restarting a running node crashes it first
	if starts != 3 {
		t.Fatalf("factory called %d times; want 3", starts)
	}
}

func TestMisuseIsRecorded(t *testing.T) {
	s, err := sim.New(sim.Config{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	s.Crash("ghost")
	s.Restart("ghost")
	s.Inject("ghost", func(sim.Env) { t.Fatal("Inject ran for an unknown node") })
	s.SetFaults(sim.Faults{Drop: 2})
	s.At(0, func() { s.Run(time.Second) })
	s.Run(time.Millisecond)
	err = s.Err()
	if !errors.Is(err, sim.ErrReentrant) {
		t.Fatalf("Err() = %v; want ErrReentrant", err)
	}
	if !errors.Is(err, sim.ErrUnknownNode) {
		t.Fatalf("Err() = %v; want ErrUnknownNode", err)
	}
	if err := s.AddNode("a", func() sim.Node { return &recorder{} }); err != nil {
		t.Fatal(err)
	}
	addTests := []struct {
		name    string
		id      transport.NodeID
		factory func() sim.Node
		want    error
	}{
		{"duplicate", "a", func() sim.Node { return &recorder{} }, sim.ErrDuplicateNode},
		{"empty id", "", func() sim.Node { return &recorder{} }, sim.ErrInvalidConfig},
		{"nil factory", "c", nil, sim.ErrInvalidConfig},
	}
	for _, tt := range addTests {
		if err := s.AddNode(tt.id, tt.factory); !errors.Is(err, tt.want) {
			t.Errorf("%s: AddNode(%q) = %v; want %v", tt.name, tt.id, err, tt.want)
		}
	}
}

// TestBadArguments: nil functions, a Sim or Disk not made by New, and the
// Disk of an unknown node give errors, never a panic. Each case runs on a
// fresh Sim with node "a", so a recorded error comes from that case alone.
func TestBadArguments(t *testing.T) {
	var noDisk *sim.Disk
	tests := []struct {
		name string
		call func(s *sim.Sim) error
		want error
	}{
		{"At nil", func(s *sim.Sim) error { s.At(time.Second, nil); return s.Err() }, sim.ErrInvalidArgument},
		{"Inject nil", func(s *sim.Sim) error { s.Inject("a", nil); return s.Err() }, sim.ErrInvalidArgument},
		{"RunUntil nil", func(s *sim.Sim) error { s.RunUntil(nil, time.Second); return s.Err() }, sim.ErrInvalidArgument},
		{"zero Sim AddNode", func(*sim.Sim) error {
			var zero sim.Sim
			return zero.AddNode("a", func() sim.Node { return &recorder{} })
		}, sim.ErrInvalidConfig},
		{"Disk of unknown node", func(s *sim.Sim) error { return s.Disk("ghost").Append("f", nil) }, sim.ErrUnknownNode},
		{"nil Disk WriteFile", func(*sim.Sim) error { return noDisk.WriteFile("f", nil) }, sim.ErrUnknownNode},
		{"nil Disk ReadFile", func(*sim.Sim) error { _, err := noDisk.ReadFile("f"); return err }, sim.ErrUnknownNode},
		{"nil Disk Sync", func(*sim.Sim) error { return noDisk.Sync("f") }, sim.ErrUnknownNode},
		{"zero Disk Append", func(*sim.Sim) error { return new(sim.Disk).Append("f", []byte("x")) }, sim.ErrUnknownNode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := sim.New(sim.DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			if err := s.AddNode("a", func() sim.Node { return &recorder{} }); err != nil {
				t.Fatal(err)
			}
			if err := tt.call(s); !errors.Is(err, tt.want) {
				t.Errorf("%s = %v; want %v", tt.name, err, tt.want)
			}
		})
	}
	if got := noDisk.List(); got != nil {
		t.Errorf("nil Disk List() = %v; want nil", got)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		faults sim.Faults
		ok     bool
	}{
		{"zero", sim.Faults{}, true},
		{"default", sim.DefaultConfig().Faults, true},
		{"drop > 1", sim.Faults{Drop: 1.5}, false},
		{"negative duplicate", sim.Faults{Duplicate: -0.1}, false},
		{"reorder NaN", sim.Faults{Reorder: nan()}, false},
		{"negative delay", sim.Faults{MinDelay: -1}, false},
		{"min > max", sim.Faults{MinDelay: 2, MaxDelay: 1}, false},
		{"negative reorder delay", sim.Faults{ReorderDelay: -1}, false},
	}
	for _, tt := range tests {
		_, err := sim.New(sim.Config{Faults: tt.faults})
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, sim.ErrInvalidConfig)) {
			t.Errorf("%s: New(%+v) error = %v; want ok=%v (ErrInvalidConfig otherwise)", tt.name, tt.faults, err, tt.ok)
		}
	}
}

func nan() float64 { var z float64; return z / z }

func TestRunUntil(t *testing.T) {
	s, _ := newCluster(t, 1, sim.DefaultConfig().Faults)
	start := s.Now()
	if !s.RunUntil(func() bool { return s.Stats().Delivered >= 100 }, time.Hour) {
		t.Fatalf("RunUntil(100 delivered) = false; want true")
	}
	if el := s.Now().Sub(start); el >= time.Hour || el <= 0 {
		t.Fatalf("RunUntil took %v of virtual time; want between 0 and 1h", el)
	}
	if s.RunUntil(func() bool { return false }, time.Second) {
		t.Fatalf("RunUntil(false) = true; want false")
	}
}

func TestAtRunsInOrder(t *testing.T) {
	s, err := sim.New(sim.Config{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	s.At(2*time.Second, func() { got = append(got, 3) })
	s.At(time.Second, func() { got = append(got, 1) })
	s.At(time.Second, func() { got = append(got, 2); s.At(0, func() { got = append(got, 21) }) })
	s.Run(3 * time.Second)
	if want := []int{1, 2, 21, 3}; !slices.Equal(got, want) {
		t.Fatalf("actions ran in order %v; want %v", got, want)
	}
}

// TestHour runs an hour of virtual time of a busy five-node protocol (20
// messages per second per node, with faults, each received message appended
// to a disk log that syncs every fourth append). Nothing sleeps, so it takes
// a fraction of a second; it asserts on what happened, never on wall time.
// Under the race detector it simulates five minutes instead.
func TestHour(t *testing.T) {
	s, nodes := newCluster(t, 1, lossy)
	for _, g := range nodes {
		g.tick = 50 * time.Millisecond
	}
	span := time.Hour
	if raceEnabled {
		span = 5 * time.Minute
	}
	s.Run(span)
	st := s.Stats()
	if want := uint64(5 * span.Seconds() * 20); st.Sent != want {
		t.Fatalf("sent %d messages in %v of virtual time; want %d", st.Sent, span, want)
	}
	if got := uint64(nodes["n1"].received); got == 0 {
		t.Fatalf("n1 received nothing in %v", span)
	}
	size, err := s.Disk("n1").Size("log")
	if err != nil || size != int64(8*nodes["n1"].received) {
		t.Fatalf("n1's log is %d bytes (%v); want 8 per message received (%d)", size, err, nodes["n1"].received)
	}
}

func TestDisk(t *testing.T) {
	s, err := sim.New(sim.Config{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddNode("a", func() sim.Node { return &recorder{} }); err != nil {
		t.Fatal(err)
	}
	d := s.Disk("a")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(d.Append("log", []byte("one,")))
	must(d.Sync("log"))
	must(d.Append("log", []byte("two,")))
	must(d.WriteFile("meta", []byte("v1")))
	must(d.Sync("meta"))
	must(d.WriteFile("meta", []byte("v2")))
	must(d.Append("tmp", []byte("never synced")))
	must(d.WriteFile("gone", []byte("x")))
	must(d.Sync("gone"))
	must(d.Remove("gone"))
	if got, _ := d.ReadFile("log"); string(got) != "one,two," {
		t.Fatalf("ReadFile(log) before crash = %q; want %q", got, "one,two,")
	}

	s.Crash("a")
	reads := []struct {
		file, want string
	}{{"log", "one,"}, {"meta", "v1"}}
	for _, r := range reads {
		if got, err := d.ReadFile(r.file); err != nil || string(got) != r.want {
			t.Errorf("after crash ReadFile(%s) = %q, %v; want %q", r.file, got, err, r.want)
		}
	}
	if got, want := d.List(), []string{"log", "meta"}; !slices.Equal(got, want) {
		t.Errorf("after crash List() = %v; want %v", got, want)
	}
	if _, err := d.ReadFile("tmp"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile(tmp) after crash error = %v; want fs.ErrNotExist", err)
	}

	must(d.Truncate("log", 2))
	must(d.Append("log", []byte("!")))
	if got, _ := d.ReadFile("log"); string(got) != "on!" {
		t.Errorf("after Truncate(2)+Append ReadFile = %q; want %q", got, "on!")
	}
	s.Restart("a")
	s.Crash("a")
	if got, _ := d.ReadFile("log"); string(got) != "one," {
		t.Errorf("unsynced truncate survived a crash: ReadFile = %q; want %q", got, "one,")
	}
	must(d.Truncate("log", 6))
	if got, _ := d.ReadFile("log"); !bytes.Equal(got, []byte("one,\x00\x00")) {
		t.Errorf("Truncate(6) = %q; want zero-extended", got)
	}

	errTests := []struct {
		name string
		err  error
		want error
	}{
		{"read missing", func() error { _, err := d.ReadFile("nope"); return err }(), fs.ErrNotExist},
		{"sync missing", d.Sync("nope"), fs.ErrNotExist},
		{"remove missing", d.Remove("nope"), fs.ErrNotExist},
		{"truncate missing", d.Truncate("nope", 0), fs.ErrNotExist},
		{"truncate negative", d.Truncate("log", -1), fs.ErrInvalid},
		{"empty name", d.Append("", nil), fs.ErrInvalid},
	}
	for _, tt := range errTests {
		if !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: error = %v; want %v", tt.name, tt.err, tt.want)
		}
	}
}

// TestTornWrites checks that with TornWrites a crash keeps the synced data
// plus a strict prefix of the unsynced tail, and that the tear point varies
// with the seed.
func TestTornWrites(t *testing.T) {
	kept := map[int]bool{}
	for seed := int64(1); seed <= 40; seed++ {
		s, err := sim.New(sim.Config{Seed: seed, TornWrites: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AddNode("a", func() sim.Node { return &recorder{} }); err != nil {
			t.Fatal(err)
		}
		d := s.Disk("a")
		_ = d.Append("wal", []byte("synced|"))
		_ = d.Sync("wal")
		_ = d.Append("wal", []byte("unsynced record"))
		s.Crash("a")
		got, err := d.ReadFile("wal")
		if err != nil {
			t.Fatalf("seed %d: ReadFile: %v", seed, err)
		}
		full := "synced|unsynced record"
		if len(got) < len("synced|") || len(got) >= len(full) || string(got) != full[:len(got)] {
			t.Fatalf("seed %d: after torn crash file = %q; want synced data plus a strict prefix of %q", seed, got, "unsynced record")
		}
		kept[len(got)] = true
	}
	if len(kept) < 5 {
		t.Fatalf("40 seeds tore at only %d distinct points; want the tear point to vary", len(kept))
	}
}

func TestSeedsRunsEachSeed(t *testing.T) {
	t.Setenv(sim.EnvSeed, "")
	t.Setenv(sim.EnvSoak, "")
	var seen []int64
	sim.Seeds(t, 4, func(t *testing.T, seed int64) { seen = append(seen, seed) })
	if want := []int64{1, 2, 3, 4}; !slices.Equal(seen, want) {
		t.Fatalf("Seeds ran %v; want %v", seen, want)
	}
	t.Setenv(sim.EnvSeed, "77")
	seen = nil
	sim.Seeds(t, 4, func(t *testing.T, seed int64) { seen = append(seen, seed) })
	if want := []int64{77}; !slices.Equal(seen, want) {
		t.Fatalf("Seeds with %s=77 ran %v; want %v", sim.EnvSeed, seen, want)
	}
}
