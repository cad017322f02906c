package lock

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
)

// The simulation drives the lock table as a service node, clients that
// follow the Session's rules (keepalive every TTL/3, lease bound = send
// time of the last acknowledged renewal + TTL − margin, measured on the
// client's own clock), and a fenced resource, over sim's faulty network,
// with client pauses longer than the TTL. Every node reads its own sim
// clock (sim.Clock: an offset and a drift), so the server measures the
// lease and the client its bound on different clocks, as in production.

// simBudget bounds every lock simulation's events: a 10 s run of six nodes
// takes about 11,000 events, so a broken rule that busy-loops (a watchdog
// re-armed every nanosecond because the lease never ends) stops with
// sim.ErrBudget, the seed and the step instead of hanging the test.
const simBudget = 200_000

const (
	simTTL    = 300 * time.Millisecond
	simMargin = simTTL / 10
	simLock   = "x"
	svcID     = transport.NodeID("svc")
	resID     = transport.NodeID("res")
)

// simServer is the lock service: a Table on the service's clock.
type simServer struct {
	table   *Table
	waiting map[waitKey][]pendingReply // queued acquires to answer on grant
	timer   sim.TimerID
	armed   time.Time
}

type pendingReply struct {
	to transport.NodeID
	id uint64
}

func newSimServer(delay time.Duration) *simServer {
	cfg := DefaultTableConfig()
	cfg.LockDelay = delay
	t, _ := NewTable(cfg)
	return &simServer{table: t, waiting: map[waitKey][]pendingReply{}}
}

func (s *simServer) Start(env sim.Env) {}

func (s *simServer) Receive(env sim.Env, msg transport.Message) {
	id, n := binary.Uvarint(msg.Payload)
	if n <= 0 {
		return
	}
	req, err := DecodeRequest(msg.Payload[n:])
	if err != nil {
		return
	}
	resp, err := apply(s.table, env.Now(), req)
	if err == nil && req.Op == OpAcquire && !resp.Granted {
		key := waitKey{req.Session, req.Name}
		s.waiting[key] = append(s.waiting[key], pendingReply{msg.From, id})
	} else {
		s.reply(env, msg.From, id, resp, err)
	}
	s.after(env)
}

func (s *simServer) Timer(env sim.Env, _ sim.TimerID, _ string) {
	s.armed = time.Time{}
	s.table.Tick(env.Now())
	s.after(env)
}

func (s *simServer) reply(env sim.Env, to transport.NodeID, id uint64, resp Response, err error) {
	env.Send(to, "reply", appendResponse(binary.AppendUvarint(nil, id), resp, err))
}

// after answers the waiters of new grants and arms the expiry timer.
func (s *simServer) after(env sim.Env) {
	for _, g := range s.table.Granted() {
		key := waitKey{g.Session, g.Name}
		for _, p := range s.waiting[key] {
			s.reply(env, p.to, p.id, Response{Granted: true, Grant: g}, nil)
		}
		delete(s.waiting, key)
	}
	if d, ok := s.table.NextDeadline(); ok && (s.armed.IsZero() || d.Before(s.armed)) {
		if !s.armed.IsZero() {
			env.CancelTimer(s.timer)
		}
		s.armed = d
		s.timer = env.SetTimer(max(d.Sub(env.Now()), 0), "expire")
	}
}

// simResource is a store guarded by a Fence; it logs what it accepted.
type simResource struct {
	fence    Fence
	accepted []Token
	rejected []Token
}

func (r *simResource) Start(sim.Env)                      {}
func (r *simResource) Timer(sim.Env, sim.TimerID, string) {}
func (r *simResource) Receive(env sim.Env, msg transport.Message) {
	tok, n := binary.Uvarint(msg.Payload)
	if n <= 0 {
		return
	}
	if r.fence.Check(Token(tok)) != nil {
		r.rejected = append(r.rejected, Token(tok))
		return
	}
	r.accepted = append(r.accepted, Token(tok))
}

// belief is an interval of global time during which a client believed it
// held the lock: from learning of the grant to its release or its bound.
type belief struct {
	client     transport.NodeID
	token      Token
	start, end time.Time
}

// simClient follows the Session's rules. It reads its own sim clock, which
// runs at rate 1+drift relative to the virtual time and starts offset
// ahead of it (addClient installs the clock).
type simClient struct {
	s        *sim.Sim // to convert its clock readings to virtual time for the checks
	id       transport.NodeID
	offset   time.Duration
	servers  []transport.NodeID // the service's members; nil means svcID alone
	target   int                // index in servers of the member believed to lead
	drift    float64
	auto     bool          // lock, work, unlock in a loop
	maxPause time.Duration // longest random pause; 0 for none
	pauseP   float64       // probability of a pause before a write

	session   SessionID
	nextSess  uint64
	bound     leaseBound
	open      bool // session acknowledged and not lost
	sent      map[uint64]sentReq
	nextReq   uint64
	holding   bool
	token     Token
	since     time.Time // virtual time the current belief started
	beliefs   []belief
	lost      int
	pausedTil time.Time       // local time the client's process resumes
	frozen    []func(sim.Env) // events that arrived during a pause
	watchdog  sim.TimerID
	retry     sim.TimerID
	writes    int
}

type sentReq struct {
	req  Request
	sent time.Time // local clock
}

// addClient adds c to s as node id, on a clock with c's offset and drift.
func addClient(s *sim.Sim, id transport.NodeID, c *simClient) {
	c.s, c.id = s, id
	s.SetClock(id, sim.Clock{Offset: c.offset, Drift: c.drift})
	s.AddNode(id, func() sim.Node { return c })
}

// virtual returns the virtual time at which the client's clock reads local.
func (c *simClient) virtual(local time.Time) time.Time { return c.s.VirtualTime(c.id, local) }

// boundGlobal is the virtual time at which the client's clock reaches the bound.
func (c *simClient) boundGlobal() time.Time { return c.virtual(c.bound.until) }

func (c *simClient) valid(env sim.Env) bool { return c.open && c.bound.valid(env.Now()) }

func (c *simClient) Start(env sim.Env) {
	c.sent = map[uint64]sentReq{}
	c.retry = env.SetTimer(50*time.Millisecond, "retry")
	if c.auto {
		c.openSession(env)
	}
}

func (c *simClient) openSession(env sim.Env) {
	c.nextSess++
	c.session = SessionID(uint64(env.ID()[1])<<32 | c.nextSess)
	c.bound = leaseBound{ttl: simTTL, margin: simMargin}
	c.open = false
	clear(c.sent)
	c.send(env, Request{Op: OpOpen, Session: c.session, TTL: simTTL})
}

func (c *simClient) send(env sim.Env, req Request) {
	c.nextReq++
	c.sent[c.nextReq] = sentReq{req, env.Now()}
	to := svcID
	if len(c.servers) > 0 {
		to = c.servers[c.target]
	}
	env.Send(to, "lock", AppendRequest(binary.AppendUvarint(nil, c.nextReq), req))
}

// paused defers fn if the process is paused.
func (c *simClient) paused(env sim.Env, fn func(sim.Env)) bool {
	if env.Now().Before(c.pausedTil) {
		c.frozen = append(c.frozen, fn)
		return true
	}
	return false
}

func (c *simClient) pause(env sim.Env, d time.Duration) {
	c.pausedTil = env.Now().Add(d)
	env.SetTimer(d, "wake")
}

func (c *simClient) Timer(env sim.Env, id sim.TimerID, name string) {
	if name == "wake" {
		if env.Now().Before(c.pausedTil) {
			return
		}
		frozen := c.frozen
		c.frozen = nil
		for _, fn := range frozen {
			fn(env)
		}
		return
	}
	if c.paused(env, func(env sim.Env) { c.Timer(env, id, name) }) {
		return
	}
	switch name {
	case "retry": // retransmit what is unanswered; all requests are idempotent
		c.retry = env.SetTimer(50*time.Millisecond, "retry")
		if len(c.sent) > 0 && len(c.servers) > 0 {
			c.target = (c.target + 1) % len(c.servers) // the leader may be gone: try the next
		}
		for _, id := range sortedIDs(c.sent) {
			r := c.sent[id]
			if env.Now().Sub(r.sent) >= 50*time.Millisecond {
				delete(c.sent, id)
				c.send(env, r.req)
			}
		}
	case "keepalive":
		if c.open {
			c.send(env, Request{Op: OpKeepAlive, Session: c.session})
			env.SetTimer(simTTL/3, "keepalive")
		}
	case "watchdog":
		if c.open && !c.valid(env) {
			c.loseLease(env)
		} else if c.open {
			c.armWatchdog(env)
		}
	case "work": // the critical section: check the lease, maybe pause, write
		if !c.holding || !c.valid(env) {
			return
		}
		c.writes++
		if c.maxPause > 0 && env.Rand().Float64() < c.pauseP {
			// A GC pause between the check and the write (Kleppmann).
			c.pause(env, time.Duration(env.Rand().Int64N(int64(c.maxPause))))
		}
		c.writeAndGoOn(env)
	case "relock":
		// One acquire at a time, as Session reserves the name: a second
		// one could overtake the release of the grant the first obtains.
		acquiring := slices.ContainsFunc(sortedIDs(c.sent), func(id uint64) bool { return c.sent[id].req.Op == OpAcquire })
		if c.open && !c.holding && !acquiring {
			c.send(env, Request{Op: OpAcquire, Session: c.session, Name: simLock})
		} else if !c.open && c.auto {
			c.openSession(env)
		}
	}
}

// write sends a write to the resource with the token, without re-checking
// the lease: whatever happened since the check is the resource's problem.
func (c *simClient) write(env sim.Env) {
	if c.paused(env, c.write) {
		return
	}
	env.Send(resID, "write", binary.AppendUvarint(nil, uint64(c.token)))
}

// writeAndGoOn writes, then unlocks or schedules more work.
func (c *simClient) writeAndGoOn(env sim.Env) {
	if c.paused(env, c.writeAndGoOn) {
		return
	}
	c.write(env)
	switch {
	case !c.valid(env):
		if c.open {
			c.loseLease(env)
		}
	case env.Rand().IntN(3) == 0:
		c.unlock(env)
	default:
		env.SetTimer(time.Duration(env.Rand().Int64N(int64(simTTL))), "work")
	}
}

func (c *simClient) armWatchdog(env sim.Env) {
	env.CancelTimer(c.watchdog)
	d := c.bound.until.Sub(env.Now())
	c.watchdog = env.SetTimer(max(d+1, 1), "watchdog") // +1 ns: never re-arm for the same instant after rounding
}

// endBelief ends the current belief at at, or at the bound if that came
// first: past its bound a client no longer believes it holds the lock.
func (c *simClient) endBelief(at time.Time) {
	if b := c.boundGlobal(); at.After(b) {
		at = b
	}
	if c.holding {
		c.beliefs = append(c.beliefs, belief{c.sessionName(), c.token, c.since, at})
		c.holding = false
	}
}

func (c *simClient) sessionName() transport.NodeID {
	return transport.NodeID(fmt.Sprintf("session-%x", uint64(c.session)))
}

func (c *simClient) loseLease(env sim.Env) {
	if !c.open {
		return
	}
	c.endBelief(c.boundGlobal())
	c.open = false
	c.lost++
	if c.auto {
		env.SetTimer(time.Duration(env.Rand().Int64N(int64(simTTL))), "relock")
	}
}

func (c *simClient) unlock(env sim.Env) {
	if !c.holding {
		return
	}
	c.endBelief(c.virtual(env.Now()))
	// Like Session, the client asks for the lock again only once the
	// release is acknowledged: a re-acquire overtaking its own release would
	// get the old grant back and then see it released.
	c.send(env, Request{Op: OpRelease, Session: c.session, Name: simLock, Token: c.token})
}

func (c *simClient) Receive(env sim.Env, msg transport.Message) {
	if c.paused(env, func(env sim.Env) { c.Receive(env, msg) }) {
		return
	}
	id, n := binary.Uvarint(msg.Payload)
	if n <= 0 {
		return
	}
	r, ok := c.sent[id]
	if !ok {
		return // a duplicate, or an answer to an abandoned session
	}
	delete(c.sent, id)
	resp, err := decodeResponse(msg.Payload[n:])
	if r.req.Session != c.session {
		return
	}
	var nl *errNotLeader
	if errors.As(err, &nl) {
		if i := slices.Index(c.servers, transport.NodeID(nl.hint)); i >= 0 {
			c.target = i
		} else if len(c.servers) > 0 {
			c.target = (c.target + 1) % len(c.servers)
		}
		c.send(env, r.req) // a new request ID, a new send time
		return
	}
	switch r.req.Op {
	case OpOpen, OpKeepAlive:
		if err != nil {
			if c.open {
				c.loseLease(env)
			}
			return
		}
		if r.req.Op == OpOpen && !c.open {
			c.open = true
			env.SetTimer(simTTL/3, "keepalive")
			if c.auto {
				c.send(env, Request{Op: OpAcquire, Session: c.session, Name: simLock})
			}
		}
		if !c.bound.acked(r.sent, env.Now()) || !c.valid(env) { // acknowledged too late to help
			c.loseLease(env)
			return
		}
		c.armWatchdog(env)
	case OpRelease:
		if c.auto {
			env.SetTimer(time.Duration(env.Rand().Int64N(int64(simTTL/2))), "relock")
		}
	case OpAcquire:
		if err != nil || !resp.Granted || c.holding || !c.valid(env) {
			return
		}
		c.holding, c.token, c.since = true, resp.Grant.Token, c.virtual(env.Now())
		env.SetTimer(time.Duration(env.Rand().Int64N(int64(simTTL/2))), "work")
	}
}

func sortedIDs(m map[uint64]sentReq) []uint64 {
	ids := make([]uint64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// checkBeliefs verifies that no two beliefs overlap and that tokens rise
// in the order the beliefs began.
func checkBeliefs(t *testing.T, all []belief) {
	t.Helper()
	if err := beliefsOverlap(all); err != nil {
		t.Fatal(err)
	}
}

// errOverlap is wrapped by beliefsOverlap's errors.
var errOverlap = errors.New("mutual exclusion violated")

// beliefsOverlap returns an error wrapping errOverlap if two beliefs
// overlap or tokens do not rise in the order the beliefs began.
func beliefsOverlap(all []belief) error {
	slices.SortFunc(all, func(a, b belief) int { return a.start.Compare(b.start) })
	for i := 1; i < len(all); i++ {
		prev, cur := all[i-1], all[i]
		if cur.start.Before(prev.end) {
			return fmt.Errorf("%w: %s believed it held %q (token %d) from %v while %s still did (token %d, until %v)",
				errOverlap, cur.client, simLock, cur.token, cur.start.Format("15:04:05.000"), prev.client, prev.token,
				prev.end.Format("15:04:05.000"))
		}
		if cur.token <= prev.token {
			return fmt.Errorf("%w: token %d granted after token %d", errOverlap, cur.token, prev.token)
		}
	}
	return nil
}

// runAndCheck runs s for d, then checks the clients' beliefs and the
// resource, and returns how many grants were believed and how many stale
// writes the resource rejected.
func runAndCheck(t *testing.T, s *sim.Sim, d time.Duration, clients []*simClient, res *simResource) (grants, rejected int) {
	t.Helper()
	s.Run(d)
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	var all []belief
	for _, c := range clients {
		c.endBelief(s.Now())
		all = append(all, c.beliefs...)
	}
	checkBeliefs(t, all)
	checkResource(t, res)
	return len(all), len(res.rejected)
}

func checkResource(t *testing.T, r *simResource) {
	t.Helper()
	if !slices.IsSorted(r.accepted) {
		t.Fatalf("resource accepted tokens out of order: %v", r.accepted)
	}
}

func TestSimMutualExclusion(t *testing.T) {
	scenarios := []struct {
		name       string
		faults     sim.Faults
		maxPause   time.Duration
		partitions bool
		lockDelay  time.Duration
	}{
		{"pauses longer than the TTL", sim.Faults{MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}, 3 * simTTL, false, 0},
		{"message loss", sim.Faults{Drop: 0.2, Duplicate: 0.1, MinDelay: time.Millisecond, MaxDelay: 30 * time.Millisecond, Reorder: 0.1}, 0, false, 0},
		{"partitions", sim.Faults{MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond}, 0, true, 0},
		{"everything with lock-delay", sim.Faults{Drop: 0.1, Duplicate: 0.05, MinDelay: time.Millisecond, MaxDelay: 20 * time.Millisecond}, 2 * simTTL, true, simTTL / 2},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			grants, rejected := 0, 0
			sim.Seeds(t, 16, func(t *testing.T, seed int64) {
				s, err := sim.New(sim.Config{Seed: seed, Faults: sc.faults, MaxEvents: simBudget})
				if err != nil {
					t.Fatal(err)
				}
				s.AddNode(svcID, func() sim.Node { return newSimServer(sc.lockDelay) })
				res := &simResource{}
				s.AddNode(resID, func() sim.Node { return res })
				var clients []*simClient
				var ids []transport.NodeID
				for i := range 4 {
					id := transport.NodeID(fmt.Sprint("c", i))
					// Drift within ±2%: the 10% margin covers it.
					c := &simClient{auto: true, maxPause: sc.maxPause, pauseP: 0.3, drift: float64(i-2) / 100}
					clients = append(clients, c)
					ids = append(ids, id)
					addClient(s, id, c)
				}
				if sc.partitions {
					for k := range 6 {
						s.At(time.Duration(k+1)*time.Second, func() {
							victim := ids[k%len(ids)]
							s.Partition([]transport.NodeID{victim}, append([]transport.NodeID{svcID, resID}, slices.DeleteFunc(slices.Clone(ids), func(id transport.NodeID) bool { return id == victim })...))
						})
						s.At(time.Duration(k+1)*time.Second+2*simTTL, s.Heal)
					}
				}
				g, r := runAndCheck(t, s, 10*time.Second, clients, res)
				grants, rejected = grants+g, rejected+r
			})
			if grants < 20 {
				t.Errorf("only %d grants over all seeds: the scenario exercises too little", grants)
			}
			if sc.maxPause > 0 && rejected == 0 {
				t.Errorf("no stale write was ever rejected: the pauses never outlived a lease")
			}
		})
	}
}

// TestSimDeterministic checks the simulation replays event for event.
func TestSimDeterministic(t *testing.T) {
	run := func() uint64 {
		s, _ := sim.New(sim.Config{Seed: 7, MaxEvents: simBudget, Faults: sim.Faults{Drop: 0.1, MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond}})
		s.AddNode(svcID, func() sim.Node { return newSimServer(0) })
		s.AddNode(resID, func() sim.Node { return &simResource{} })
		for i := range 3 {
			c := &simClient{auto: true, maxPause: simTTL * 2, pauseP: 0.3}
			addClient(s, transport.NodeID(fmt.Sprint("c", i)), c)
		}
		s.Run(3 * time.Second)
		return s.TraceHash()
	}
	if a, b := run(), run(); a != b {
		t.Errorf("two runs of seed 7 differ: trace hashes %x and %x", a, b)
	}
}

// TestSimFIFOGrants queues clients one after another behind a holder and
// checks the lock is granted in arrival order.
func TestSimFIFOGrants(t *testing.T) {
	sim.Seeds(t, 4, func(t *testing.T, seed int64) {
		s, _ := sim.New(sim.Config{Seed: seed, MaxEvents: simBudget, Faults: sim.Faults{MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}})
		srv := newSimServer(0)
		s.AddNode(svcID, func() sim.Node { return srv })
		s.AddNode(resID, func() sim.Node { return &simResource{} })
		var clients []*simClient
		for i := range 5 {
			c := &simClient{}
			clients = append(clients, c)
			id := transport.NodeID(fmt.Sprint("c", i))
			addClient(s, id, c)
			s.Inject(id, c.openSession)
		}
		s.Run(100 * time.Millisecond)
		// Queue in a seeded order, 20 ms apart (well beyond the latency).
		order := rand.New(rand.NewPCG(uint64(seed), 0)).Perm(len(clients))
		for k, i := range order {
			c, id := clients[i], transport.NodeID(fmt.Sprint("c", i))
			s.At(time.Duration(k)*20*time.Millisecond, func() {
				s.Inject(id, func(env sim.Env) { c.send(env, Request{Op: OpAcquire, Session: c.session, Name: simLock}) })
			})
		}
		var granted []int
		for range clients {
			ok := s.RunUntil(func() bool {
				for i, c := range clients {
					if c.holding {
						granted = append(granted, i)
						return true
					}
				}
				return false
			}, 2*time.Second)
			if !ok {
				t.Fatalf("no grant after %v; granted so far %v", 2*time.Second, granted)
			}
			c := clients[granted[len(granted)-1]]
			s.Inject(transport.NodeID(fmt.Sprint("c", granted[len(granted)-1])), c.unlock)
		}
		if !slices.Equal(granted, order) {
			t.Errorf("grant order %v; want arrival order %v", granted, order)
		}
	})
}

// TestKleppmannPausedClientIsFenced is the scenario of Kleppmann's "How to
// do distributed locking": client 1 holds the lock, checks its lease, and
// pauses (a GC pause) past the lease's expiry; client 2 acquires the lock
// and writes; client 1 wakes and writes with its old token. The resource
// rejects that write by its token.
func TestKleppmannPausedClientIsFenced(t *testing.T) {
	s, _ := sim.New(sim.Config{Seed: 1, MaxEvents: simBudget, Faults: sim.Faults{MinDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}})
	s.AddNode(svcID, func() sim.Node { return newSimServer(0) })
	res := &simResource{}
	s.AddNode(resID, func() sim.Node { return res })
	c1, c2 := &simClient{}, &simClient{}
	addClient(s, "c1", c1)
	addClient(s, "c2", c2)
	s.Inject("c1", c1.openSession)
	s.Run(50 * time.Millisecond)
	s.Inject("c1", func(env sim.Env) { c1.send(env, Request{Op: OpAcquire, Session: c1.session, Name: simLock}) })
	if !s.RunUntil(func() bool { return c1.holding }, time.Second) {
		t.Fatal("client 1 never got the lock")
	}
	s.Inject("c1", func(env sim.Env) {
		if !c1.valid(env) {
			t.Fatal("client 1's lease is not valid right after the grant")
		}
		c1.pause(env, 3*simTTL) // the lease check passed; now the GC pause
		c1.write(env)           // runs when the pause ends, with the old token
	})
	s.Inject("c2", c2.openSession)
	s.Run(50 * time.Millisecond)
	s.Inject("c2", func(env sim.Env) { c2.send(env, Request{Op: OpAcquire, Session: c2.session, Name: simLock}) })
	if !s.RunUntil(func() bool { return c2.holding }, 2*simTTL) {
		t.Fatal("client 2 never got the lock after client 1's lease expired")
	}
	s.Inject("c2", c2.write)
	s.Run(4 * simTTL) // client 1 wakes and writes
	if c2.token <= c1.token {
		t.Fatalf("client 2's token %d is not above client 1's %d", c2.token, c1.token)
	}
	onlyC2 := len(res.accepted) > 0 && !slices.ContainsFunc(res.accepted, func(tok Token) bool { return tok != c2.token })
	if !onlyC2 || !slices.Equal(res.rejected, []Token{c1.token}) {
		t.Errorf("resource accepted %v and rejected %v; want only client 2's token %d accepted and client 1's %d rejected",
			res.accepted, res.rejected, c2.token, c1.token)
	}
	if c1.lost != 1 {
		t.Errorf("client 1 noticed %d lost leases on waking; want 1", c1.lost)
	}
}
