package lock

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
)

// simRaftServer is one member of a replicated lock service in the
// simulator: the Raft core (consensus/raft) with the lock StateMachine,
// serving the same client protocol as simServer. Its MemoryStorage lives
// outside the instance and is updated before any message is sent, so it
// plays a disk that is synced at every Ready and survives crashes. Each
// member's clock is offset from the simulation's, so leaders stamp
// commands from different clocks and the rebase on a new term matters.
type simRaftServer struct {
	id     transport.NodeID
	peers  []transport.NodeID
	store  *raft.MemoryStorage
	offset time.Duration

	rn      *raft.RawNode
	sm      *StateMachine
	leader  transport.NodeID
	role    raft.Role
	pending map[uint64]simProposal // by log index
	waiting map[waitKey][]simWaiter
}

type simProposal struct {
	term uint64
	to   transport.NodeID
	id   uint64
	req  Request
}

type simWaiter struct {
	to    transport.NodeID
	id    uint64
	grant chan Grant
}

func (s *simRaftServer) now(env sim.Env) time.Time { return env.Now().Add(s.offset) }

func (s *simRaftServer) Start(env sim.Env) {
	cfg := raft.DefaultConfig()
	cfg.ID, cfg.Peers, cfg.Storage = s.id, s.peers, s.store
	cfg.SnapshotThreshold = 0
	cfg.Seed = env.Rand().Uint64()
	rn, err := raft.NewRawNode(cfg)
	if err != nil {
		env.Logf("raft: %v", err)
		return
	}
	s.rn = rn
	s.sm, _ = NewStateMachine(DefaultTableConfig())
	s.pending = map[uint64]simProposal{}
	s.waiting = map[waitKey][]simWaiter{}
	env.SetTimer(10*time.Millisecond, "tick")
	env.SetTimer(50*time.Millisecond, "clock")
}

func (s *simRaftServer) Timer(env sim.Env, _ sim.TimerID, name string) {
	switch name {
	case "tick":
		s.rn.Tick()
		env.SetTimer(10*time.Millisecond, "tick")
	case "clock": // the leader proposes its time so leases expire
		if s.role == raft.Leader && s.sm.Sessions() > 0 {
			s.rn.Propose(encodeCommand(s.now(env), Request{Op: opTick}))
		}
		env.SetTimer(50*time.Millisecond, "clock")
	}
	s.process(env)
}

func (s *simRaftServer) Receive(env sim.Env, msg transport.Message) {
	switch msg.Service {
	case "raft":
		var m raft.Message
		if m.Unmarshal(msg.Payload) == nil {
			s.rn.Step(m)
		}
	case "lock":
		id, n := binary.Uvarint(msg.Payload)
		if n <= 0 {
			return
		}
		req, err := DecodeRequest(msg.Payload[n:])
		if err != nil {
			return
		}
		if s.role != raft.Leader {
			env.Send(msg.From, "reply", append(binary.AppendUvarint(nil, id), notLeaderResponse(string(s.leader))...))
			return
		}
		index, term, err := s.rn.Propose(encodeCommand(s.now(env), req))
		if err != nil {
			return // the client retries
		}
		s.pending[index] = simProposal{term: term, to: msg.From, id: id, req: req}
	}
	s.process(env)
}

func (s *simRaftServer) process(env sim.Env) {
	for s.rn.HasReady() {
		rd, err := s.rn.Ready()
		if err != nil {
			env.Logf("raft: %v", err)
			return
		}
		if rd.SoftState != nil {
			s.role, s.leader = rd.SoftState.Role, rd.SoftState.Leader
		}
		s.store.Append(rd.Entries)
		if !rd.HardState.IsZero() {
			s.store.SetHardState(rd.HardState)
		}
		for i := range rd.Messages {
			b, err := rd.Messages[i].Marshal()
			if err == nil {
				env.Send(rd.Messages[i].To, "raft", b)
			}
		}
		for _, e := range rd.CommittedEntries {
			if e.Type != raft.EntryNormal {
				continue
			}
			v := s.sm.Apply(consensus.Entry{Index: e.Index, Term: e.Term, Command: e.Data})
			p, ok := s.pending[e.Index]
			if !ok {
				continue
			}
			delete(s.pending, e.Index)
			r, isResult := v.(applied)
			if p.term != e.Term || !isResult {
				continue // another leader's entry took the index: the client retries
			}
			if r.err == nil && p.req.Op == OpAcquire && !r.resp.Granted {
				key := waitKey{p.req.Session, p.req.Name}
				s.waiting[key] = append(s.waiting[key], simWaiter{p.to, p.id, s.sm.watch(key.session, key.name)})
				continue
			}
			env.Send(p.to, "reply", appendResponse(binary.AppendUvarint(nil, p.id), r.resp, r.err))
		}
		s.rn.Advance(rd)
	}
	// Answer waiters whose grant this replica has applied.
	keys := make([]waitKey, 0, len(s.waiting))
	for k := range s.waiting {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b waitKey) int {
		if c := cmp.Compare(a.session, b.session); c != 0 {
			return c
		}
		return cmp.Compare(a.name, b.name)
	})
	for _, k := range keys {
		ws := s.waiting[k]
		var g Grant
		select {
		case g = <-ws[0].grant:
		default:
			continue
		}
		for _, w := range ws {
			s.sm.unwatch(k.session, k.name, w.grant)
			env.Send(w.to, "reply", appendResponse(binary.AppendUvarint(nil, w.id), Response{Granted: true, Grant: g}, nil))
		}
		delete(s.waiting, k)
	}
}

// TestSimReplicatedMutualExclusion runs the lock clients against a
// three-member replicated service whose leader is crashed and restarted
// repeatedly (and members' clocks disagree by up to 80 ms), over a lossy
// network, with client pauses longer than the TTL.
func TestSimReplicatedMutualExclusion(t *testing.T) {
	grants, rejected := 0, 0
	// 8 seeds by default (five leader crashes each, so 40 fail-overs with
	// clients pausing and losing leases around them); DISTKIT_SOAK=1 runs
	// fifty times as many.
	sim.Seeds(t, 8, func(t *testing.T, seed int64) {
		s, err := sim.New(sim.Config{Seed: seed, MaxEvents: simBudget, Faults: sim.Faults{
			Drop: 0.05, Duplicate: 0.02, MinDelay: time.Millisecond, MaxDelay: 8 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		members := []transport.NodeID{"s1", "s2", "s3"}
		servers := map[transport.NodeID]func() *simRaftServer{}
		for i, id := range members {
			store := raft.NewMemoryStorage()
			offset := time.Duration(i-1) * 40 * time.Millisecond
			var current *simRaftServer
			servers[id] = func() *simRaftServer { return current }
			s.AddNode(id, func() sim.Node {
				current = &simRaftServer{id: id, peers: members, store: store, offset: offset}
				return current
			})
		}
		res := &simResource{}
		s.AddNode(resID, func() sim.Node { return res })
		var clients []*simClient
		for i := range 3 {
			c := &simClient{servers: members, auto: true, maxPause: 2 * simTTL, pauseP: 0.2, drift: float64(i-1) / 100}
			clients = append(clients, c)
			addClient(s, transport.NodeID(fmt.Sprint("c", i)), c)
		}
		// Crash whoever leads every 1.5 s and restart it 400 ms later.
		for k := range 5 {
			s.At(time.Duration(k+1)*1500*time.Millisecond, func() {
				for _, id := range members {
					if srv := servers[id](); srv != nil && s.Node(id) != nil && srv.role == raft.Leader {
						s.Crash(id)
						s.At(400*time.Millisecond, func() { s.Restart(id) })
						return
					}
				}
			})
		}
		g, r := runAndCheck(t, s, 9*time.Second, clients, res)
		grants, rejected = grants+g, rejected+r
	})
	if grants < 20 {
		t.Errorf("only %d grants over all seeds: the scenario exercises too little", grants)
	}
	t.Logf("%d grants, %d stale writes rejected", grants, rejected)
}

// TestSimReplicatedDeterministic checks the replicated simulation replays
// event for event (no map order or real time leaks into the nodes).
func TestSimReplicatedDeterministic(t *testing.T) {
	run := func() uint64 {
		s, _ := sim.New(sim.Config{Seed: 3, MaxEvents: simBudget, Faults: sim.Faults{Drop: 0.05, MinDelay: time.Millisecond, MaxDelay: 8 * time.Millisecond}})
		members := []transport.NodeID{"s1", "s2", "s3"}
		for _, id := range members {
			store := raft.NewMemoryStorage()
			s.AddNode(id, func() sim.Node { return &simRaftServer{id: id, peers: members, store: store} })
		}
		s.AddNode(resID, func() sim.Node { return &simResource{} })
		for i := range 3 {
			c := &simClient{servers: members, auto: true, maxPause: 2 * simTTL, pauseP: 0.2}
			addClient(s, transport.NodeID(fmt.Sprint("c", i)), c)
		}
		s.At(time.Second, func() { s.Crash("s1") })
		s.At(1500*time.Millisecond, func() { s.Restart("s1") })
		s.Run(3 * time.Second)
		return s.TraceHash()
	}
	if a, b := run(), run(); a != b {
		t.Errorf("two runs of seed 3 differ: trace hashes %x and %x", a, b)
	}
}
