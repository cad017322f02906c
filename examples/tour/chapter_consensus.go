package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

func init() {
	register(chapter{order: 60, name: "consensus", title: "Consensus: a replicated log that survives its leader, grows and hands over", run: runConsensus})
}

// consensusLedger is the chapter's state machine: an append-only list of
// deposits and their running total.
type consensusLedger struct {
	mu      sync.Mutex // guards total, count and changed
	total   int
	count   int
	changed chan struct{} // closed and replaced at every change
}

func newConsensusLedger() *consensusLedger {
	return &consensusLedger{changed: make(chan struct{})}
}

// changedLocked wakes waitCount. Called with mu held.
func (l *consensusLedger) changedLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// waitCount blocks until the ledger holds n deposits or ctx ends.
func (l *consensusLedger) waitCount(ctx context.Context, n int) error {
	for {
		l.mu.Lock()
		count, changed := l.count, l.changed
		l.mu.Unlock()
		if count >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (l *consensusLedger) Apply(e consensus.Entry) any {
	amount, err := strconv.Atoi(string(e.Command))
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total += amount
	l.count++
	l.changedLocked()
	return l.total
}

func (l *consensusLedger) Snapshot(w io.Writer) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err := fmt.Fprintf(w, "%d %d", l.total, l.count)
	return err
}

func (l *consensusLedger) Restore(r io.Reader) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err := fmt.Fscan(r, &l.total, &l.count)
	l.changedLocked()
	return err
}

func (l *consensusLedger) read() (total, count int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, l.count
}

// consensusMember is one running node of the chapter's cluster.
type consensusMember struct {
	tr     *memnet.Transport
	node   *consensus.Node
	ledger *consensusLedger
}

func (m *consensusMember) close() {
	m.node.Close()
	m.tr.Close()
}

func runConsensus(ctx context.Context, t *tour) error {
	dir, err := os.MkdirTemp("", "tour-consensus")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ids := []transport.NodeID{"n1", "n2", "n3"}
	ncfg := memnet.DefaultConfig()
	ncfg.Seed = t.seed
	net, err := memnet.New(ncfg)
	if err != nil {
		return err
	}
	defer net.Close()
	members := map[transport.NodeID]*consensusMember{}
	defer func() {
		for _, m := range members {
			m.close()
		}
	}()
	start := func(id transport.NodeID, join bool) error {
		tr, err := net.Join(id)
		if err != nil {
			return err
		}
		ncfg := consensus.DefaultConfig()
		ncfg.ID, ncfg.Peers, ncfg.Join = id, ids, join
		ncfg.DataDir = filepath.Join(dir, string(id))
		ncfg.Seed = uint64(t.seed)*1000 + uint64(id[len(id)-1]-'0') // n1 → 1, …: election timeouts follow -seed
		ledger := newConsensusLedger()
		node, err := consensus.New(ncfg, tr, ledger)
		if err != nil {
			tr.Close()
			return err
		}
		members[id] = &consensusMember{tr: tr, node: node, ledger: ledger}
		return nil
	}
	for _, id := range ids {
		if err := start(id, false); err != nil {
			return err
		}
	}
	client := func() (*consensus.Client, error) {
		ps := map[transport.NodeID]consensus.Proposer{}
		for id, m := range members {
			ps[id] = m.node
		}
		return consensus.NewClient(ps, consensus.DefaultClientConfig())
	}
	t.Detail("Three nodes replicate a ledger over the in-memory network, each with a write-ahead log on disk.")
	t.Detail("A deposit is acknowledged only once a majority has it durably in its log;")
	t.Detail("the first one also waits for the first election.")
	cl, err := client()
	if err != nil {
		return err
	}
	deposits := []int{10, 25, 5}
	var acked int
	for _, amount := range deposits {
		begin := time.Now()
		total, err := cl.Propose(ctx, []byte(strconv.Itoa(amount)))
		if err != nil {
			return err
		}
		acked++
		t.Detail("deposit %3d acknowledged in %-10v total now %v", amount, time.Since(begin).Round(time.Microsecond), total)
	}
	old := cl.Leader()
	st := members[old].node.Status()
	t.Say("%s leads term %d; %d deposits committed (commit index %d)", old, st.Term, acked, st.Commit)

	// A follower refuses proposals and names the leader.
	for _, id := range ids {
		if id == old {
			continue
		}
		_, err := members[id].node.Propose(ctx, []byte("1"))
		var nle *raft.NotLeaderError
		if !errors.As(err, &nle) {
			return fmt.Errorf("follower %s accepted a proposal: %v", id, err)
		}
		t.Detail("a proposal to follower %s fails with %q", id, err)
		break
	}

	t.Detail("Now the leader crashes. The followers stop hearing heartbeats, one of them")
	t.Detail("times out first, wins a pre-vote and then the election.")
	members[old].close()
	delete(members, old)
	if cl, err = client(); err != nil {
		return err
	}
	begin := time.Now()
	total, err := cl.Propose(ctx, []byte("50"))
	if err != nil {
		return err
	}
	acked++
	st = members[cl.Leader()].node.Status()
	t.Say("%s crashed; %s was elected for term %d and the next deposit committed %v later",
		old, cl.Leader(), st.Term, time.Since(begin).Round(time.Millisecond))
	if total != 90 {
		return fmt.Errorf("total after failover is %v; want 90", total)
	}
	t.Say("the ledger total is %v: no acknowledged deposit was lost", total)

	t.Detail("The crashed node restarts from its data directory and catches up from the leader.")
	if err := start(old, false); err != nil {
		return err
	}
	if cl, err = client(); err != nil {
		return err
	}
	if _, err := cl.Propose(ctx, []byte("0")); err != nil {
		return err
	}
	// The restarted node learns the commit index with the next heartbeat.
	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := members[old].ledger.waitCount(wait, acked+1); err != nil {
		return fmt.Errorf("%s did not catch up: %w", old, err)
	}
	got, count := members[old].ledger.read()
	t.Say("%s restarted from disk and replayed the log: %d deposits, total %d", old, count, got)
	return changeMembership(ctx, t, members, start, ids)
}

// changeMembership grows the cluster by a fourth node, hands leadership to
// it, removes a founder and reads without the log.
func changeMembership(ctx context.Context, t *tour, members map[transport.NodeID]*consensusMember,
	start func(id transport.NodeID, join bool) error, founders []transport.NodeID) error {
	var leader *consensusMember
	var lead transport.NodeID
	for id, m := range members {
		if l, err := m.node.WaitLeader(ctx); err == nil && l == id {
			leader, lead = m, id
		}
	}
	if leader == nil {
		return errors.New("no leader to change the membership")
	}
	t.Detail("Membership changes go through the log too. A new node n4 starts with Join and the")
	t.Detail("founders' peer list; the leader adds it as a learner (it receives the log but does not")
	t.Detail("vote) and promotes it to voter once it has caught up.")
	if err := start("n4", true); err != nil {
		return err
	}
	if err := leader.node.AddAndPromote(ctx, "n4", 10); err != nil {
		return fmt.Errorf("add n4: %w", err)
	}
	m, _ := leader.node.Members()
	t.Say("n4 joined as a learner and was promoted: voters %v", m.Voters)

	t.Detail("Leadership transfer (thesis §3.10): the leader stops taking proposals, brings n4 up")
	t.Detail("to date and tells it to campaign at once, so no election timeout passes.")
	if err := leader.node.TransferLeadership(ctx, "n4"); err != nil {
		return fmt.Errorf("transfer to n4: %w", err)
	}
	st := members["n4"].node.Status()
	t.Say("%s handed leadership to n4, now leader of term %d", lead, st.Term)

	victim := founders[0]
	// n4 has just been elected: it may not change the configuration before
	// it has committed an entry of its own term, and Remove waits for that.
	if err := members["n4"].node.Remove(ctx, victim); err != nil {
		return fmt.Errorf("remove %s: %w", victim, err)
	}
	members[victim].close()
	delete(members, victim)
	m, _ = members["n4"].node.Members()
	t.Say("%s was removed and shut down: voters %v", victim, m.Voters)

	t.Detail("A read without a log entry (ReadIndex, thesis §6.4): a follower asks the leader for its")
	t.Detail("commit index, confirmed by one heartbeat round, and waits until it has applied that far.")
	for id, m := range members {
		if id == "n4" {
			continue
		}
		if err := m.node.Read(ctx); err != nil {
			return fmt.Errorf("read on %s: %w", id, err)
		}
		total, count := m.ledger.read()
		t.Say("a linearizable read on follower %s sees %d deposits, total %d", id, count, total)
		break
	}
	return nil
}
