package election

import (
	"time"

	"github.com/distkit/distkit/detector"

	"github.com/distkit/distkit/transport"
)

// bullyState is where a Bully node is in an election.
type bullyState uint8

const (
	bullyIdle     bullyState = iota
	bullyElecting            // sent ELECTION to the higher nodes; waiting for an OK
	bullyAwaiting            // got an OK; waiting for COORDINATOR
)

// BullyCore is the deterministic core of the Bully algorithm (Garcia-Molina,
// "Elections in a Distributed Computing System", IEEE Trans. Computers,
// 1982) for one node. See the package documentation for the protocol, and
// Core for how to drive it. It is not safe for concurrent use.
type BullyCore struct {
	base
	state    bullyState
	deadline time.Time // of the current wait (electing or awaiting)
}

var _ Core = (*BullyCore)(nil)

// NewBullyCore returns the Bully core for cfg.ID, booting at now from st,
// the last State its driver made durable (zero for a first boot). seed
// drives the failure detector's jitter.
func NewBullyCore(cfg Config, st State, seed uint64, now time.Time) (*BullyCore, error) {
	b, err := newBase(cfg, st, seed, now)
	if err != nil {
		return nil, err
	}
	return &BullyCore{base: b}, nil
}

// Tick implements Core.
func (c *BullyCore) Tick(now time.Time) {
	if c == nil || c.det == nil {
		return
	}
	c.tickDetector(now)
	c.drainDetector()
	if c.state != bullyIdle && !now.Before(c.deadline) {
		switch c.state {
		case bullyElecting:
			// No higher node answered within ElectionTimeout: it is ours.
			c.win(now)
		case bullyAwaiting:
			// A higher node answered OK but never announced itself: it
			// may have crashed meanwhile. Start over rather than wait
			// forever for a COORDINATOR that will not come.
			c.stats.Restarts++
			c.state = bullyIdle
			c.elect(now)
		}
	}
	c.reconcile(now)
}

// Receive implements Core.
func (c *BullyCore) Receive(now time.Time, from transport.NodeID, payload []byte) error {
	if c == nil || c.det == nil {
		return errCoreNotNew
	}
	msg, changed, err := c.accept(now, from, payload)
	if err != nil {
		return err
	}
	c.drainDetector()
	switch msg.kind {
	case kindElection:
		c.onElection(now, from)
	case kindOK:
		if c.state == bullyElecting && c.higher(from, c.self.ID) {
			// A higher node is alive and takes over the election.
			c.state, c.deadline = bullyAwaiting, now.Add(c.cfg.CoordinatorTimeout)
		} else if c.state == bullyIdle {
			c.stats.Stale++
		}
	case kindCoordinator:
		if !changed && msg.view != c.view {
			c.stats.Stale++ // from an older election: ignored
		}
	}
	if c.state != bullyIdle && c.settled() {
		c.state = bullyIdle
	}
	c.reconcile(now)
	return nil
}

// onElection answers an ELECTION from a lower node (§3 of the paper: a
// higher node always answers and takes over).
func (c *BullyCore) onElection(now time.Time, from transport.NodeID) {
	if !c.candidate || !c.higher(c.self.ID, from) {
		return // a node that does not stand for election stays silent
	}
	c.send(from, message{kind: kindOK})
	if c.view.ID == c.self.ID {
		// Already the leader: the OK carries our view, which names us, so
		// it ends the asker's election by itself (see base.accept).
		return
	}
	// The classic rule: the answering node holds its own election, unless
	// it knows a live leader above itself (the asker will then time out
	// waiting for COORDINATOR and ask that leader in its next round).
	if c.state == bullyIdle && !(c.settled() && c.higher(c.view.ID, c.self.ID)) {
		c.elect(now)
	}
}

// reconcile starts an election when wantsElection says so.
func (c *BullyCore) reconcile(now time.Time) {
	if c.state == bullyIdle && c.wantsElection(now) {
		c.elect(now)
	}
}

// elect sends ELECTION to every higher node, or wins at once when there is
// none. It asks the nodes the detector holds Failed too: the detector can
// be wrong (see package detector), and a live higher node that is asked
// answers at once, where one that is skipped would have to bully its way
// back with a second election.
func (c *BullyCore) elect(now time.Time) {
	c.stats.Elections++
	sent := false
	for _, m := range c.order {
		if m.Priority > c.self.Priority {
			c.send(m.ID, message{kind: kindElection})
			sent = true
		}
	}
	if !sent {
		c.win(now)
		return
	}
	c.state, c.deadline = bullyElecting, now.Add(c.cfg.ElectionTimeout)
}

// win takes the next epoch and announces it to everyone (higher nodes
// included: one that is alive but missed the ELECTION then bullies).
func (c *BullyCore) win(now time.Time) {
	c.state = bullyIdle
	c.stats.Won++
	c.adopt(Leader{ID: c.self.ID, Epoch: c.view.Epoch + 1}, now)
	for _, m := range c.order {
		if m.ID != c.self.ID {
			c.send(m.ID, message{kind: kindCoordinator})
		}
	}
}

// SetCandidate implements Core.
func (c *BullyCore) SetCandidate(now time.Time, on bool) {
	if c == nil || c.det == nil {
		return
	}
	c.setCandidate(now, on)
	if !on {
		c.state = bullyIdle
	}
	c.reconcile(now)
}

// Ready implements Core.
func (c *BullyCore) Ready() Ready {
	if c == nil || c.det == nil {
		return Ready{}
	}
	return c.ready(0)
}

// NextTick implements Core.
func (c *BullyCore) NextTick() time.Time {
	if c == nil || c.det == nil {
		return time.Time{}
	}
	t := c.det.NextTick()
	if c.state != bullyIdle {
		t = earliest(t, c.deadline)
	}
	if c.view.ID == "" || c.suspect {
		t = earliest(t, c.bootUntil)
	}
	return t
}

// Leader returns the core's current view (none for a core not made by
// NewBullyCore).
func (c *BullyCore) Leader() Leader {
	if c == nil || c.det == nil {
		return Leader{}
	}
	return c.base.Leader()
}

// Stats returns the core's message and election counts.
func (c *BullyCore) Stats() Stats {
	if c == nil || c.det == nil {
		return Stats{}
	}
	return c.base.Stats()
}

// Members returns the failure detector's view of every member at now.
func (c *BullyCore) Members(now time.Time) []detector.MemberState {
	if c == nil || c.det == nil {
		return nil
	}
	return c.base.Members(now)
}
