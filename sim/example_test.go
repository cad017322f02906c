package sim_test

import (
	"fmt"
	"time"

	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
)

// pinger sends "ping" to its peer every 100ms; ponger answers each ping.
type pinger struct {
	peer  transport.NodeID
	pongs int
}

func (p *pinger) Start(env sim.Env) { env.SetTimer(100*time.Millisecond, "ping") }

func (p *pinger) Timer(env sim.Env, _ sim.TimerID, _ string) {
	env.Send(p.peer, "pingpong", []byte("ping"))
	env.SetTimer(100*time.Millisecond, "ping")
}

func (p *pinger) Receive(env sim.Env, msg transport.Message) {
	p.pongs++
	fmt.Printf("%v %s got %s from %s\n", env.Now().Format("15:04:05.000"), env.ID(), msg.Payload, msg.From)
}

type ponger struct{}

func (ponger) Start(sim.Env)                      {}
func (ponger) Timer(sim.Env, sim.TimerID, string) {}
func (ponger) Receive(env sim.Env, msg transport.Message) {
	env.Send(msg.From, msg.Service, []byte("pong"))
}

// Example simulates a tiny ping/pong protocol over a network with 5ms of
// latency each way, then crashes the ponger: its answers stop, and the
// simulator's counters show the lost pings.
func Example() {
	s, err := sim.New(sim.Config{Seed: 1, Faults: sim.Faults{MinDelay: 5 * time.Millisecond, MaxDelay: 5 * time.Millisecond}})
	if err != nil {
		fmt.Println(err)
		return
	}
	a := &pinger{peer: "b"}
	_ = s.AddNode("a", func() sim.Node { return a })
	_ = s.AddNode("b", func() sim.Node { return ponger{} })

	s.Run(350 * time.Millisecond)
	s.Crash("b")
	s.Run(200 * time.Millisecond)

	st := s.Stats()
	fmt.Printf("pongs=%d sent=%d delivered=%d dropped=%d\n", a.pongs, st.Sent, st.Delivered, st.Dropped)
	// Output:
	// 00:00:00.110 a got pong from b
	// 00:00:00.210 a got pong from b
	// 00:00:00.310 a got pong from b
	// pongs=3 sent=8 delivered=6 dropped=2
}

type idle struct{}

func (idle) Start(sim.Env)                      {}
func (idle) Receive(sim.Env, transport.Message) {}
func (idle) Timer(sim.Env, sim.TimerID, string) {}

// ExampleDisk shows what a crash leaves on a node's disk: only what was
// synced.
func ExampleDisk() {
	s, _ := sim.New(sim.Config{Seed: 1})
	_ = s.AddNode("a", func() sim.Node { return idle{} })
	s.Inject("a", func(env sim.Env) {
		d := env.Disk()
		_ = d.Append("wal", []byte("entry-1;"))
		_ = d.Sync("wal")
		_ = d.Append("wal", []byte("entry-2;")) // not synced
		_ = d.WriteFile("tmp", []byte("scratch"))
	})
	s.Crash("a")
	s.Restart("a")
	wal, _ := s.Disk("a").ReadFile("wal")
	fmt.Printf("wal=%q files=%v\n", wal, s.Disk("a").List())
	// Output:
	// wal="entry-1;" files=[wal]
}
