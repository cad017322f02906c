package election

import (
	"time"

	"github.com/distkit/distkit/detector"

	"github.com/distkit/distkit/transport"
)

// RingCore is the deterministic core of ring election (Le Lann 1977;
// Chang and Roberts, "An improved algorithm for decentralized extrema-
// finding in circular configurations of processes", CACM 1979) for one
// node. The ring is the members in ascending priority order, wrapping
// around; a node sends to the next member the failure detector does not
// hold Failed. See the package documentation for the protocol, and Core
// for how to drive it. It is not safe for concurrent use.
type RingCore struct {
	base
	// The round this node takes part in (0: none): the epoch being
	// elected, the highest candidate it has forwarded in it, and when to
	// give up waiting for ELECTED.
	round    uint64
	best     transport.NodeID
	deadline time.Time
	// forwarded is the highest epoch whose ELECTED this node has passed
	// on, so the result circulates exactly once.
	forwarded uint64
	// lastTo and last are the latest ring message sent and its
	// destination: if the detector declares that node Failed before the
	// round is decided, the message is sent again to the next successor
	// instead of waiting RingTimeout for a token that died with it.
	lastTo transport.NodeID
	last   message
}

var _ Core = (*RingCore)(nil)

// NewRingCore returns the Ring core for cfg.ID, booting at now from st,
// the last State its driver made durable (zero for a first boot). seed
// drives the failure detector's jitter.
func NewRingCore(cfg Config, st State, seed uint64, now time.Time) (*RingCore, error) {
	b, err := newBase(cfg, st, seed, now)
	if err != nil {
		return nil, err
	}
	return &RingCore{base: b}, nil
}

// Tick implements Core.
func (c *RingCore) Tick(now time.Time) {
	if c == nil || c.det == nil {
		return
	}
	c.tickDetector(now)
	c.reroute(now, c.drainDetector())
	if c.round != 0 && !now.Before(c.deadline) {
		if c.view.Epoch >= c.round || c.settled() || !c.candidate {
			// Decided (the result reached us by gossip), or the view
			// already names a live leader we defer to, or we do not
			// stand (the candidates will start the next round).
			c.round = 0
		} else {
			// The token or the result was lost (a dropped message, a
			// node that crashed holding it): run a newer round.
			c.stats.Restarts++
			c.start(now, c.round+1)
		}
	}
	c.reconcile(now)
}

// Receive implements Core.
func (c *RingCore) Receive(now time.Time, from transport.NodeID, payload []byte) error {
	if c == nil || c.det == nil {
		return errCoreNotNew
	}
	msg, _, err := c.accept(now, from, payload)
	if err != nil {
		return err
	}
	c.reroute(now, c.drainDetector())
	switch msg.kind {
	case kindRingElection:
		c.onToken(now, msg.round, msg.candidate)
	case kindRingElected:
		if msg.view == c.view && msg.view.Epoch > c.forwarded && c.view.ID != c.self.ID {
			// First sight of this result: pass it on once.
			c.forwarded = msg.view.Epoch
			c.forward(now, message{kind: kindRingElected})
		} else if msg.view != c.view || c.view.ID != c.self.ID {
			c.stats.Stale++
		}
	}
	if c.round != 0 && c.view.Epoch >= c.round {
		c.round = 0
	}
	c.reconcile(now)
	return nil
}

// onToken is Chang and Roberts' rule: forward the larger of the token's
// candidate and ourselves, discard a token that brings nothing larger than
// what we already forwarded in this round, and win when our own candidacy
// comes back.
func (c *RingCore) onToken(now time.Time, round uint64, cand transport.NodeID) {
	if round <= c.view.Epoch || (c.round != 0 && round < c.round) {
		c.stats.Stale++ // a round that is decided or superseded
		return
	}
	if round > c.round {
		c.join(now, round)
	}
	if cand == c.self.ID {
		if c.candidate {
			c.win(now, round)
		}
		return
	}
	best := cand
	if c.candidate && c.higher(c.self.ID, cand) {
		best = c.self.ID
	}
	if best == "" || !c.higher(best, c.best) {
		return // swallowed: a larger candidate already went round
	}
	c.best = best
	c.forward(now, message{kind: kindRingElection, round: round, candidate: best})
}

func (c *RingCore) join(now time.Time, round uint64) {
	c.round, c.best, c.deadline = round, "", now.Add(c.cfg.RingTimeout)
}

// reconcile starts a round when wantsElection says so.
func (c *RingCore) reconcile(now time.Time) {
	if c.round == 0 && c.wantsElection(now) {
		c.start(now, c.view.Epoch+1)
	}
}

// start begins round, sending our own candidacy to the successor. Only
// candidates start rounds (wantsElection and the timeout check it).
func (c *RingCore) start(now time.Time, round uint64) {
	c.stats.Elections++
	c.join(now, round)
	c.best = c.self.ID
	if !c.forward(now, message{kind: kindRingElection, round: round, candidate: c.self.ID}) {
		c.win(now, round) // alone on the ring
	}
}

// win makes this node the leader of epoch round and sends ELECTED round.
func (c *RingCore) win(now time.Time, round uint64) {
	c.stats.Won++
	c.round = 0
	c.forwarded = round
	c.adopt(Leader{ID: c.self.ID, Epoch: round}, now)
	c.forward(now, message{kind: kindRingElected})
}

// forward sends msg to the successor: the next member up the ring that the
// detector does not hold Failed. It reports false when there is none.
func (c *RingCore) forward(now time.Time, msg message) bool {
	if next := c.successor(now); next != "" {
		c.send(next, msg)
		c.lastTo, c.last = next, msg
		return true
	}
	return false
}

// reroute resends the latest ring message when its destination has just
// been declared Failed and the election it belongs to is still open.
func (c *RingCore) reroute(now time.Time, failed []transport.NodeID) {
	for _, id := range failed {
		if id != c.lastTo {
			continue
		}
		c.lastTo = ""
		open := (c.last.kind == kindRingElection && c.round == c.last.round && c.view.Epoch < c.round) ||
			(c.last.kind == kindRingElected && c.view.ID != c.self.ID && c.view.Epoch == c.forwarded)
		if open {
			c.forward(now, c.last)
		}
	}
}

func (c *RingCore) successor(now time.Time) transport.NodeID {
	i := 0
	for c.order[i].ID != c.self.ID {
		i++
	}
	for k := 1; k < len(c.order); k++ {
		m := c.order[(i+k)%len(c.order)]
		if !c.failed(m.ID, now) {
			return m.ID
		}
	}
	return ""
}

// SetCandidate implements Core.
func (c *RingCore) SetCandidate(now time.Time, on bool) {
	if c == nil || c.det == nil {
		return
	}
	c.setCandidate(now, on)
	c.reconcile(now)
}

// Ready implements Core.
//
// A round is an epoch being elected, so the round this node takes part in
// counts toward Ready.State: it is durable before the token leaves.
func (c *RingCore) Ready() Ready {
	if c == nil || c.det == nil {
		return Ready{}
	}
	return c.ready(c.round)
}

// NextTick implements Core.
func (c *RingCore) NextTick() time.Time {
	if c == nil || c.det == nil {
		return time.Time{}
	}
	t := c.det.NextTick()
	if c.round != 0 {
		t = earliest(t, c.deadline)
	}
	if c.view.ID == "" || c.suspect {
		t = earliest(t, c.bootUntil)
	}
	return t
}

// Leader returns the core's current view (none for a core not made by
// NewRingCore).
func (c *RingCore) Leader() Leader {
	if c == nil || c.det == nil {
		return Leader{}
	}
	return c.base.Leader()
}

// Stats returns the core's message and election counts.
func (c *RingCore) Stats() Stats {
	if c == nil || c.det == nil {
		return Stats{}
	}
	return c.base.Stats()
}

// Members returns the failure detector's view of every member at now.
func (c *RingCore) Members(now time.Time) []detector.MemberState {
	if c == nil || c.det == nil {
		return nil
	}
	return c.base.Members(now)
}
