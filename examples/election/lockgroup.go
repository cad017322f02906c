package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/distkit/distkit/election"
	"github.com/distkit/distkit/lock"
	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
)

// The fourth method the textbook compares (§6.4.5): election through a
// lock service. Every candidate opens a session with a lease and queues for
// one lock; the holder leads and its fencing token is the epoch. When the
// leader dies its lease expires at the service, the next session in the
// FIFO queue gets the lock with a higher token, and the service tells the
// other candidates (a watch, as ZooKeeper and etcd offer). This is what
// lock.Elector does over a lock.Service; here the service is one simulated
// node around the same lock.Table core that lock.Local and the replicated
// lock.Server run (in production it is itself replicated with Raft).

const (
	lockService   = transport.NodeID("svc")
	leaderLock    = "leader"
	lockTTL       = 300 * time.Millisecond // the lease: detection takes up to this long
	lockKeepAlive = 100 * time.Millisecond // like the detectors' 100 ms heartbeats
)

// sessionOf maps a candidate to its session ID (n3 → 3): IDs are chosen by
// the opener. A restarted candidate opens a new session (a new incarnation).
func sessionOf(id transport.NodeID, incarnation int) lock.SessionID {
	n, _ := strconv.Atoi(strings.TrimPrefix(string(id), "n"))
	return lock.SessionID(incarnation*100 + n)
}

// lockServiceNode hosts the lock table.
type lockServiceNode struct {
	g        *group
	table    *lock.Table
	watchers map[transport.NodeID]lock.SessionID // candidates to tell about a new holder, by their latest session
	timer    sim.TimerID
}

func (s *lockServiceNode) Start(env sim.Env) {
	t, err := lock.NewTable(lock.DefaultTableConfig())
	if err != nil {
		env.Logf("lock table: %v", err)
		return
	}
	s.table = t
}

func (s *lockServiceNode) Receive(env sim.Env, msg transport.Message) {
	f := strings.Fields(string(msg.Payload))
	if len(f) != 2 || s.table == nil {
		return
	}
	id, _ := strconv.ParseUint(f[1], 10, 64)
	sid, now := lock.SessionID(id), env.Now()
	switch f[0] {
	case "KEEPALIVE":
		_, _ = s.table.KeepAlive(now, sid)
	case "CAMPAIGN": // open the session and queue for the lock, in one message
		if _, err := s.table.Open(now, sid, string(msg.From), lockTTL); err != nil {
			return
		}
		s.watch(msg.From, sid)
		g, granted, err := s.table.Acquire(now, sid, leaderLock, true)
		switch {
		case err != nil:
		case granted:
			s.announce(env, g)
		default:
			if h, ok := s.table.Holder(leaderLock); ok {
				s.send(env, msg.From, h) // the watch's first answer: who leads now
			}
		}
	}
	s.expire(env)
}

func (s *lockServiceNode) Timer(env sim.Env, _ sim.TimerID, _ string) {
	s.timer = 0
	s.expire(env)
}

// expire lets the table expire leases up to now, announces the grants
// that made, and sets a timer for the next deadline.
func (s *lockServiceNode) expire(env sim.Env) {
	s.table.Tick(env.Now())
	for _, g := range s.table.Granted() {
		s.announce(env, g)
	}
	if d, ok := s.table.NextDeadline(); ok && s.timer == 0 {
		s.timer = env.SetTimer(max(d.Sub(env.Now()), time.Millisecond), "expire")
	}
}

func (s *lockServiceNode) watch(id transport.NodeID, sid lock.SessionID) {
	if s.watchers == nil {
		s.watchers = map[transport.NodeID]lock.SessionID{}
	}
	s.watchers[id] = sid
}

// announce tells every watcher whose session is alive (the new holder
// included) who holds the lock; a watch ends with its session. Watchers
// are told in ID order so that a seed replays the same run.
func (s *lockServiceNode) announce(env sim.Env, g lock.Grant) {
	ids := make([]transport.NodeID, 0, len(s.watchers))
	for id := range s.watchers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if _, alive := s.table.Expires(s.watchers[id]); alive {
			s.send(env, id, g)
		}
	}
}

func (s *lockServiceNode) send(env sim.Env, to transport.NodeID, g lock.Grant) {
	s.g.record(fmt.Sprintf("%s → %s  LEADER %s token %d", lockService, to, g.Owner, g.Token))
	env.Send(to, "lock", []byte(fmt.Sprintf("LEADER %s %d", g.Owner, g.Token)))
}

// lockCandidate campaigns through the service and keeps its lease alive.
type lockCandidate struct {
	g           *group
	id          transport.NodeID
	boots       *int // survives a crash, like a disk: the incarnation count
	session     lock.SessionID
	view        election.Leader
	keepaliveID sim.TimerID
}

func (c *lockCandidate) Start(env sim.Env) {
	*c.boots++
	c.session = sessionOf(c.id, *c.boots)
	c.view = election.Leader{}
	c.g.record(fmt.Sprintf("%s → %s  CAMPAIGN session %d", c.id, lockService, c.session))
	env.Send(lockService, "lock", []byte(fmt.Sprintf("CAMPAIGN %d", c.session)))
	c.keepaliveID = env.SetTimer(lockKeepAlive, "keepalive")
}

func (c *lockCandidate) Receive(env sim.Env, msg transport.Message) {
	f := strings.Fields(string(msg.Payload))
	if len(f) != 3 || f[0] != "LEADER" {
		return
	}
	token, _ := strconv.ParseUint(f[2], 10, 64)
	if token >= c.view.Epoch { // tokens only grow: ignore a reordered older one
		c.view = election.Leader{ID: transport.NodeID(f[1]), Epoch: token}
	}
}

func (c *lockCandidate) Timer(env sim.Env, _ sim.TimerID, _ string) {
	env.Send(lockService, "lock", []byte(fmt.Sprintf("KEEPALIVE %d", c.session))) // a heartbeat: not counted
	c.keepaliveID = env.SetTimer(lockKeepAlive, "keepalive")
}

// newLockGroup runs the lock-based election among ids, with the service
// as one more simulated node.
func newLockGroup(seed int64, ids []transport.NodeID) (*group, error) {
	s, err := sim.New(sim.Config{Seed: seed, Faults: network})
	if err != nil {
		return nil, err
	}
	g := &group{s: s, ids: ids}
	if err := s.AddNode(lockService, func() sim.Node { return &lockServiceNode{g: g} }); err != nil {
		return nil, err
	}
	for _, id := range ids {
		boots := new(int)
		if err := s.AddNode(id, func() sim.Node { return &lockCandidate{g: g, id: id, boots: boots} }); err != nil {
			return nil, err
		}
	}
	g.view = func(id transport.NodeID) election.Leader {
		if n, ok := s.Node(id).(*lockCandidate); ok {
			return n.view
		}
		return election.Leader{}
	}
	return g, nil
}
