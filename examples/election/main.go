// Command election runs five nodes with each leader-election algorithm the
// textbook compares (§6.4.5) in turn, Bully, Ring, Raft and election through
// a lock service, in the deterministic simulator: it elects a leader, kills
// it, shows the messages of the new election and its result, restarts the
// old leader, and ends with a side-by-side table of election time
// (simulated) and messages per algorithm, and how the messages of a
// failover grow with the number of nodes (n = 3, 5, 7, 9).
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
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "election: unexpected argument %q\n", flag.Arg(0))
		flag.Usage()
		os.Exit(2)
	}
	if err := run(os.Stdout, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "election:", err)
		os.Exit(1)
	}
}

// nodeIDs returns n1 … nn.
func nodeIDs(n int) []transport.NodeID {
	ids := make([]transport.NodeID, n)
	for i := range ids {
		ids[i] = transport.NodeID(fmt.Sprintf("n%d", i+1))
	}
	return ids
}

// network is a LAN with a little jitter and no loss, so every run of a
// seed is the same and the counts are the algorithms', not the faults'.
var network = sim.Faults{MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}

// group is one algorithm's five nodes in a simulator, as the example sees
// them: who each node thinks leads, and the election messages sent.
type group struct {
	s      *sim.Sim
	ids    []transport.NodeID
	view   func(id transport.NodeID) election.Leader
	sent   int      // election messages sent so far (not heartbeats)
	trace  []string // election messages since the last reset
	tracer bool
	// stale, when set, marks a message that belongs to an earlier
	// election (an announcement of the old leader still going round):
	// it is neither counted nor traced, only tallied in skipped.
	stale   func(line string) bool
	skipped int
}

func (g *group) record(line string) {
	if g.stale != nil && g.stale(line) {
		g.skipped++
		return
	}
	g.sent++
	if g.tracer {
		g.trace = append(g.trace, line)
	}
}

// agreed reports the leader every live node names, if they agree.
func (g *group) agreed(down transport.NodeID) (election.Leader, bool) {
	var want election.Leader
	first := true
	for _, id := range g.ids {
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
func newElectorGroup(seed int64, ids []transport.NodeID, newNode func(election.Config) *electionsim.Node) (*group, error) {
	s, err := sim.New(sim.Config{Seed: seed, Faults: network})
	if err != nil {
		return nil, err
	}
	g := &group{s: s, ids: ids}
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
	ids   []transport.NodeID
	id    transport.NodeID
	store *raft.MemoryStorage
	rn    *raft.RawNode
}

func (n *raftNode) Start(env sim.Env) {
	cfg := raft.DefaultConfig()
	cfg.ID, cfg.Peers, cfg.Storage, cfg.Seed = n.id, n.ids, n.store, env.Rand().Uint64()
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

func newRaftGroup(seed int64, ids []transport.NodeID) (*group, error) {
	s, err := sim.New(sim.Config{Seed: seed, Faults: network})
	if err != nil {
		return nil, err
	}
	g := &group{s: s, ids: ids}
	stores := map[transport.NodeID]*raft.MemoryStorage{}
	for _, id := range ids {
		stores[id] = raft.NewMemoryStorage()
		if err := s.AddNode(id, func() sim.Node { return &raftNode{g: g, ids: ids, id: id, store: stores[id]} }); err != nil {
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

// algorithm is one election method of the comparison.
type algorithm struct {
	name  string
	about string
	build func(seed int64, ids []transport.NodeID) (*group, error)
	// regains says whether a restarted old leader takes the lead back
	// (Bully and Ring rank by priority; Raft and the lock queue do not).
	regains bool
	// epochOnDisk says whether a node keeps its epoch across a restart
	// (the lock method keeps it at the service, as the fencing token).
	epochOnDisk bool
}

var algorithms = []algorithm{
	{"bully", "the highest live priority wins; priorities n1 < n2 < … < n5",
		func(seed int64, ids []transport.NodeID) (*group, error) {
			return newElectorGroup(seed, ids, electionsim.NewBully)
		}, true, true},
	{"ring", "a token carries the highest candidate round the ring n1 → n2 → … → n5 → n1",
		func(seed int64, ids []transport.NodeID) (*group, error) {
			return newElectorGroup(seed, ids, electionsim.NewRing)
		}, true, true},
	{"raft", "whoever first wins a majority of votes; epoch = term", newRaftGroup, false, true},
	{"lock", "the holder of one lock in a lock service leads; epoch = fencing token", newLockGroup, false, false},
}

// failover elects a leader among n nodes, crashes it and returns the
// messages of the election that follows (stale ones of the first election
// excluded) and how many stale ones there were.
func failover(alg algorithm, seed int64, n int) (msgs, stale int, err error) {
	g, err := alg.build(seed, nodeIDs(n))
	if err != nil {
		return 0, 0, err
	}
	first, _, err := g.await("", 0)
	if err != nil {
		return 0, 0, err
	}
	g.s.Run(time.Second)
	g.sent, g.stale = 0, staleFor(first)
	g.s.Crash(first.ID)
	if _, _, err := g.await(first.ID, first.Epoch); err != nil {
		return 0, 0, err
	}
	g.s.Run(200 * time.Millisecond)
	return g.sent, g.skipped, nil
}

// staleFor recognizes messages that still announce the leader l, sent
// after it crashed: they belong to the election that chose it.
func staleFor(l election.Leader) func(string) bool {
	old := fmt.Sprintf("%s@%d", l.ID, l.Epoch)
	return func(line string) bool { return strings.HasSuffix(line, old) }
}

func run(out io.Writer, seed int64) error {
	var rows []row
	for _, alg := range algorithms {
		fmt.Fprintf(out, "== %s: %s\n", alg.name, alg.about)
		g, err := alg.build(seed, nodeIDs(5))
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
		g.sent, g.tracer, g.trace, g.stale = 0, true, nil, staleFor(first)
		g.s.Crash(old)
		next, took, err := g.await(old, first.Epoch)
		if err != nil {
			return fmt.Errorf("%s: after the crash: %w", alg.name, err)
		}
		g.s.Run(200 * time.Millisecond) // let the last messages land
		for _, line := range g.trace {
			fmt.Fprintf(out, "    %s\n", line)
		}
		if g.skipped > 0 {
			fmt.Fprintf(out, "    (not counted: %d message(s) still announcing %s@%d from the first election)\n", g.skipped, old, first.Epoch)
		}
		if alg.name == "raft" {
			fmt.Fprintln(out, "    (PreVote first, thesis §9.6: a candidate asks whether it could win before it raises its")
			fmt.Fprintln(out, "    term, so a node that was cut off cannot depose a healthy leader when it returns. The")
			fmt.Fprintln(out, "    textbook's Raft has no such round; it would send only the MsgVote half.)")
		}
		r.failTime, r.failMsgs, r.failedOver = took, g.sent, next
		fmt.Fprintf(out, "%s leads (epoch %d), %v after the crash, %d election messages\n", next.ID, next.Epoch, took.Round(time.Millisecond), g.sent)

		g.tracer, g.stale = false, nil
		g.s.Restart(old)
		// It boots from the epoch (term) on its disk, not from 0, with no
		// leader known yet: epochs never go back at a node.
		boot := g.view(old)
		back, _, err := g.await("", 0)
		if err == nil && alg.regains && back.ID != old {
			back, _, err = g.await("", back.Epoch)
		}
		if err != nil {
			return fmt.Errorf("%s: after the restart: %w", alg.name, err)
		}
		r.returned = back
		if alg.epochOnDisk {
			fmt.Fprintf(out, "restart %s (boots at epoch %d from its disk): %s leads (epoch %d)\n\n", old, boot.Epoch, back.ID, back.Epoch)
		} else {
			fmt.Fprintf(out, "restart %s (the epoch lives at the service as the lock's token): %s leads (epoch %d)\n\n", old, back.ID, back.Epoch)
		}
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
	fmt.Fprintln(out, "The lock service waits out the dead leader's lease (300 ms TTL, renewed every")
	fmt.Fprintln(out, "100 ms). Bully and Ring give the lead back to the restarted, higher-priority")
	fmt.Fprintln(out, "node; Raft and the lock queue have no priorities and keep the leader they have.")

	fmt.Fprintln(out, "\n== messages of one failover election as the cluster grows")
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "algorithm\tn=3\tn=5\tn=7\tn=9")
	for _, alg := range algorithms {
		cells := []string{alg.name}
		for _, n := range []int{3, 5, 7, 9} {
			msgs, _, err := failover(alg, seed, n)
			if err != nil {
				return fmt.Errorf("%s n=%d: %w", alg.name, n, err)
			}
			cells = append(cells, fmt.Sprint(msgs))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "Bully grows as n²: every live node below the new leader challenges those above it.")
	fmt.Fprintln(out, "Ring grows linearly: an election token and then a leader token go round the ring.")
	fmt.Fprintln(out, "Raft grows linearly: a pre-vote round and a vote round to the n-1 others, answered by")
	fmt.Fprintln(out, "the live ones (4n-6 when the first candidate wins; more when candidates split the vote).")
	fmt.Fprintln(out, "The lock service sends n-1: the grant to the next in line and a watch event to the")
	fmt.Fprintln(out, "n-2 others, but it is one more service to run (replicated, in production).")
	return nil
}
