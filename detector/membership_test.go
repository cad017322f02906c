package detector

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/distkit/distkit/transport"
)

func newCore(t *testing.T, id transport.NodeID, now time.Time, peers ...transport.NodeID) *Membership {
	t.Helper()
	m, err := NewMembership(id, DefaultConfig(), 1, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		if err := m.AddMember(p, now); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func TestMembershipErrors(t *testing.T) {
	m := newCore(t, "a", t0, "b")
	bad := DefaultConfig()
	bad.HeartbeatInterval = 0
	_, errNew := NewMembership("a", bad, 1, t0)
	_, errEmpty := NewMembership("", DefaultConfig(), 1, t0)
	_, errMember := m.Member("zz", t0)
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"bad config", errNew, ErrInvalidConfig},
		{"empty self", errEmpty, ErrInvalidConfig},
		{"add self", m.AddMember("a", t0), ErrSelf},
		{"add empty", m.AddMember("", t0), ErrInvalidConfig},
		{"add duplicate", m.AddMember("b", t0), ErrDuplicateMember},
		{"add huge ID", m.AddMember(transport.NodeID(make([]byte, maxTargetLen+1)), t0), ErrInvalidConfig},
		{"remove unknown", m.RemoveMember("zz"), ErrUnknownMember},
		{"member unknown", errMember, ErrUnknownMember},
		{"malformed", m.Receive(t0, "b", []byte{1, 2, 3}), ErrMalformed},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: error = %v; want %v", tt.name, tt.err, tt.want)
		}
	}
	if got := m.Stats().Malformed; got != 1 {
		t.Errorf("Stats().Malformed = %d; want 1", got)
	}
}

// pair is two cores exchanging messages by hand.
type pair struct {
	t    *testing.T
	now  time.Time
	a, b *Membership
	// held are messages from b to a that were not delivered.
	held [][]byte
}

// step advances both cores by d and delivers their messages; b's messages
// to a are held instead when mute is set.
func (p *pair) step(d time.Duration, mute bool) []Event {
	p.now = p.now.Add(d)
	p.a.Tick(p.now)
	p.b.Tick(p.now)
	var evs []Event
	for range 3 { // a few rounds, so answers to answers get through
		ra, rb := p.a.Ready(), p.b.Ready()
		evs = append(evs, ra.Events...)
		for _, m := range ra.Messages {
			if err := p.b.Receive(p.now, "a", m.Payload); err != nil {
				p.t.Fatal(err)
			}
		}
		for _, m := range rb.Messages {
			if mute {
				p.held = append(p.held, m.Payload)
				continue
			}
			if err := p.a.Receive(p.now, "b", m.Payload); err != nil {
				p.t.Fatal(err)
			}
		}
	}
	return evs
}

// TestMembershipRefutation follows one suspicion through its life: a
// suspects the silent b and pings it with the rumour, b refutes with a
// higher incarnation, a sees b Alive again, and a delayed old heartbeat
// changes nothing.
func TestMembershipRefutation(t *testing.T) {
	p := &pair{t: t, now: t0, a: newCore(t, "a", t0, "b"), b: newCore(t, "b", t0, "a")}
	for range 300 { // 30 s of normal operation
		if evs := p.step(100*time.Millisecond, false); len(evs) != 0 {
			t.Fatalf("events on a healthy pair: %v", evs)
		}
	}
	incBefore := p.b.Incarnation()
	// b's messages stop reaching a until a suspects it.
	var suspected bool
	answers := 0 // index in held of b's answers to the probe
	for i := 0; i < 100 && !suspected; i++ {
		answers = len(p.held)
		for _, e := range p.step(100*time.Millisecond, true) {
			suspected = suspected || e.Kind == EventSuspect
		}
	}
	if !suspected {
		t.Fatalf("a never suspected a silent b")
	}
	if len(p.held) == 0 {
		t.Fatalf("no held messages from b")
	}
	if got := p.b.Incarnation(); got != incBefore+1 {
		t.Fatalf("b's incarnation after being pinged with the rumour = %d; want %d", got, incBefore+1)
	}
	// b's answers (the refuting heartbeat and the ack) now get through.
	for _, m := range p.held[answers:] {
		if err := p.a.Receive(p.now, "b", m); err != nil {
			t.Fatal(err)
		}
	}
	evs := p.a.Ready().Events
	if len(evs) != 1 || evs[0].Kind != EventAlive || evs[0].Incarnation != incBefore+1 {
		t.Fatalf("events after b's answer = %v; want one alive at incarnation %d", evs, incBefore+1)
	}
	// A delayed heartbeat from b's old incarnation is stale.
	stale := p.a.Stats().StaleOrDuplicate
	if err := p.a.Receive(p.now, "b", p.held[0]); err != nil {
		t.Fatal(err)
	}
	if got := p.a.Stats().StaleOrDuplicate; got != stale+1 {
		t.Fatalf("StaleOrDuplicate after an old heartbeat = %d; want %d", got, stale+1)
	}
	// A rumour about b's old incarnation does not make it bump again.
	old := message{kind: kindPing, incarnation: 1, seq: 1, probe: 99, rumour: incBefore}
	if err := p.b.Receive(p.now, "a", old.encode()); err != nil {
		t.Fatal(err)
	}
	if got := p.b.Incarnation(); got != incBefore+1 {
		t.Fatalf("b's incarnation after an old rumour = %d; want %d (unchanged)", got, incBefore+1)
	}
	// A rumour nothing can outrank must not wrap the incarnation to zero.
	bogus := message{kind: kindPing, incarnation: 1, seq: 2, probe: 100, rumour: math.MaxUint64}
	if err := p.b.Receive(p.now, "a", bogus.encode()); err != nil {
		t.Fatal(err)
	}
	if got := p.b.Incarnation(); got != incBefore+1 {
		t.Fatalf("b's incarnation after a rumour of MaxUint64 = %d; want %d (unchanged)", got, incBefore+1)
	}
}

// TestMembershipClockWentBack restarts b with a clock an hour behind its
// previous life: a, which knows the old incarnation, ignores b's new
// messages as stale until its probe makes b refute past the old life.
func TestMembershipClockWentBack(t *testing.T) {
	p := &pair{t: t, now: t0, a: newCore(t, "a", t0, "b"), b: newCore(t, "b", t0, "a")}
	for range 100 {
		p.step(100*time.Millisecond, false)
	}
	old := p.b.Incarnation()
	p.b = newCore(t, "b", p.now.Add(-time.Hour), "a") // restarted, clock behind
	var kinds []EventKind
	for range 300 {
		for _, e := range p.step(100*time.Millisecond, false) {
			kinds = append(kinds, e.Kind)
		}
	}
	if got := p.b.Incarnation(); got <= old {
		t.Fatalf("restarted b's incarnation = %d; want > %d, its previous life's", got, old)
	}
	st, _ := p.a.Member("b", p.now)
	if st.Status != Alive || st.Incarnation != p.b.Incarnation() {
		t.Fatalf("a sees b %v at incarnation %d; want alive at %d (events %v)", st.Status, st.Incarnation, p.b.Incarnation(), kinds)
	}
}

// TestMembershipSilentFails checks the whole path to Failed and back with
// no helper to ask: suspect, probe round expires, failed; heard again,
// recovered.
func TestMembershipSilentFails(t *testing.T) {
	p := &pair{t: t, now: t0, a: newCore(t, "a", t0, "b"), b: newCore(t, "b", t0, "a")}
	for range 100 {
		p.step(100*time.Millisecond, false)
	}
	var kinds []EventKind
	for range 100 {
		for _, e := range p.step(100*time.Millisecond, true) {
			kinds = append(kinds, e.Kind)
		}
	}
	for range 20 {
		for _, e := range p.step(100*time.Millisecond, false) {
			kinds = append(kinds, e.Kind)
		}
	}
	want := []EventKind{EventSuspect, EventFailed, EventRecovered}
	if len(kinds) != len(want) || kinds[0] != want[0] || kinds[1] != want[1] || kinds[2] != want[2] {
		t.Fatalf("events = %v; want %v", kinds, want)
	}
}

func TestWireRoundTrip(t *testing.T) {
	msgs := []message{
		{kind: kindHeartbeat, incarnation: 7, seq: 9},
		{kind: kindAlive, incarnation: 8, seq: 10},
		{kind: kindPing, incarnation: 1, seq: 2, probe: 3, rumour: 4},
		{kind: kindAck, incarnation: 1, seq: 2, probe: 3},
		{kind: kindPingReq, incarnation: 1, seq: 2, probe: 3, rumour: 4, target: "node-5"},
		{kind: kindIndirectAck, incarnation: 1, seq: 2, probe: 3, target: "x", targetInc: 6, targetSeq: 7},
	}
	for _, m := range msgs {
		got, err := decode(m.encode())
		if err != nil || got != m {
			t.Errorf("decode(encode(%+v)) = %+v, %v; want the same message", m, got, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add((&message{kind: kindHeartbeat, incarnation: 7, seq: 9}).encode())
	f.Add((&message{kind: kindPingReq, probe: 3, rumour: 4, target: "n2"}).encode())
	f.Add((&message{kind: kindIndirectAck, probe: 3, target: "n2", targetInc: 6}).encode())
	f.Add([]byte{1, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("decode error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if again := m.encode(); string(again) != string(b) {
			t.Fatalf("decode then encode changed the bytes: %x -> %x", b, again)
		}
		// The core must take any decodable message without panicking.
		core, _ := NewMembership("a", DefaultConfig(), 1, t0)
		_ = core.AddMember("b", t0)
		_ = core.Receive(t0, "b", b)
	})
}

// TestConfigFollowsHeartbeatInterval checks that changing only the
// interval rescales the detectors, and that explicit values win.
func TestConfigFollowsHeartbeatInterval(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HeartbeatInterval = 30 * time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatalf("DefaultConfig with a 30 s interval: Validate = %v; want nil", err)
	}
	r := cfg.resolved()
	tests := []struct {
		name      string
		got, want time.Duration
	}{
		{"first estimate", r.Phi.FirstHeartbeatEstimate, 30 * time.Second},
		{"max interval", r.Phi.MaxInterval, 300 * time.Second},
		{"fixed timeout", r.Timeout.Timeout, 90 * time.Second},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v; want %v", tt.name, tt.got, tt.want)
		}
	}
	cfg.Phi.MaxInterval = 20 * time.Second // shorter than an interval: nothing would be sampled
	if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("MaxInterval below the interval: Validate = %v; want ErrInvalidConfig", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
	}{
		{"zero interval", func(c *Config) { c.HeartbeatInterval = 0 }},
		{"jitter 1", func(c *Config) { c.Jitter = 1 }},
		{"negative jitter", func(c *Config) { c.Jitter = -0.1 }},
		{"zero check interval", func(c *Config) { c.CheckInterval = 0 }},
		{"negative probes", func(c *Config) { c.IndirectProbes = -1 }},
		{"too many probes", func(c *Config) { c.IndirectProbes = maxIndirectProbes + 1 }},
		{"zero probe timeout", func(c *Config) { c.ProbeTimeout = 0 }},
		{"unknown detector", func(c *Config) { c.Detector = 0 }},
		{"bad phi", func(c *Config) { c.Phi.Threshold = -1 }},
		{"bad timeout", func(c *Config) { c.Detector = KindFixedTimeout; c.Timeout.Confirmations = 0 }},
	}
	for _, tt := range tests {
		cfg := DefaultConfig()
		tt.mutate(&cfg)
		if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v; want ErrInvalidConfig", tt.name, err)
		}
	}
}
