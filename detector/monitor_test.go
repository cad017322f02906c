package detector

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// fastConfig is a Config sped up 50-fold for tests on real time.
func fastConfig() Config {
	cfg := DefaultConfig()
	cfg.HeartbeatInterval = 20 * time.Millisecond
	cfg.CheckInterval = 5 * time.Millisecond
	cfg.ProbeTimeout = 40 * time.Millisecond
	cfg.Phi.MinStdDev = 5 * time.Millisecond
	// Real schedulers on a loaded machine are much less regular than a
	// network with 10 % jitter; a pause absorbs their hiccups.
	cfg.Phi.AcceptablePause = 60 * time.Millisecond
	return cfg
}

// seenEvents keeps every event each Monitor has delivered to waitEvent, so
// waiting for one event does not lose the others.
var (
	seenMu     sync.Mutex // guards seenEvents
	seenEvents = map[*Monitor][]Event{}
)

// waitEvent returns the first event about member of kind that m delivered
// since the last call that consumed one, reading more as needed, and fails
// the test after a generous real-time limit.
func waitEvent(t *testing.T, m *Monitor, member transport.NodeID, kind EventKind) Event {
	t.Helper()
	take := func() (Event, bool) {
		seenMu.Lock()
		defer seenMu.Unlock()
		for i, e := range seenEvents[m] {
			if e.Member == member && e.Kind == kind {
				seenEvents[m] = append(seenEvents[m][:i:i], seenEvents[m][i+1:]...)
				return e, true
			}
		}
		return Event{}, false
	}
	limit := time.NewTimer(20 * time.Second)
	defer limit.Stop()
	for {
		if e, ok := take(); ok {
			return e
		}
		select {
		case e, ok := <-m.Events():
			if !ok {
				t.Fatalf("events closed while waiting for %s %v", member, kind)
			}
			seenMu.Lock()
			seenEvents[m] = append(seenEvents[m], e)
			seenMu.Unlock()
		case <-limit.C:
			t.Fatalf("no %s event for %s", kind, member)
		}
	}
}

func TestMonitorConfigErrors(t *testing.T) {
	bad := DefaultConfig()
	bad.IndirectProbes = -1
	tests := []struct {
		name string
		tr   transport.Transport
		cfg  Config
		opts MonitorOptions
	}{
		{"nil transport", nil, DefaultConfig(), MonitorOptions{}},
		{"bad config", newTestNet(t).node("a"), bad, MonitorOptions{}},
		{"negative buffer", newTestNet(t).node("a"), DefaultConfig(), MonitorOptions{EventBuffer: -1}},
	}
	for _, tt := range tests {
		if _, err := NewMonitor(tt.tr, tt.cfg, tt.opts); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: NewMonitor error = %v; want ErrInvalidConfig", tt.name, err)
		}
	}
}

func TestMonitorMembersAndClose(t *testing.T) {
	net := newTestNet(t)
	m, err := NewMonitor(net.node("a"), fastConfig(), MonitorOptions{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"add", m.AddMember(ctx, "b"), nil},
		{"add self", m.AddMember(ctx, "a"), ErrSelf},
		{"add twice", m.AddMember(ctx, "b"), ErrDuplicateMember},
		{"add cancelled", m.AddMember(cancelled, "c"), context.Canceled},
		{"remove unknown", m.RemoveMember(ctx, "zz"), ErrUnknownMember},
		{"remove", m.RemoveMember(ctx, "b"), nil},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: error = %v; want %v", tt.name, tt.err, tt.want)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close = %v; want nil", err)
	}
	if err := m.AddMember(ctx, "d"); !errors.Is(err, ErrClosed) {
		t.Fatalf("AddMember after Close = %v; want ErrClosed", err)
	}
	if _, ok := <-m.Events(); ok {
		t.Fatalf("Events not closed after Close")
	}
}

// cluster of Monitors on a network.
type monitorCluster struct {
	t   *testing.T
	net netFixture
	ids []transport.NodeID
	mon map[transport.NodeID]*Monitor
}

// netFixture is what the runtime tests need of an in-memory network.
type netFixture interface {
	node(id transport.NodeID) transport.Transport
	stop(id transport.NodeID)
	restart(id transport.NodeID) transport.Transport
	partition(a, b []transport.NodeID)
	heal()
}

func startMonitors(t *testing.T, net netFixture, n int) *monitorCluster {
	c := &monitorCluster{t: t, net: net, mon: map[transport.NodeID]*Monitor{}}
	for i := range n {
		c.ids = append(c.ids, transport.NodeID(fmt.Sprintf("n%d", i+1)))
	}
	for _, id := range c.ids {
		c.start(id, net.node(id))
	}
	t.Cleanup(func() {
		for _, m := range c.mon {
			m.Close()
		}
	})
	return c
}

func (c *monitorCluster) start(id transport.NodeID, tr transport.Transport) {
	m, err := NewMonitor(tr, fastConfig(), MonitorOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	for _, p := range c.ids {
		if p != id {
			if err := m.AddMember(context.Background(), p); err != nil {
				c.t.Fatal(err)
			}
		}
	}
	c.mon[id] = m
}

// TestMonitorStopAndRestart stops a node: every other node reports it
// Failed. Restarted with a fresh Monitor, it is reported Recovered.
func TestMonitorStopAndRestart(t *testing.T) {
	net := newTestNet(t)
	c := startMonitors(t, net, 4)
	victim := c.ids[3]
	oldInc := c.mon[victim].Incarnation()
	c.mon[victim].Close()
	delete(c.mon, victim)
	net.stop(victim)
	for _, id := range c.ids[:3] {
		waitEvent(t, c.mon[id], victim, EventFailed)
	}
	c.start(victim, net.restart(victim))
	for _, id := range c.ids[:3] {
		e := waitEvent(t, c.mon[id], victim, EventRecovered)
		if e.Incarnation <= oldInc {
			t.Errorf("%s: %s recovered with incarnation %d; want > %d", id, victim, e.Incarnation, oldInc)
		}
	}
}

// memnetFixture runs the runtime tests on transport/memnet.
type memnetFixture struct {
	t   *testing.T
	net *memnet.Network
	trs map[transport.NodeID]*memnet.Transport
}

func newTestNet(t *testing.T) *memnetFixture {
	t.Helper()
	cfg := memnet.DefaultConfig()
	cfg.Faults = memnet.Faults{MinDelay: 100 * time.Microsecond, MaxDelay: time.Millisecond}
	net, err := memnet.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after the monitors' cleanup.
	t.Cleanup(func() { net.Close() })
	return &memnetFixture{t: t, net: net, trs: map[transport.NodeID]*memnet.Transport{}}
}

func (f *memnetFixture) node(id transport.NodeID) transport.Transport {
	tr, err := f.net.Join(id)
	if err != nil {
		f.t.Fatal(err)
	}
	f.trs[id] = tr
	return tr
}

func (f *memnetFixture) stop(id transport.NodeID) {
	if err := f.net.Crash(id); err != nil {
		f.t.Fatal(err)
	}
}

// restart brings the node back; the caller starts a new Monitor on the
// returned transport, as a restarted process would.
func (f *memnetFixture) restart(id transport.NodeID) transport.Transport {
	if err := f.net.Restart(id); err != nil {
		f.t.Fatal(err)
	}
	return f.trs[id]
}

func (f *memnetFixture) partition(a, b []transport.NodeID) { f.net.Partition(a, b) }
func (f *memnetFixture) heal()                             { f.net.Heal() }

// TestMonitorPartitionHeals cuts four monitors into two pairs: each side
// declares the other Failed; after the heal every node recovers the others.
func TestMonitorPartitionHeals(t *testing.T) {
	net := newTestNet(t)
	c := startMonitors(t, net, 4)
	left, right := c.ids[:2], c.ids[2:]
	net.partition(left, right)
	for _, a := range left {
		for _, b := range right {
			waitEvent(t, c.mon[a], b, EventFailed)
			waitEvent(t, c.mon[b], a, EventFailed)
		}
	}
	net.heal()
	for _, a := range left {
		for _, b := range right {
			waitEvent(t, c.mon[a], b, EventRecovered)
			waitEvent(t, c.mon[b], a, EventRecovered)
		}
	}
}

// TestMonitorSlowReader never reads Events: detection goes on, and events
// past the buffer are dropped and counted instead of blocking the monitor.
func TestMonitorSlowReader(t *testing.T) {
	net := newTestNet(t)
	m, err := NewMonitor(net.node("a"), fastConfig(), MonitorOptions{EventBuffer: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// Three members that never answer: three suspect and three failed
	// events, at most one of which can wait in the buffer and one in the
	// delivery goroutine's hands.
	for _, id := range []transport.NodeID{"x", "y", "z"} {
		if err := m.AddMember(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []transport.NodeID{"x", "y", "z"} {
		for {
			st, err := m.Member(id)
			if err != nil {
				t.Fatal(err)
			}
			if st.Status == Failed {
				break
			}
			time.Sleep(5 * time.Millisecond) // the verdict needs real time to pass; no event is readable by design
		}
	}
	if got := m.Stats().EventsDropped; got < 4 {
		t.Fatalf("EventsDropped = %d with a buffer of 1 and 6 events unread; want ≥ 4", got)
	}
}

// TestMonitorMembersWhileRunning adds a member that does not exist to a
// running monitor, sees it declared Failed, and removes it.
func TestMonitorMembersWhileRunning(t *testing.T) {
	net := newTestNet(t)
	c := startMonitors(t, net, 2)
	m := c.mon["n1"]
	if err := m.AddMember(context.Background(), "ghost"); err != nil {
		t.Fatal(err)
	}
	e := waitEvent(t, m, "ghost", EventFailed)
	if e.Phi < fastConfig().Phi.Threshold {
		t.Errorf("ghost failed with phi %v; want ≥ the threshold", e.Phi)
	}
	if err := m.RemoveMember(context.Background(), "ghost"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Member("ghost"); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("Member(ghost) after removal: %v; want ErrUnknownMember", err)
	}
	if st, _ := m.Member("n2"); st.Status == Failed {
		t.Fatalf("n2 is %v; want not failed", st.Status)
	}
}
