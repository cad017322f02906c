package detector

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/distkit/distkit/transport"
)

// Membership is the deterministic core of failure detection for one node:
// it decides when to heartbeat, judges every member with its own detector,
// probes suspects directly and through k other members (SWIM's indirect
// probes), refutes suspicions of itself with a higher incarnation, and
// reports status changes as Events.
//
// It does no I/O, starts no goroutines, reads no clock and draws randomness
// only from its seed: the caller feeds it time (Tick), messages (Receive)
// and membership changes, and collects what it produced with Ready. The
// same inputs give the same outputs, so it runs unchanged in the sim
// package and under the Monitor runtime.
//
// A Membership is not safe for concurrent use; its driver serializes calls.
// Build one with NewMembership: a zero Membership monitors nobody, ignores
// Tick and refuses AddMember and Receive with errZeroMembership.
type Membership struct {
	self transport.NodeID
	cfg  Config
	rng  *rand.Rand

	// (incarnation, seq) stamps every message sent. The incarnation starts
	// at the boot time in Unix nanoseconds, so a restarted node outranks
	// everything its previous life said without stable storage, and grows
	// by one on each refutation.
	incarnation uint64
	seq         uint64

	members map[transport.NodeID]*member
	order   []*member // sorted by ID, for deterministic iteration

	nextHeartbeat time.Time
	nextCheck     time.Time

	nextProbe uint64
	relays    map[uint64]relay // probes this node runs for others, by its own probe ID

	out   []Envelope
	evs   []Event
	stats MembershipStats
}

// Envelope is a message the driver must send: Payload to member To on
// Service. The driver owns Payload once Ready returns it.
type Envelope struct {
	To      transport.NodeID
	Payload []byte
}

// Ready is the output accumulated since the previous call to
// Membership.Ready.
type Ready struct {
	// Messages to send, best effort, on Service.
	Messages []Envelope
	// Events in the order they happened.
	Events []Event
}

// MembershipStats counts what a Membership has done.
type MembershipStats struct {
	HeartbeatsSent   uint64 // heartbeats to members, one per member per interval
	PingsSent        uint64 // direct probes of suspects
	PingReqsSent     uint64 // indirect probe requests to helpers
	RelaysServed     uint64 // probes run on behalf of other nodes
	Refutations      uint64 // times this node raised its incarnation to refute a rumour
	Suspicions       uint64 // members moved to Suspect
	Failures         uint64 // members declared Failed
	Recoveries       uint64 // Failed members heard from again
	Malformed        uint64 // messages dropped as undecodable
	StaleOrDuplicate uint64 // messages no newer than what was already heard from their sender
	UnknownSenders   uint64 // messages from nodes that are not members (answered, not judged)
}

// member is what a node knows about one other node.
type member struct {
	id     transport.NodeID
	status Status
	det    peerDetector

	heard     bool      // (inc, seq) below are set
	inc, seq  uint64    // freshest stamp heard from the member, directly or relayed
	probeID   uint64    // the probe round under way while Suspect
	probeEnds time.Time // Suspect: when the round ends unanswered
	reprobeAt time.Time // Suspect: the second attempt; Failed: the next round
}

// relay is an indirect probe this node runs for a requester.
type relay struct {
	requester transport.NodeID
	probe     uint64 // the requester's probe ID
	target    transport.NodeID
	expires   time.Time
}

// errZeroMembership is returned by the methods of a zero Membership.
var errZeroMembership = fmt.Errorf("%w: zero Membership; use NewMembership", ErrInvalidConfig)

// maxRelays bounds the indirect probes served at once, so a flood of
// requests cannot grow memory without limit.
const maxRelays = 4096

// NewMembership returns the core for node self, starting at now with no
// members. seed drives jitter and the choice of helpers.
func NewMembership(self transport.NodeID, cfg Config, seed uint64, now time.Time) (*Membership, error) {
	if self == "" {
		return nil, fmt.Errorf("%w: empty node ID", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Membership{
		self:    self,
		cfg:     cfg,
		rng:     rand.New(rand.NewPCG(seed, 0xde7ec70)),
		members: make(map[transport.NodeID]*member),
		relays:  make(map[uint64]relay),
	}
	if ns := now.UnixNano(); ns > 0 {
		m.incarnation = uint64(ns)
	}
	// The first heartbeat goes out at a random point of the first interval,
	// so nodes started together do not heartbeat together.
	m.nextHeartbeat = now.Add(time.Duration(m.rng.Int64N(int64(cfg.HeartbeatInterval)) + 1))
	m.nextCheck = now.Add(cfg.CheckInterval)
	return m, nil
}

// ID returns the node this core runs for.
func (m *Membership) ID() transport.NodeID {
	if m == nil {
		return ""
	}
	return m.self
}

// Incarnation returns this node's current incarnation.
func (m *Membership) Incarnation() uint64 {
	if m == nil {
		return 0
	}
	return m.incarnation
}

// AddMember starts monitoring id at now. The member starts Alive, and its
// silence is timed from now, so a member that is never heard from is
// suspected after the usual delay.
func (m *Membership) AddMember(id transport.NodeID, now time.Time) error {
	if m == nil {
		return errNilDetector
	}
	switch {
	case m.rng == nil:
		return errZeroMembership
	case id == "":
		return fmt.Errorf("%w: empty member ID", ErrInvalidConfig)
	case len(id) > maxTargetLen:
		return fmt.Errorf("%w: member ID of %d bytes; at most %d", ErrInvalidConfig, len(id), maxTargetLen)
	case id == m.self:
		return fmt.Errorf("%w: %q", ErrSelf, id)
	case m.members[id] != nil:
		return fmt.Errorf("%w: %q", ErrDuplicateMember, id)
	}
	det, err := newPeerDetector(m.cfg)
	if err != nil {
		return err
	}
	det.touch(now)
	mb := &member{id: id, status: Alive, det: det}
	m.members[id] = mb
	i, _ := slices.BinarySearchFunc(m.order, id, func(a *member, id transport.NodeID) int {
		return cmpID(a.id, id)
	})
	m.order = slices.Insert(m.order, i, mb)
	return nil
}

// RemoveMember stops monitoring id; no event is emitted for it.
func (m *Membership) RemoveMember(id transport.NodeID) error {
	if m == nil {
		return errNilDetector
	}
	if m.members[id] == nil {
		return fmt.Errorf("%w: %q", ErrUnknownMember, id)
	}
	delete(m.members, id)
	m.order = slices.DeleteFunc(m.order, func(a *member) bool { return a.id == id })
	return nil
}

func cmpID(a, b transport.NodeID) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// MemberState is a snapshot of one member.
type MemberState struct {
	ID          transport.NodeID
	Status      Status
	Phi         float64 // as in Event.Phi, at the time of the snapshot
	Incarnation uint64  // as last heard
}

// Members returns every member's state at now, sorted by ID.
func (m *Membership) Members(now time.Time) []MemberState {
	if m == nil {
		return nil
	}
	out := make([]MemberState, len(m.order))
	for i, mb := range m.order {
		out[i] = MemberState{ID: mb.id, Status: mb.status, Phi: mb.det.level(now), Incarnation: mb.inc}
	}
	return out
}

// Member returns one member's state at now.
func (m *Membership) Member(id transport.NodeID, now time.Time) (MemberState, error) {
	if m == nil {
		return MemberState{}, errNilDetector
	}
	mb := m.members[id]
	if mb == nil {
		return MemberState{}, fmt.Errorf("%w: %q", ErrUnknownMember, id)
	}
	return MemberState{ID: mb.id, Status: mb.status, Phi: mb.det.level(now), Incarnation: mb.inc}, nil
}

// Stats returns the counters so far.
func (m *Membership) Stats() MembershipStats {
	if m == nil {
		return MembershipStats{}
	}
	return m.stats
}

// NextTick returns the time by which Tick must be called next. Calling it
// earlier or more often is harmless.
func (m *Membership) NextTick() time.Time {
	if m == nil {
		return time.Time{}
	}
	if m.nextCheck.Before(m.nextHeartbeat) {
		return m.nextCheck
	}
	return m.nextHeartbeat
}

// Ready returns the messages and events produced since the last call and
// hands their ownership to the caller.
func (m *Membership) Ready() Ready {
	if m == nil {
		return Ready{}
	}
	r := Ready{Messages: m.out, Events: m.evs}
	m.out, m.evs = nil, nil
	return r
}

// Tick advances the core to now: it sends the heartbeats that are due and
// runs the checks that are due.
func (m *Membership) Tick(now time.Time) {
	if m == nil {
		return
	}
	if m.rng == nil {
		return // a zero Membership
	}
	if !now.Before(m.nextHeartbeat) {
		m.heartbeat(now)
		m.nextHeartbeat = now.Add(m.jittered())
	}
	if !now.Before(m.nextCheck) {
		m.check(now)
		m.nextCheck = now.Add(m.cfg.CheckInterval)
	}
}

// jittered returns the next heartbeat interval, uniform in
// HeartbeatInterval·(1 ± Jitter).
func (m *Membership) jittered() time.Duration {
	f := 1 + m.cfg.Jitter*(2*m.rng.Float64()-1)
	return max(time.Duration(f*float64(m.cfg.HeartbeatInterval)), 1)
}

// heartbeat sends a heartbeat to every member, Failed ones included so
// they can come back, and runs the fixed-timeout detectors' probes, which
// happen once per heartbeat interval.
func (m *Membership) heartbeat(now time.Time) {
	for _, mb := range m.order {
		m.send(mb.id, message{kind: kindHeartbeat})
		m.stats.HeartbeatsSent++
		mb.det.probe(now)
	}
}

// probeAttempts is how many times a suspect is probed (directly and through
// helpers) within ProbeTimeout: the second attempt, halfway through, squares
// the already small chance that every path loses a message.
const probeAttempts = 2

// failedReprobeIntervals is how often, in heartbeat intervals, a Failed
// member is probed again through the others. A member that cannot reach
// this node directly (a one-way cut) would otherwise stay Failed forever
// though it is alive and reachable through the others.
const failedReprobeIntervals = 5

// check consults every detector, starts probe rounds for new suspects,
// repeats them, and declares Failed the suspects whose round ended
// unanswered.
func (m *Membership) check(now time.Time) {
	for _, mb := range m.order {
		switch mb.status {
		case Alive:
			if mb.det.suspect(now) {
				m.suspect(mb, now)
			}
		case Suspect:
			switch {
			case !now.Before(mb.probeEnds):
				mb.status = Failed
				mb.reprobeAt = now.Add(failedReprobeIntervals * m.cfg.HeartbeatInterval)
				m.stats.Failures++
				m.emit(mb, EventFailed, now)
			case !now.Before(mb.reprobeAt):
				mb.reprobeAt = mb.probeEnds // no more attempts in this round
				m.probe(mb)
			}
		case Failed:
			if !now.Before(mb.reprobeAt) {
				mb.reprobeAt = now.Add(failedReprobeIntervals * m.cfg.HeartbeatInterval)
				m.nextProbe++
				mb.probeID = m.nextProbe
				m.probe(mb)
			}
		}
	}
	for id, r := range m.relays {
		if !now.Before(r.expires) {
			delete(m.relays, id)
		}
	}
}

// suspect moves mb to Suspect and starts a probe round. Any answer, or any
// newer message from mb, refutes the suspicion.
func (m *Membership) suspect(mb *member, now time.Time) {
	mb.status = Suspect
	m.nextProbe++
	mb.probeID = m.nextProbe
	mb.probeEnds = now.Add(m.cfg.ProbeTimeout)
	mb.reprobeAt = now.Add(m.cfg.ProbeTimeout / probeAttempts)
	m.stats.Suspicions++
	m.emit(mb, EventSuspect, now)
	m.probe(mb)
}

// probe sends one probe attempt: a direct ping that carries the rumour, and
// k ping requests to randomly chosen Alive members (SWIM §3.1).
func (m *Membership) probe(mb *member) {
	m.send(mb.id, message{kind: kindPing, probe: mb.probeID, rumour: mb.inc})
	m.stats.PingsSent++
	for _, h := range m.helpers(mb.id) {
		m.send(h, message{kind: kindPingReq, probe: mb.probeID, rumour: mb.inc, target: mb.id})
		m.stats.PingReqsSent++
	}
}

// helpers picks up to IndirectProbes Alive members other than target,
// uniformly at random (a partial Fisher-Yates shuffle).
func (m *Membership) helpers(target transport.NodeID) []transport.NodeID {
	k := m.cfg.IndirectProbes
	if k == 0 {
		return nil
	}
	cands := make([]transport.NodeID, 0, len(m.order))
	for _, mb := range m.order {
		if mb.id != target && mb.status == Alive {
			cands = append(cands, mb.id)
		}
	}
	k = min(k, len(cands))
	for i := range k {
		j := i + m.rng.IntN(len(cands)-i)
		cands[i], cands[j] = cands[j], cands[i]
	}
	return cands[:k]
}

// Receive handles a message on Service from node from, delivered at now.
// A malformed payload is counted, reported as an error wrapping
// ErrMalformed and otherwise ignored; the core's state is unchanged.
func (m *Membership) Receive(now time.Time, from transport.NodeID, payload []byte) error {
	if m == nil {
		return errNilDetector
	}
	if m.rng == nil {
		return errZeroMembership
	}
	if from == m.self || from == "" {
		return nil
	}
	msg, err := decode(payload)
	if err != nil {
		m.stats.Malformed++
		return fmt.Errorf("%w (from %q)", err, from)
	}
	// Any message is evidence of life from its sender; only heartbeats are
	// samples of the heartbeat interval.
	m.evidence(from, msg.incarnation, msg.seq, now, msg.kind == kindHeartbeat)

	switch msg.kind {
	case kindPing:
		m.refuteIfSuspected(msg.rumour)
		m.send(from, message{kind: kindAck, probe: msg.probe})
	case kindAck:
		if r, ok := m.relays[msg.probe]; ok && r.target == from {
			delete(m.relays, msg.probe)
			m.send(r.requester, message{kind: kindIndirectAck, probe: r.probe,
				target: from, targetInc: msg.incarnation, targetSeq: msg.seq})
		}
	case kindPingReq:
		if msg.target == m.self {
			// Asked to probe ourselves: answer for ourselves.
			m.refuteIfSuspected(msg.rumour)
			m.send(from, message{kind: kindAck, probe: msg.probe})
			return nil
		}
		if len(m.relays) >= maxRelays {
			return nil
		}
		m.nextProbe++
		m.relays[m.nextProbe] = relay{requester: from, probe: msg.probe, target: msg.target,
			expires: now.Add(m.cfg.ProbeTimeout)}
		m.stats.RelaysServed++
		m.send(msg.target, message{kind: kindPing, probe: m.nextProbe, rumour: msg.rumour})
	case kindIndirectAck:
		if msg.target != m.self {
			m.evidence(msg.target, msg.targetInc, msg.targetSeq, now, false)
		}
	}
	return nil
}

// refuteIfSuspected raises this node's incarnation when a rumour suspects
// its current incarnation, and tells every member at once. A rumour about
// an older incarnation has already been refuted and is ignored: old
// rumours lose (SWIM §4.2).
//
// A rumour above the current incarnation is legitimate: it names a previous
// life that booted with a later clock reading. The refutation then jumps
// past it. Only the largest value is refused, since nothing can outrank it.
func (m *Membership) refuteIfSuspected(rumour uint64) {
	if rumour < m.incarnation || rumour == math.MaxUint64 {
		return
	}
	m.incarnation = rumour + 1
	m.stats.Refutations++
	for _, mb := range m.order {
		m.send(mb.id, message{kind: kindAlive})
	}
}

// evidence records that id was alive when it sent the message stamped
// (inc, seq). Only a stamp newer than every one heard before counts: a
// delayed or duplicated copy says nothing about now.
func (m *Membership) evidence(id transport.NodeID, inc, seq uint64, now time.Time, isHeartbeat bool) {
	mb := m.members[id]
	if mb == nil {
		m.stats.UnknownSenders++
		return
	}
	if mb.heard && (inc < mb.inc || inc == mb.inc && seq <= mb.seq) {
		m.stats.StaleOrDuplicate++
		return
	}
	mb.heard, mb.inc, mb.seq = true, inc, seq
	if isHeartbeat {
		mb.det.heartbeat(now)
	} else {
		mb.det.touch(now)
	}
	switch mb.status {
	case Suspect:
		mb.status = Alive
		m.emit(mb, EventAlive, now)
	case Failed:
		if mb.det.recovered(now) {
			mb.status = Alive
			m.stats.Recoveries++
			m.emit(mb, EventRecovered, now)
		}
	}
}

// send stamps msg and queues it for to.
func (m *Membership) send(to transport.NodeID, msg message) {
	m.seq++
	msg.incarnation, msg.seq = m.incarnation, m.seq
	m.out = append(m.out, Envelope{To: to, Payload: msg.encode()})
}

func (m *Membership) emit(mb *member, kind EventKind, now time.Time) {
	m.evs = append(m.evs, Event{Member: mb.id, Kind: kind, At: now, Phi: mb.det.level(now), Incarnation: mb.inc})
}
