package election

import (
	"cmp"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/distkit/distkit/detector"
	"github.com/distkit/distkit/transport"
)

// Core is the deterministic part of an elector (BullyCore, RingCore): no
// goroutines, no I/O, no clock. Its driver (Node, electionsim.Node, or your
// own loop) feeds it time and messages and sends what it produces. The
// driver must, calling it from one goroutine at a time:
//
//  1. call Tick(now) no later than NextTick() (earlier is harmless);
//  2. pass every message received on Config.Service to Receive;
//  3. after each call, take Ready, make Ready.State durable if it is not
//     zero, and only then send its Messages, best effort;
//  4. after a crash, build a new core from the last durable State.
type Core interface {
	// Tick advances timers: heartbeats, failure checks, election timeouts.
	Tick(now time.Time)
	// Receive handles one message. Malformed payloads (ErrMalformed) and
	// senders outside Members (ErrUnknownMember) are rejected unchanged.
	Receive(now time.Time, from transport.NodeID, payload []byte) error
	// SetCandidate makes this node stand for election (true) or withdraw
	// (false), resigning if it leads.
	SetCandidate(now time.Time, on bool)
	// Ready returns the messages produced since the last call, which the
	// caller now owns, and the current view of the leader.
	Ready() Ready
	// NextTick returns the time by which Tick must be called next.
	NextTick() time.Time
}

// Envelope is a message the driver must send: Payload to To on
// Config.Service.
type Envelope struct {
	To      transport.NodeID
	Payload []byte
}

// State is what a core must keep across a restart: the highest epoch it
// has seen or campaigned for. A core restored from it never reports,
// campaigns with or announces a lower epoch, so epochs never go backwards
// at a node even across crashes, and a restarted leader cannot reuse an
// epoch it may already have fenced actions with.
type State struct {
	Epoch uint64
}

// Ready is a core's output since the previous call to Ready.
type Ready struct {
	// State, when not zero, must be made durable (EpochStore.Save) before
	// any of Messages is sent or Leader is acted on: the messages may
	// announce its epoch. Zero means unchanged since the last Ready.
	State State
	// Messages to send, best effort.
	Messages []Envelope
	// Leader is the node's current view of the leader.
	Leader Leader
}

// Stats counts what a core has done.
type Stats struct {
	Elections        uint64 // elections (Bully) or rounds (Ring) this node started, restarts included
	Restarts         uint64 // of which restarted because a wait timed out
	Won              uint64 // times this node became the leader
	ElectionMessages uint64 // ELECTION, OK, COORDINATOR and ring messages sent
	Heartbeats       uint64 // failure-detector messages sent
	Stale            uint64 // election messages ignored as belonging to an older election
	Rejected         uint64 // malformed messages and messages from non-members
}

// base is what both cores share: membership and priorities, the failure
// detector, the view and how views merge, candidacy and the outbox.
type base struct {
	cfg   Config
	self  Member
	prio  map[transport.NodeID]uint64
	order []Member // by priority, ascending: the Ring's order too
	det   *detector.Membership
	log   *slog.Logger

	view Leader
	// unknown marks a view restored from State after a restart: epoch
	// view.Epoch, leader not known yet. Unlike a resignation (also an
	// empty ID) it ranks below every leader of its epoch (see better).
	unknown   bool
	candidate bool
	// suspect is set when the detector reports the leader Failed (or a
	// view naming a Failed leader is adopted); cleared when an election
	// ends or the leader proves alive.
	suspect   bool
	heard     time.Time // when the leader was last heard from (or adopted)
	bootUntil time.Time // no campaigning before: learn the current leader first

	// saved is the highest epoch handed to the driver to persist (or
	// restored); Ready reports a State when a higher one appears.
	saved uint64

	out   []Envelope
	stats Stats
}

func newBase(cfg Config, st State, seed uint64, now time.Time) (base, error) {
	if err := cfg.Validate(); err != nil {
		return base{}, err
	}
	det, err := detector.NewMembership(cfg.ID, cfg.Detector, seed, now)
	if err != nil {
		return base{}, fmt.Errorf("%w: detector: %w", ErrInvalidConfig, err)
	}
	b := base{
		cfg:       cfg,
		prio:      make(map[transport.NodeID]uint64, len(cfg.Members)),
		order:     slices.Clone(cfg.Members),
		det:       det,
		log:       cfg.Logger,
		candidate: true,
		bootUntil: now.Add(cfg.BootDelay),
		// A restarted node knows the epoch it had reached, not who leads
		// it: it reports (and gossips) that epoch, never a lower one.
		view:    Leader{Epoch: st.Epoch},
		unknown: st.Epoch > 0,
		saved:   st.Epoch,
	}
	slices.SortFunc(b.order, func(x, y Member) int { return cmp.Compare(x.Priority, y.Priority) })
	for _, m := range cfg.Members {
		b.prio[m.ID] = m.Priority
		if m.ID == cfg.ID {
			b.self = m
			continue
		}
		if err := det.AddMember(m.ID, now); err != nil {
			return base{}, fmt.Errorf("%w: detector: %w", ErrInvalidConfig, err)
		}
	}
	return b, nil
}

// higher reports whether a outranks b; the empty ID ranks below everyone.
func (b *base) higher(a, than transport.NodeID) bool {
	if a == "" {
		return false
	}
	if than == "" {
		return true
	}
	return b.prio[a] > b.prio[than]
}

// better reports whether view a (unknown: au) supersedes view than
// (unknown: tu). Views are ordered by epoch, then, within one epoch, "no
// leader" (a resignation) above any leader, any leader above "not known"
// (a restarted node's restored epoch), then by the leader's priority. The
// order is total, so merging views pairwise converges to the same view
// everywhere, and a COORDINATOR or ELECTED message from an older election
// (lower epoch) never wins.
func (b *base) better(a Leader, au bool, than Leader, tu bool) bool {
	return b.rank(a, au).more(b.rank(than, tu))
}

// viewRank is a view's place in the order better defines.
type viewRank struct {
	epoch uint64
	class int    // 0 not known, 1 a leader, 2 resigned
	prio  uint64 // the leader's, for class 1
}

func (r viewRank) more(o viewRank) bool {
	if r.epoch != o.epoch {
		return r.epoch > o.epoch
	}
	if r.class != o.class {
		return r.class > o.class
	}
	return r.prio > o.prio
}

func (b *base) rank(l Leader, unknown bool) viewRank {
	switch {
	case l.ID != "":
		return viewRank{epoch: l.Epoch, class: 1, prio: b.prio[l.ID]}
	case unknown:
		return viewRank{epoch: l.Epoch}
	}
	return viewRank{epoch: l.Epoch, class: 2}
}

// failed reports whether the detector holds id Failed.
func (b *base) failed(id transport.NodeID, now time.Time) bool {
	if id == b.self.ID || id == "" {
		return false
	}
	st, err := b.det.Member(id, now)
	return err == nil && st.Status == detector.Failed
}

// adopt makes l the view (a known leader or a resignation). The epoch
// never decreases: callers only adopt better views or win a higher epoch.
func (b *base) adopt(l Leader, now time.Time) { b.adoptView(l, false, now) }

func (b *base) adoptView(l Leader, unknown bool, now time.Time) {
	b.view, b.unknown = l, unknown && l.ID == ""
	b.heard = now
	b.suspect = l.ID != "" && b.failed(l.ID, now)
	if b.log != nil {
		b.log.Debug("election: leader", "node", b.self.ID, "leader", l.ID, "epoch", l.Epoch)
	}
}

// send queues msg to one node, stamped with this node's view.
func (b *base) send(to transport.NodeID, msg message) {
	msg.view, msg.unknown = b.view, b.unknown
	if msg.kind == kindHeartbeat {
		b.stats.Heartbeats++
	} else {
		b.stats.ElectionMessages++
	}
	b.out = append(b.out, Envelope{To: to, Payload: msg.encode()})
}

// broadcast sends msg to every other member the detector does not hold
// Failed, in priority order.
func (b *base) broadcast(msg message, now time.Time) {
	for _, m := range b.order {
		if m.ID != b.self.ID && !b.failed(m.ID, now) {
			b.send(m.ID, msg)
		}
	}
}

// accept checks a received message and merges the sender's view into
// ours. It returns the message and whether our view changed.
func (b *base) accept(now time.Time, from transport.NodeID, payload []byte) (message, bool, error) {
	if _, ok := b.prio[from]; !ok || from == b.self.ID {
		b.stats.Rejected++
		return message{}, false, fmt.Errorf("%w: %q", ErrUnknownMember, from)
	}
	msg, err := decode(payload)
	if err == nil && msg.view.ID != "" {
		if _, ok := b.prio[msg.view.ID]; !ok {
			err = fmt.Errorf("%w: view names non-member %q", ErrMalformed, msg.view.ID)
		}
	}
	if err != nil {
		b.stats.Rejected++
		return message{}, false, err
	}
	if msg.kind == kindHeartbeat {
		// The detector judges its own payload; a bad one is counted there.
		_ = b.det.Receive(now, from, msg.inner)
	}
	if msg.view.ID == b.self.ID && msg.view != b.view {
		// A view naming this node as leader, in a leadership this node
		// does not hold: one of an earlier life of this process, which
		// ended when it restarted (its epoch is restored from its store,
		// its leadership is not). Taking it up again would make a second
		// leadership with the same epoch, which fencing cannot tell from
		// the first. Merge it as "leader unknown" in that epoch instead:
		// the node then holds an election and leads, if it wins, in a
		// higher epoch.
		msg.view, msg.unknown = Leader{Epoch: msg.view.Epoch}, true
	}
	changed := false
	if b.better(msg.view, msg.unknown, b.view, b.unknown) {
		b.adoptView(msg.view, msg.unknown, now)
		changed = true
	}
	if from == b.view.ID {
		b.heard = now
		if msg.view == b.view && !msg.unknown {
			// The leader itself says it leads: it is alive, whatever
			// the detector concluded a moment ago.
			b.suspect = false
		}
	}
	return msg, changed, nil
}

// tickDetector advances the failure detector and ends the boot delay.
func (b *base) tickDetector(now time.Time) {
	b.det.Tick(now)
	if !b.bootUntil.IsZero() && !now.Before(b.bootUntil) {
		b.bootUntil = time.Time{} // booted: NextTick no longer needs it
	}
	// The Failed event is an edge, and a message from the leader clears
	// the suspicion it raised. If the detector still holds the leader
	// Failed and the leader has been silent for a detection period since,
	// suspect it again: it may have crashed after its last word.
	l := b.view.ID
	if !b.suspect && l != "" && l != b.self.ID && now.Sub(b.heard) >= b.quietLimit() && b.failed(l, now) {
		b.suspect = true
	}
}

// quietLimit is how long a leader the detector holds Failed may stay
// silent before it is suspected again: about one detection delay.
func (b *base) quietLimit() time.Duration {
	return 3*b.cfg.Detector.HeartbeatInterval + b.cfg.Detector.ProbeTimeout
}

// drainDetector wraps the detector's messages into heartbeats, flags the
// leader when it is declared Failed, and returns the members declared
// Failed.
func (b *base) drainDetector() (failed []transport.NodeID) {
	rd := b.det.Ready()
	for _, e := range rd.Messages {
		b.send(e.To, message{kind: kindHeartbeat, inner: e.Payload})
	}
	for _, ev := range rd.Events {
		if ev.Kind != detector.EventFailed {
			continue
		}
		failed = append(failed, ev.Member)
		if ev.Member == b.view.ID {
			b.suspect = true
		}
	}
	return failed
}

// wantsElection reports whether this node should start an election: it
// stands for election, and there is no leader, the leader is held Failed,
// or the leader ranks below this node (a recovered higher node takes over).
func (b *base) wantsElection(now time.Time) bool {
	if !b.candidate || now.Before(b.bootUntil) || b.view.ID == b.self.ID {
		return false
	}
	return b.view.ID == "" || b.suspect || b.higher(b.self.ID, b.view.ID)
}

// settled reports whether the view names a live leader this node defers
// to (or itself), which ends any election it is running.
func (b *base) settled() bool {
	l := b.view.ID
	return l != "" && !b.suspect && (l == b.self.ID || !b.candidate || b.higher(l, b.self.ID))
}

// resign withdraws from candidacy; a leader announces "no leader" for its
// epoch, which outranks its own leadership everywhere (see better).
func (b *base) setCandidate(now time.Time, on bool) bool {
	b.candidate = on
	if on || b.view.ID != b.self.ID {
		return false
	}
	b.adopt(Leader{Epoch: b.view.Epoch}, now)
	b.broadcast(message{kind: kindCoordinator}, now)
	return true
}

// ready hands out the messages, and the State to persist before sending
// them when the highest epoch seen or campaigned for has grown: the view's
// epoch, or round, the epoch the Ring is electing (0 for Bully). Every
// epoch a queued message carries is at most that, so persisting it first
// means no epoch is announced that a restart could forget.
func (b *base) ready(round uint64) Ready {
	r := Ready{Messages: b.out, Leader: b.view}
	b.out = nil
	if hi := max(b.view.Epoch, round); hi > b.saved {
		b.saved = hi
		r.State = State{Epoch: hi}
	}
	return r
}

// Leader returns the core's current view of the leader.
func (b *base) Leader() Leader { return b.view }

// errCoreNotNew is what the methods of a BullyCore or RingCore not made by
// its constructor report; their reads see no leader and no members.
var errCoreNotNew = fmt.Errorf("%w: core not created by NewBullyCore or NewRingCore", ErrInvalidConfig)

// Stats returns the counters so far.
func (b *base) Stats() Stats { return b.stats }

// Members returns the failure detector's view of the other members.
func (b *base) Members(now time.Time) []detector.MemberState { return b.det.Members(now) }

func earliest(ts ...time.Time) time.Time {
	var t time.Time
	for _, x := range ts {
		if !x.IsZero() && (t.IsZero() || x.Before(t)) {
			t = x
		}
	}
	return t
}
