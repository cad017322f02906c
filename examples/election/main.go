// Command election runs five nodes with each leader-election algorithm in
// turn, Bully, Ring and Raft, in the deterministic simulator: it elects a
// leader, kills it, shows the messages of the new election and its result,
// restarts the old leader, and ends with a side-by-side table of election
// time (simulated) and messages per algorithm.
//
//	go run ./examples/election            # seed 1
//	go run ./examples/election -seed 7    # another reproducible run
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/election"
	"github.com/distkit/distkit/election/electionsim"
	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
)

func main() {
	seed := flag.Int64("seed", 1, "seed for the simulation; the same seed gives the same run")
	flag.Parse()
	if err := run(os.Stdout, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "election:", err)
		os.Exit(1)
	}
}

var ids = []transport.NodeID{"n1", "n2", "n3", "n4", "n5"}

// network is a LAN with a little jitter and no loss, so every run of a
// seed is the same and the counts are the algorithms', not the faults'.
var network = sim.Faults{MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}

// group is one algorithm's five nodes in a simulator, as the example sees
// them: who each node thinks leads, and the election messages sent.
type group struct {
	s      *sim.Sim
	view   func(id transport.NodeID) election.Leader
	sent   int      // election messages sent so far (not heartbeats)
	trace  []string // election messages since the last reset
	tracer bool
}

func (g *group) record(line string) {
	g.sent++
	if g.tracer {
		g.trace = append(g.trace, line)
	}
}

// agreed reports the leader every live node names, if they agree.
func (g *group) agreed(down transport.NodeID) (election.Leader, bool) {
	var want election.Leader
	first := true
	for _, id := range ids {
		if id == down {
			continue
		}
		l := g.view(id)
		if first {
			want, first = l, false
		}
		if l != want || !l.Known() {
			return want, false
		}
	}
	return want, true
}

// await runs the simulation until the live nodes agree on a leader with an
// epoch above after, and returns it with the simulated time it took.
func (g *group) await(down transport.NodeID, after uint64) (election.Leader, time.Duration, error) {
	start := g.s.Now()
	ok := g.s.RunUntil(func() bool {
		l, ok := g.agreed(down)
		return ok && l.Epoch > after
	}, 10*time.Second)
	l, _ := g.agreed(down)
	if !ok {
		return l, 0, fmt.Errorf("no agreement within 10s of simulated time")
	}
	return l, g.s.Now().Sub(start), nil
}

// newElectorGroup runs Bully or Ring (via electionsim).
func newElectorGroup(seed int64, newNode func(election.Config) *electionsim.Node) (*group, error) {
	s, err := sim.New(sim.Config{Seed: seed, Faults: network})
	if err != nil {
		return nil, err
	}
	g := &group{s: s}
	for _, id := range ids {
		cfg := election.DefaultConfig()
		cfg.ID, cfg.Members = id, election.MembersByOrder(ids...)
		err := s.AddNode(id, func() sim.Node {
			n := newNode(cfg)
			n.OnSend = func(from, to transport.NodeID, payload []byte) {
				if d := election.DescribeMessage(payload); d != "HEARTBEAT" {
					g.record(fmt.Sprintf("%s → %s  %s", from, to, d))
				}
			}
			return n
		})
		if err != nil {
			return nil, err
		}
	}
	g.view = func(id transport.NodeID) election.Leader {
		if n, ok := s.Node(id).(*electionsim.Node); ok {
			return n.Leader()
		}
		return election.Leader{}
	}
	return g, nil
}

// raftNode drives a consensus/raft core in the simulator: leader = Raft
// leader, epoch = term, as election.NewRaft reports for a consensus.Node.
// Its storage lives outside the node, so it survives a crash like a disk.
type raftNode struct {
	g     *group
	id    transport.NodeID
	store *raft.MemoryStorage
	rn    *raft.RawNode
}

func (n *raftNode) Start(env sim.Env) {
	cfg := raft.DefaultConfig()
	cfg.ID, cfg.Peers, cfg.Storage, cfg.Seed = n.id, ids, n.store, env.Rand().Uint64()
	rn, err := raft.NewRawNode(cfg)
	if err != nil {
		env.Logf("raft: %v", err)
		return
	}
	n.rn = rn
	env.SetTimer(10*time.Millisecond, "tick")
}

func (n *raftNode) Receive(env sim.Env, msg transport.Message) {
	if n.rn == nil {
		return
	}
	var m raft.Message
	if err := m.Unmarshal(msg.Payload); err == nil {
		_ = n.rn.Step(m)
	}
	n.ready(env)
}

func (n *raftNode) Timer(env sim.Env, _ sim.TimerID, _ string) {
	n.rn.Tick()
	env.SetTimer(10*time.Millisecond, "tick")
	n.ready(env)
}

// ready does the caller's duties of package raft: persist, then send.
func (n *raftNode) ready(env sim.Env) {
	for n.rn.HasReady() {
		rd, err := n.rn.Ready()
		if err != nil {
			return
		}
		if !rd.HardState.IsZero() {
			_ = n.store.SetHardState(rd.HardState)
		}
		_ = n.store.Append(rd.Entries)
		for _, m := range rd.Messages {
			if strings.Contains(m.Type.String(), "Vote") {
				n.g.record(fmt.Sprintf("%s → %s  %s term %d", m.From, m.To, m.Type, m.Term))
			}
			b, err := m.Marshal()
			if err == nil {
				env.Send(m.To, "raft", b)
			}
		}
		n.rn.Advance(rd)
	}
}

func newRaftGroup(seed int64) (*group, error) {
	s, err := sim.New(sim.Config{Seed: seed, Faults: network})
	if err != nil {
		return nil, err
	}
	g := &group{s: s}
	stores := map[transport.NodeID]*raft.MemoryStorage{}
	for _, id := range ids {
		stores[id] = raft.NewMemoryStorage()
		if err := s.AddNode(id, func() sim.Node { return &raftNode{g: g, id: id, store: stores[id]} }); err != nil {
			return nil, err
		}
	}
	g.view = func(id transport.NodeID) election.Leader {
		n, ok := s.Node(id).(*raftNode)
		if !ok || n.rn == nil {
			return election.Leader{}
		}
		st := n.rn.Status()
		return election.Leader{ID: st.Leader, Epoch: st.Term}
	}
	return g, nil
}

// row is one algorithm's line of the final table.
type row struct {
	name                 string
	firstTime, failTime  time.Duration
	firstMsgs, failMsgs  int
	failedOver, returned election.Leader
}

func run(out io.Writer, seed int64) error {
	algorithms := []struct {
		name  string
		about string
		build func() (*group, error)
	}{
		{"bully", "the highest live priority wins; priorities n1 < n2 < … < n5",
			func() (*group, error) { return newElectorGroup(seed, electionsim.NewBully) }},
		{"ring", "a token carries the highest candidate round the ring n1 → n2 → … → n5 → n1",
			func() (*group, error) { return newElectorGroup(seed, electionsim.NewRing) }},
		{"raft", "whoever first wins a majority of votes; epoch = term",
			func() (*group, error) { return newRaftGroup(seed) }},
	}
	var rows []row
	for _, alg := range algorithms {
		fmt.Fprintf(out, "== %s: %s\n", alg.name, alg.about)
		g, err := alg.build()
		if err != nil {
			return err
		}
		r := row{name: alg.name}

		first, took, err := g.await("", 0)
		if err != nil {
			return fmt.Errorf("%s: first election: %w", alg.name, err)
		}
		r.firstTime, r.firstMsgs = took, g.sent
		fmt.Fprintf(out, "elected %s (epoch %d) after %v, %d election messages\n", first.ID, first.Epoch, took.Round(time.Millisecond), g.sent)
		g.s.Run(time.Second)

		old := first.ID
		fmt.Fprintf(out, "crash %s; the new election:\n", old)
		g.sent, g.tracer, g.trace = 0, true, nil
		g.s.Crash(old)
		next, took, err := g.await(old, first.Epoch)
		if err != nil {
			return fmt.Errorf("%s: after the crash: %w", alg.name, err)
		}
		g.s.Run(200 * time.Millisecond) // let the last messages land
		for _, line := range g.trace {
			fmt.Fprintf(out, "    %s\n", line)
		}
		r.failTime, r.failMsgs, r.failedOver = took, g.sent, next
		fmt.Fprintf(out, "%s leads (epoch %d), %v after the crash, %d election messages\n", next.ID, next.Epoch, took.Round(time.Millisecond), g.sent)

		g.tracer = false
		g.s.Restart(old)
		// It boots from the epoch (term) on its disk, not from 0, with no
		// leader known yet: epochs never go back at a node.
		boot := g.view(old)
		back, _, err := g.await("", 0)
		if err == nil && alg.name != "raft" && back.ID != old {
			back, _, err = g.await("", back.Epoch)
		}
		if err != nil {
			return fmt.Errorf("%s: after the restart: %w", alg.name, err)
		}
		r.returned = back
		fmt.Fprintf(out, "restart %s (boots at epoch %d from its disk): %s leads (epoch %d)\n\n", old, boot.Epoch, back.ID, back.Epoch)
		rows = append(rows, r)
	}

	fmt.Fprintln(out, "== side by side (5 nodes; simulated time; election messages exclude heartbeats)")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "algorithm\tfirst election\tmessages\tfailover\tmessages\tafter crash\tafter restart")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%v\t%d\t%v\t%d\t%s@%d\t%s@%d\n", r.name,
			r.firstTime.Round(time.Millisecond), r.firstMsgs, r.failTime.Round(time.Millisecond), r.failMsgs,
			r.failedOver.ID, r.failedOver.Epoch, r.returned.ID, r.returned.Epoch)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nBully's and Ring's first election includes their 250 ms BootDelay (a node")
	fmt.Fprintln(out, "listens before it campaigns, to learn the current leader). Failover time is")
	fmt.Fprintln(out, "mostly detection: Bully and Ring wait for the failure detector (100 ms")
	fmt.Fprintln(out, "heartbeats, φ accrual), Raft for its election timeout (100-200 ms).")
	fmt.Fprintln(out, "Bully and Ring give the lead back to the restarted, higher-priority node;")
	fmt.Fprintln(out, "Raft has no priorities and keeps the leader it has.")
	return nil
}
