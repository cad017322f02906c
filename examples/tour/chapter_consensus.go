package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

func init() {
	register(chapter{order: 60, name: "consensus", title: "Consensus: a replicated log that survives its leader", run: runConsensus})
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
	start := func(id transport.NodeID) error {
		tr, err := net.Join(id)
		if err != nil {
			return err
		}
		ncfg := consensus.DefaultConfig()
		ncfg.ID, ncfg.Peers = id, ids
		ncfg.DataDir = filepath.Join(dir, string(id))
		ncfg.Seed = uint64(t.seed)*1000 + uint64(slices.Index(ids, id)) + 1 // election timeouts follow -seed
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
		if err := start(id); err != nil {
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
	if err := start(old); err != nil {
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
	return nil
}
