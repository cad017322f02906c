package sim_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
)

// pingPong answers every message at once: with zero latency virtual time
// stands still and the simulation would never end without a budget.
type pingPong struct{ peer transport.NodeID }

func (p *pingPong) Start(env sim.Env) {
	if env.ID() == "b" { // added second, so a is there to answer
		env.Send(p.peer, "p", nil)
	}
}
func (p *pingPong) Receive(env sim.Env, _ transport.Message) { env.Send(p.peer, "p", nil) }
func (p *pingPong) Timer(sim.Env, sim.TimerID, string)       {}

// nanoTimer re-arms a 1 ns timer forever: time moves, but too slowly to
// reach the end of a run.
type nanoTimer struct{ every time.Duration }

func (n nanoTimer) Start(env sim.Env)                          { env.SetTimer(max(n.every, 1), "t") }
func (nanoTimer) Receive(sim.Env, transport.Message)           {}
func (n nanoTimer) Timer(env sim.Env, _ sim.TimerID, _ string) { env.SetTimer(max(n.every, 1), "t") }

func TestBudgetStopsBusyLoops(t *testing.T) {
	tests := []struct {
		name  string
		cfg   sim.Config
		nodes map[transport.NodeID]sim.Node
		want  string
	}{
		{"ping-pong at one instant", sim.Config{Seed: 3, MaxEvents: 1000},
			map[transport.NodeID]sim.Node{"a": &pingPong{"b"}, "b": &pingPong{"a"}}, "1000 events"},
		{"time stands still", sim.Config{Seed: 6, MaxEventsPerInstant: 500},
			map[transport.NodeID]sim.Node{"a": &pingPong{"b"}, "b": &pingPong{"a"}}, "500 events at one instant"},
		{"nanosecond timer", sim.Config{Seed: 4, MaxEvents: 5000},
			map[transport.NodeID]sim.Node{"a": nanoTimer{}}, "5000 events"},
		{"time budget", sim.Config{Seed: 5, MaxTime: time.Second},
			map[transport.NodeID]sim.Node{"a": nanoTimer{time.Millisecond}}, "1s of virtual time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := sim.New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range []transport.NodeID{"a", "b"} {
				if n, ok := tt.nodes[id]; ok {
					s.AddNode(id, func() sim.Node { return n })
				}
			}
			s.Run(time.Hour)
			err = s.Err()
			if !errors.Is(err, sim.ErrBudget) || !s.Stopped() {
				t.Fatalf("Err() = %v, Stopped() = %v; want ErrBudget", err, s.Stopped())
			}
			seed := fmt.Sprintf("seed %d", tt.cfg.Seed)
			if msg := err.Error(); !strings.Contains(msg, seed) || !strings.Contains(msg, tt.want) || !strings.Contains(msg, "step") {
				t.Errorf("Err() = %q; want the seed (%s), the budget (%s) and the step", msg, seed, tt.want)
			}
			events := s.Stats().Events
			s.Run(time.Hour)
			if s.Step() || s.RunUntil(func() bool { return false }, time.Hour) || s.Stats().Events != events {
				t.Errorf("the simulation went on after its budget was spent")
			}
		})
	}
}

func TestDefaultBudgetAndNoLimit(t *testing.T) {
	s, _ := sim.New(sim.Config{MaxEvents: -1, MaxEventsPerInstant: -1})
	s.AddNode("a", func() sim.Node { return nanoTimer{} })
	s.Run(20 * time.Microsecond) // 20,000 events at 1 ns apart
	if err := s.Err(); err != nil {
		t.Fatalf("MaxEvents -1: %v", err)
	}
	if got := s.Stats().Events; got < 20_000 {
		t.Fatalf("ran %d events; want 20000", got)
	}
	if sim.DefaultMaxEvents < 1_000_000 {
		t.Errorf("DefaultMaxEvents = %d; too small for a real test", sim.DefaultMaxEvents)
	}
}

// clockReader records what its clock read at start and when its timer fired.
type clockReader struct {
	start, fired time.Time
	firedAt      time.Duration // virtual time since the start
	s            *sim.Sim
}

func (c *clockReader) Start(env sim.Env) {
	c.start = env.Now()
	env.SetTimer(time.Second, "t")
}
func (c *clockReader) Receive(sim.Env, transport.Message) {}
func (c *clockReader) Timer(env sim.Env, _ sim.TimerID, _ string) {
	c.fired, c.firedAt = env.Now(), c.s.Elapsed()
}

func TestClocks(t *testing.T) {
	tests := []struct {
		name        string
		clock       sim.Clock
		startOffset time.Duration // local − virtual at the start
		firedAfter  time.Duration // virtual time until the 1 s local timer fires
	}{
		{"virtual", sim.Clock{}, 0, time.Second},
		{"ahead", sim.Clock{Offset: 5 * time.Second}, 5 * time.Second, time.Second},
		{"behind", sim.Clock{Offset: -time.Hour}, -time.Hour, time.Second},
		{"fast", sim.Clock{Drift: 0.25}, 0, 800 * time.Millisecond},
		{"slow", sim.Clock{Drift: -0.2}, 0, 1250 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := sim.New(sim.Config{Clocks: map[transport.NodeID]sim.Clock{"a": tt.clock}})
			if err != nil {
				t.Fatal(err)
			}
			c := &clockReader{s: s}
			s.AddNode("a", func() sim.Node { return c })
			s.AddNode("b", func() sim.Node { return &clockReader{s: s} })
			if got := c.start.Sub(s.Now()); got != tt.startOffset {
				t.Errorf("clock - virtual at start = %v; want %v", got, tt.startOffset)
			}
			s.Run(2 * time.Second)
			if c.firedAt != tt.firedAfter {
				t.Errorf("a 1s timer fired after %v of virtual time; want %v", c.firedAt, tt.firedAfter)
			}
			if got := c.fired.Sub(c.start); got < time.Second || got > time.Second+time.Microsecond {
				t.Errorf("the node's clock advanced %v until its 1s timer fired; want 1s", got)
			}
			local := s.LocalTime("a")
			if back := s.VirtualTime("a", local); back.Sub(s.Now()).Abs() > time.Microsecond {
				t.Errorf("VirtualTime(LocalTime()) = %v; want %v", back, s.Now())
			}
			if got := s.LocalTime("b"); !got.Equal(s.Now()) {
				t.Errorf("node b without a clock reads %v; want the virtual time %v", got, s.Now())
			}
		})
	}
}

func TestSetClock(t *testing.T) {
	s, _ := sim.New(sim.Config{})
	s.AddNode("a", func() sim.Node { return &clockReader{s: s} })
	s.Run(time.Second)
	s.SetClock("a", sim.Clock{Offset: time.Minute})
	if got := s.LocalTime("a").Sub(s.Now()); got != time.Minute {
		t.Errorf("after SetClock(+1m) the clock is %v ahead; want 1m", got)
	}
	s.SetClock("a", sim.Clock{Drift: 2})
	if !errors.Is(s.Err(), sim.ErrInvalidConfig) || s.Clock("a").Offset != time.Minute {
		t.Errorf("SetClock(drift 2): Err() = %v, clock %+v; want ErrInvalidConfig and the clock unchanged", s.Err(), s.Clock("a"))
	}
	if _, err := sim.New(sim.Config{Clocks: map[transport.NodeID]sim.Clock{"a": {Drift: -0.9}}}); !errors.Is(err, sim.ErrInvalidConfig) {
		t.Errorf("New with drift -0.9: %v; want ErrInvalidConfig", err)
	}
	if _, err := sim.New(sim.Config{MaxTime: -1}); !errors.Is(err, sim.ErrInvalidConfig) {
		t.Errorf("New with MaxTime -1: %v; want ErrInvalidConfig", err)
	}
}

// oneShot sends one message at start and records what it receives.
type oneShot struct{ got int }

func (o *oneShot) Start(env sim.Env) {
	if env.ID() == "a" {
		env.Send("b", "x", nil)
	}
}
func (o *oneShot) Receive(sim.Env, transport.Message) { o.got++ }
func (o *oneShot) Timer(sim.Env, sim.TimerID, string) {}

func TestDeliverAfterSenderCrash(t *testing.T) {
	for _, keep := range []bool{false, true} {
		s, _ := sim.New(sim.Config{Faults: sim.Faults{MinDelay: time.Millisecond, MaxDelay: time.Millisecond}, DeliverAfterSenderCrash: keep})
		b := &oneShot{}
		s.AddNode("b", func() sim.Node { return b })
		s.AddNode("a", func() sim.Node { return &oneShot{} })
		s.Crash("a") // before the message lands
		s.Run(time.Second)
		if want := map[bool]int{false: 0, true: 1}[keep]; b.got != want {
			t.Errorf("DeliverAfterSenderCrash=%v: b received %d messages; want %d", keep, b.got, want)
		}
	}
}
