package saga_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/txn/saga"
)

// TestBarrierCases holds the barrier's three cases and its refusal of an
// action while its own attempt is in progress.
func TestBarrierCases(t *testing.T) {
	type call struct {
		compensate bool
		want       error // nil or a sentinel
	}
	tests := []struct {
		name     string
		calls    []call
		failAct  bool
		wantNet  int
		wantRuns int // business calls (actions + compensations) that ran
	}{
		{"duplicate action ignored", []call{{false, nil}, {false, nil}}, false, 1, 1},
		{"action then compensation", []call{{false, nil}, {true, nil}}, false, 0, 2},
		{"duplicate compensation ignored", []call{{false, nil}, {true, nil}, {true, nil}}, false, 0, 2},
		{"null compensation", []call{{true, nil}}, false, 0, 0},
		{"hanging action refused", []call{{true, nil}, {false, saga.ErrHanging}, {false, saga.ErrHanging}}, false, 0, 0},
		{"failed action, then null compensation", []call{{false, errAct}, {true, nil}, {false, saga.ErrHanging}}, true, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newService(t, nil)
			if tt.failAct {
				s.fail[0] = errAct
			}
			for i, c := range tt.calls {
				var err error
				if c.compensate {
					err = s.compensate(context.Background(), "g", 0)
				} else {
					err = s.action(context.Background(), "g", 0)
				}
				if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
					t.Fatalf("call %d (compensate=%v) = %v; want %v", i, c.compensate, err, c.want)
				}
			}
			runs := s.calls[key("g", 0)+"/a"] + s.calls[key("g", 0)+"/c"]
			if got := s.net[key("g", 0)]; got != tt.wantNet || runs != tt.wantRuns {
				t.Errorf("net = %d, business calls = %d; want %d, %d", got, runs, tt.wantNet, tt.wantRuns)
			}
		})
	}
}

var errAct = errors.New("refused")

// TestBarrierBusy: a compensation that arrives while its action is being
// applied waits (ErrBusy) instead of taking the slot.
func TestBarrierBusy(t *testing.T) {
	s := newService(t, nil)
	err := s.b.Action(context.Background(), "g", 0, func(ctx context.Context) error {
		if err := s.compensate(ctx, "g", 0); !errors.Is(err, saga.ErrBusy) {
			t.Errorf("Compensate during the action = %v; want ErrBusy", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.compensate(context.Background(), "g", 0); err != nil {
		t.Fatalf("Compensate after the action = %v", err)
	}
}

// branchNode is a service in the simulator: messages "a:<saga>" and
// "c:<saga>" are an action and a compensation of step 0, handled behind
// the barrier (clock: the simulator's).
type branchNode struct {
	s *service
}

func (n *branchNode) Start(sim.Env)                      {}
func (n *branchNode) Timer(sim.Env, sim.TimerID, string) {}
func (n *branchNode) Receive(env sim.Env, m transport.Message) {
	op, id := string(m.Payload[:1]), string(m.Payload[2:])
	var err error
	if op == "a" {
		err = n.s.action(context.Background(), id, 0)
	} else {
		err = n.s.compensate(context.Background(), id, 0)
	}
	if err == nil || errors.Is(err, saga.ErrHanging) { // a refused hanging action is an answer too
		env.Send(m.From, "saga", m.Payload)
	}
}

// clientNode sends, for each saga, either only actions (the saga goes
// on: done) or an action followed by compensations (it turned back:
// compensated), or compensations only (the action's request timed out and
// was never delivered). Every message is sent several times and resent
// until answered, and the network duplicates, drops and reorders them.
type clientNode struct {
	sagas []clientSaga
	acked map[string]bool // payloads answered
}

type clientSaga struct {
	id     string
	plan   int // 0: done, 1: action then compensate, 2: compensate only
	copies int
}

func (n *clientNode) Start(env sim.Env) {
	n.acked = map[string]bool{}
	for i := range n.sagas {
		env.SetTimer(time.Duration(i)*time.Millisecond, fmt.Sprint(i))
	}
}
func (n *clientNode) Receive(_ sim.Env, m transport.Message) { n.acked[string(m.Payload)] = true }
func (n *clientNode) Timer(env sim.Env, _ sim.TimerID, name string) {
	var i int
	fmt.Sscan(name, &i)
	s := n.sagas[i]
	again := false
	for range s.copies {
		// The compensation is sent together with the action (not after
		// its answer): the reordering network decides which comes first.
		if s.plan != 2 && !n.acked["a:"+s.id] && !n.acked["c:"+s.id] {
			env.Send("svc", "saga", []byte("a:"+s.id))
			again = true
		}
		if s.plan != 0 && !n.acked["c:"+s.id] {
			env.Send("svc", "saga", []byte("c:"+s.id))
			again = true
		}
	}
	if again {
		env.SetTimer(100*time.Millisecond, name)
	}
}

// TestBarrierSim: duplicated, late and reordered actions and compensations
// in the simulator. Whatever arrives in whatever order, each saga's branch
// ends applied once (done) or not at all (compensated), and no business
// call runs twice.
func TestBarrierSim(t *testing.T) {
	sim.Seeds(t, 20, func(t *testing.T, seed int64) {
		cfg := sim.DefaultConfig()
		cfg.Seed = seed
		cfg.Faults = sim.Faults{Drop: 0.1, Duplicate: 0.3, MinDelay: time.Millisecond, MaxDelay: 50 * time.Millisecond,
			Reorder: 0.3, ReorderDelay: 200 * time.Millisecond}
		s, err := sim.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		svc := newService(t, s.Now)
		var sagas []clientSaga
		for i := range 60 {
			sagas = append(sagas, clientSaga{id: fmt.Sprintf("s%d", i), plan: (i + int(seed)) % 3, copies: 1 + i%3})
		}
		s.AddNode("svc", func() sim.Node { return &branchNode{s: svc} })
		s.AddNode("client", func() sim.Node { return &clientNode{sagas: sagas} })
		s.Run(30 * time.Second)
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		svc.mu.Lock()
		defer svc.mu.Unlock()
		for _, sg := range sagas {
			net := svc.net[key(sg.id, 0)]
			switch {
			case net < 0 || net > 1:
				t.Errorf("saga %s (plan %d): applied %d times net", sg.id, sg.plan, net)
			case sg.plan == 0 && net != 1:
				t.Errorf("saga %s done but its action is not applied", sg.id)
			case sg.plan != 0 && net != 0:
				t.Errorf("saga %s compensated but its action is applied (a hanging action got through)", sg.id)
			}
		}
		for k, n := range svc.calls {
			if n > 1 {
				t.Errorf("%s ran %d times", k, n)
			}
		}
	})
}
