package raft

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/distkit/distkit/consensus/session"
	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
)

// Simulation parameters. One tick is 10 ms of virtual time, so elections
// time out after 100-200 ms.
const (
	simTick        = 10 * time.Millisecond
	raftService    = "raft"
	kvService      = "kv"
	snapshotKeep   = 2
	clientTimeout  = 150 * time.Millisecond
	clientBackoff  = 20 * time.Millisecond
	clientThinkMax = 30 * time.Millisecond
)

// simConfig is the raft configuration of the simulation: small limits, so
// that byte limits, pipelining limits and chunked snapshots all happen.
func simConfig(id transport.NodeID, peers []transport.NodeID, st Storage, seed uint64) Config {
	cfg := DefaultConfig()
	cfg.ID, cfg.Peers, cfg.Storage, cfg.Seed = id, peers, st, seed
	cfg.HeartbeatTicks = 2
	cfg.MaxMsgBytes = 96
	cfg.MaxInflightMsgs = 4
	cfg.SnapshotThreshold = 20
	cfg.MaxCommittedBytesPerReady = 512
	return cfg
}

// kvServer is one Raft node of the simulated cluster: the runtime duties of
// the package documentation, a kvMachine, and the client protocol.
type kvServer struct {
	c     *simCluster
	id    transport.NodeID
	env   sim.Env
	store *simStore
	rn    *RawNode
	sm    *kvMachine
	// pending maps a log index to the client request proposed there.
	pending map[uint64]pendingRequest
	// lastApplied is the index of the last entry the machine reflects.
	lastApplied uint64
	// checkedCommit is how far the checker verified this node's log.
	checkedCommit uint64
	wasLeader     bool
	// inflight is the Ready whose fsync is in progress (asyncPersist).
	inflight *Ready
	// durableHS is the HardState as of the last completed sync.
	durableHS HardState
	// delayed holds encoded messages held back by simCluster.sendDelay,
	// sent when their timer fires.
	delayed map[sim.TimerID]delayedSend
}

// delayedSend is a raft message waiting for its "delayed" timer.
type delayedSend struct {
	to      transport.NodeID
	payload []byte
}

type pendingRequest struct {
	term   uint64
	client transport.NodeID
	seq    uint64
}

// kvReply is what a server answers a client.
type kvReply struct {
	seq       uint64
	ok        bool
	value     string
	leader    transport.NodeID // hint when !ok
	notLeader bool
	expired   bool // the request's session expired: not applied
}

func (r kvReply) encode() []byte {
	flag := "-"
	if r.ok {
		flag = "ok"
	} else if r.notLeader {
		flag = "nl"
	} else if r.expired {
		flag = "ex"
	}
	return fmt.Appendf(nil, "%d|%s|%s|%s", r.seq, flag, r.leader, r.value)
}

func (s *kvServer) Start(env sim.Env) {
	s.env = env
	s.pending = map[uint64]pendingRequest{}
	st, err := openSimStore(env.Disk())
	if err != nil {
		s.c.fail("%s: open storage: %v", s.id, err)
		return
	}
	s.store = st
	s.durableHS = st.mem.HardState()
	s.sm = newKVMachine()
	snap, _ := st.mem.Snapshot()
	if !snap.IsZero() {
		if err := s.sm.restore(snap.Data); err != nil {
			s.c.fail("%s: restore snapshot: %v", s.id, err)
			return
		}
		s.lastApplied = snap.Meta.Index
	}
	peers, join := s.c.ids, false
	if s.c.initial != nil {
		peers = s.c.initial
		if !slices.Contains(peers, s.id) {
			peers, join = nil, true
		}
	}
	cfg := simConfig(s.id, peers, st.mem, env.Rand().Uint64())
	cfg.Join = join
	if s.c.tweak != nil {
		s.c.tweak(&cfg)
	}
	cfg.Applied = s.lastApplied
	rn, err := NewRawNode(cfg)
	if err != nil {
		s.c.fail("%s: NewRawNode: %v", s.id, err)
		return
	}
	s.rn = rn
	s.c.observeRestart(s)
	env.SetTimer(s.tickInterval(env), "tick")
}

// tickInterval is simTick with ±10% jitter: real timers drift, and nodes
// that tick in lockstep would hide races between their timeouts.
func (s *kvServer) tickInterval(env sim.Env) time.Duration {
	return simTick - simTick/10 + time.Duration(env.Rand().Int64N(int64(simTick/5)))
}

func (s *kvServer) Timer(env sim.Env, id sim.TimerID, name string) {
	if s.rn == nil {
		return
	}
	if name == "fsync" {
		s.fsyncDone()
		return
	}
	if name == "delayed" {
		if d, ok := s.delayed[id]; ok {
			delete(s.delayed, id)
			env.Send(d.to, raftService, d.payload)
		}
		return
	}
	s.rn.Tick()
	env.SetTimer(s.tickInterval(env), "tick")
	s.process()
}

func (s *kvServer) Receive(env sim.Env, msg transport.Message) {
	if s.rn == nil {
		return
	}
	switch msg.Service {
	case raftService:
		var m Message
		if err := m.Unmarshal(msg.Payload); err != nil {
			s.c.fail("%s: undecodable message from %s: %v", s.id, msg.From, err)
			return
		}
		if err := s.rn.Step(m); err != nil {
			s.c.fail("%s: Step(%v from %s): %v", s.id, m.Type, m.From, err)
		}
	case kvService:
		s.handleClient(msg)
	}
	s.process()
}

func (s *kvServer) handleClient(msg transport.Message) {
	cmd, seq, err := prepareProposal(msg.Payload, s.env.Now())
	if err != nil {
		s.c.fail("%s: %v", s.id, err)
		return
	}
	idx, term, err := s.rn.Propose(cmd)
	var nl *NotLeaderError
	switch {
	case errors.As(err, &nl):
		s.env.Send(msg.From, kvService, kvReply{seq: seq, notLeader: true, leader: nl.Leader}.encode())
	case err != nil:
		s.env.Send(msg.From, kvService, kvReply{seq: seq}.encode())
	default:
		s.pending[idx] = pendingRequest{term: term, client: msg.From, seq: seq}
	}
}

// process runs the caller's duties for every Ready, then lets the checker
// look at the node.
func (s *kvServer) process() {
	for s.inflight == nil && s.rn.HasReady() {
		rd, err := s.rn.Ready()
		if err != nil {
			s.c.fail("%s: Ready: %v", s.id, err)
			return
		}
		// 1-3: write.
		if err := s.store.write(&rd); err != nil {
			s.c.fail("%s: write: %v", s.id, err)
			return
		}
		if s.c.asyncPersist && rd.MustSync {
			// The fsync takes a while: the node keeps stepping meanwhile,
			// and (thesis §10.2.1) a leader's appends go out at once
			// unless this Ready changes the term or the vote.
			early := rd.HardState.IsZero() || (rd.HardState.Term == s.durableHS.Term && rd.HardState.Vote == s.durableHS.Vote)
			var later []Message
			for _, m := range rd.Messages {
				if early && (m.Type == MsgApp || m.Type == MsgSnap || m.Type == MsgHeartbeat) {
					s.sendRaft(m)
				} else {
					later = append(later, m)
				}
			}
			rd.Messages = later
			s.inflight = &rd
			s.env.SetTimer(time.Duration(1+s.env.Rand().IntN(15))*time.Millisecond, "fsync")
			s.c.observe(s)
			return
		}
		// 4: sync if needed.
		if rd.MustSync {
			if err := s.store.sync(); err != nil {
				s.c.fail("%s: sync: %v", s.id, err)
				return
			}
		}
		s.finish(&rd)
	}
	s.c.observe(s)
}

// fsyncDone completes an asynchronous Ready: sync, then the rest of the
// duties.
func (s *kvServer) fsyncDone() {
	rd := s.inflight
	if rd == nil {
		return
	}
	if err := s.store.sync(); err != nil {
		s.c.fail("%s: sync: %v", s.id, err)
		return
	}
	s.inflight = nil
	s.finish(rd)
	s.process()
}

func (s *kvServer) sendRaft(m Message) {
	b, err := m.Marshal()
	if err != nil {
		s.c.fail("%s: Marshal: %v", s.id, err)
		return
	}
	if s.c.sendDelay != nil {
		if d := s.c.sendDelay(s.env, m); d > 0 {
			if s.delayed == nil {
				s.delayed = map[sim.TimerID]delayedSend{}
			}
			s.delayed[s.env.SetTimer(d, "delayed")] = delayedSend{to: m.To, payload: b}
			return
		}
	}
	s.env.Send(m.To, raftService, b)
	if m.Type == MsgSnap {
		s.c.coverage.SnapshotChunks++
	}
}

// finish performs duties 5-9 of a persisted Ready.
func (s *kvServer) finish(rd *Ready) {
	if !rd.HardState.IsZero() {
		s.durableHS = rd.HardState
	}
	// 5: send.
	for _, m := range rd.Messages {
		s.sendRaft(m)
	}
	if s.c.onReadStates != nil && len(rd.ReadStates) > 0 {
		s.c.onReadStates(s, rd.ReadStates)
	}
	// 6: restore from a received snapshot.
	if rd.Snapshot != nil {
		if err := s.sm.restore(rd.Snapshot.Data); err != nil {
			s.c.fail("%s: restore: %v", s.id, err)
			return
		}
		s.lastApplied = rd.Snapshot.Meta.Index
		s.c.observeSnapshot(s, rd.Snapshot)
	}
	// 7: apply.
	for _, e := range rd.CommittedEntries {
		s.apply(e)
	}
	// 8: snapshot and compact when due.
	if rd.SnapshotDue {
		// The membership as of the snapshot's index, not the latest
		// (possibly uncommitted) one.
		m, err := s.rn.MembershipAt(s.lastApplied)
		if err != nil {
			s.c.fail("%s: MembershipAt(%d): %v", s.id, s.lastApplied, err)
			return
		}
		s.c.coverage.Compactions++
		if err := s.store.compact(s.lastApplied, m, s.sm.snapshot(), snapshotKeep); err != nil && !errors.Is(err, ErrSnapshotOutOfDate) {
			s.c.fail("%s: compact: %v", s.id, err)
			return
		}
	}
	// 9.
	s.rn.Advance(*rd)
	s.c.observe(s)
}

func (s *kvServer) apply(e Entry) {
	s.c.observeApply(s, e)
	if e.Index != s.lastApplied+1 {
		s.c.fail("%s: applied index %d after %d", s.id, e.Index, s.lastApplied)
	}
	s.lastApplied = e.Index
	p, waiting := s.pending[e.Index]
	delete(s.pending, e.Index)
	if e.Type != EntryNormal {
		return
	}
	r, err := s.sm.apply(e.Index, e.Data)
	if err != nil {
		s.c.fail("%s: %v", s.id, err)
		return
	}
	// Answer only if the entry is the one proposed (same term): otherwise
	// a new leader replaced it and the client will retry.
	if waiting && p.term == e.Term && p.seq == r.seq {
		s.env.Send(p.client, kvService, kvReply{seq: r.seq, ok: !r.expired, expired: r.expired, value: r.value}.encode())
	}
}

// kvClient issues one request at a time to the cluster, retrying on
// timeouts and redirects until it succeeds. It first registers a session
// through the log and sends every request in it: a retry carries the same
// (session, seq) stamp, so a request that was applied already is answered
// from the session cache instead of being applied again (thesis §6.3).
// With plain set it uses no session and retries a timed-out request as a
// fresh command: the old failure, which TestSimWithoutSessionsIsNotLinearizable
// shows.
type kvClient struct {
	c       *simCluster
	index   int
	id      transport.NodeID
	seq     uint64
	cur     *kvCommand
	op      int // index of cur in c.history
	target  int
	timer   sim.TimerID
	stopped bool
	// done counts completed operations.
	done int

	plain   bool   // no sessions: each retry is a new command
	session uint64 // the registered session (0: none yet, or expired)
	req     []byte // the request being sent: the same bytes on every retry
	want    uint64 // the sequence number the reply to req carries (0: a registration)
	// ambiguous is set when an attempt of cur timed out: it may have been
	// applied.
	ambiguous bool
}

func (k *kvClient) Start(env sim.Env) {
	env.SetTimer(time.Duration(env.Rand().Int64N(int64(clientThinkMax))), "next")
}

func (k *kvClient) Timer(env sim.Env, id sim.TimerID, name string) {
	switch name {
	case "next":
		if k.stopped {
			return
		}
		k.issue(env)
	case "timeout":
		if k.cur != nil && id == k.timer {
			k.target = (k.target + 1) % len(k.c.ids)
			if k.want != 0 {
				k.ambiguous = true
				if k.plain {
					k.prepare() // a fresh command
				}
			}
			k.send(env)
		}
	case "retry":
		if k.cur != nil && id == k.timer {
			k.send(env)
		}
	}
}

func (k *kvClient) issue(env sim.Env) {
	k.seq++
	key := fmt.Sprintf("k%d", env.Rand().IntN(3))
	cmd := kvCommand{Op: 'g', Client: k.index, Seq: k.seq, Key: key}
	if env.Rand().IntN(2) == 0 {
		cmd.Op = 'p'
		cmd.Value = fmt.Sprintf("c%d-%d", k.index, k.seq)
	}
	k.cur = &cmd
	k.ambiguous = false
	k.op = k.c.call(k.index, cmd, env.Now())
	k.prepare()
	k.send(env)
}

// prepare sets req to what must be sent for cur next: a registration if
// the client has no session, else cur stamped with the session (or, plain,
// cur as a new command).
func (k *kvClient) prepare() {
	switch {
	case k.plain:
		k.seq++
		k.cur.Seq = k.seq
		k.req, k.want = kvRequest(0, 0, *k.cur), k.seq
	case k.session == 0:
		k.req, k.want = session.AppendRegister(nil), 0
	default:
		// One request at a time: every earlier one is acknowledged.
		k.req, k.want = kvRequest(k.session, k.cur.Seq, *k.cur), k.cur.Seq
	}
}

func (k *kvClient) send(env sim.Env) {
	env.Send(k.c.ids[k.target], kvService, k.req)
	k.timer = env.SetTimer(clientTimeout, "timeout")
}

func (k *kvClient) Receive(env sim.Env, msg transport.Message) {
	var seq uint64
	var flag, leader, value string
	parts := strings.SplitN(string(msg.Payload), "|", 4)
	if len(parts) != 4 {
		k.c.fail("%s: bad reply %q", k.id, msg.Payload)
		return
	}
	if _, err := fmt.Sscan(parts[0], &seq); err != nil || k.cur == nil || seq != k.want {
		return // a reply to an earlier attempt
	}
	flag, leader, value = parts[1], parts[2], parts[3]
	switch {
	case flag == "ok" && k.want == 0: // registered
		id, err := strconv.ParseUint(value, 10, 64)
		if err != nil || id == 0 {
			k.c.fail("%s: bad session %q", k.id, value)
			return
		}
		k.session = id
		k.prepare()
		k.send(env)
	case flag == "ok":
		k.c.ret(k.op, value, env.Now())
		k.finish(env)
	case flag == "ex":
		// The session expired. If an earlier attempt may have been
		// applied, its result is gone: the outcome stays unknown. Else
		// the request was certainly not applied: send it in a new session.
		k.session = 0
		if k.ambiguous {
			k.finish(env)
			return
		}
		k.prepare()
		k.send(env)
	case flag == "nl":
		if i := slices.Index(k.c.ids, transport.NodeID(leader)); i >= 0 {
			k.target = i
		} else {
			k.target = (k.target + 1) % len(k.c.ids)
		}
		k.timer = env.SetTimer(clientBackoff, "retry")
	default:
		k.timer = env.SetTimer(clientBackoff, "retry")
	}
}

// finish ends the current operation and schedules the next.
func (k *kvClient) finish(env sim.Env) {
	k.cur = nil
	k.timer = 0
	k.done++
	env.SetTimer(time.Duration(env.Rand().Int64N(int64(clientThinkMax))), "next")
}
