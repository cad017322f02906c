package txn_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
	"github.com/distkit/distkit/transport/tcp"
	"github.com/distkit/distkit/txn"
)

func runtimeConfig() txn.Config {
	cfg := txn.DefaultConfig()
	cfg.RetryInterval = 20 * time.Millisecond
	cfg.TickInterval = 5 * time.Millisecond
	cfg.FinishedTTL = 10 * time.Second
	return cfg
}

// cluster is a coordinator and participants on one memnet network, each
// participant with a Store holding accounts "a" and "b" at 100.
type cluster struct {
	net    *memnet.Network
	trs    map[transport.NodeID]*memnet.Transport
	coord  *txn.Coordinator
	clog   txn.Log
	parts  map[transport.NodeID]*txn.Participant
	stores map[transport.NodeID]*txn.Store
}

func newCluster(t *testing.T, parts ...transport.NodeID) *cluster {
	t.Helper()
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{net: net, trs: map[transport.NodeID]*memnet.Transport{}, clog: txn.NewMemoryLog(),
		parts: map[transport.NodeID]*txn.Participant{}, stores: map[transport.NodeID]*txn.Store{}}
	t.Cleanup(func() { c.close() })
	for _, id := range append([]transport.NodeID{"c"}, parts...) {
		if c.trs[id], err = net.Join(id); err != nil {
			t.Fatal(err)
		}
	}
	if c.coord, err = txn.NewCoordinator(c.trs["c"], c.clog, runtimeConfig()); err != nil {
		t.Fatal(err)
	}
	for _, id := range parts {
		st := txn.NewStore()
		if c.parts[id], err = txn.NewParticipant(c.trs[id], txn.NewMemoryLog(), st, runtimeConfig()); err != nil {
			t.Fatal(err)
		}
		st.Set("a", 100)
		st.Set("b", 100)
		c.stores[id] = st
	}
	return c
}

func (c *cluster) close() {
	if c.coord != nil {
		c.coord.Close()
	}
	for _, p := range c.parts {
		p.Close()
	}
	c.net.Close()
}

func transferWorkRT(t *testing.T, from, to transport.NodeID, amount int64) []txn.Work {
	t.Helper()
	debit, err := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: "a", Amount: -amount})
	if err != nil {
		t.Fatal(err)
	}
	credit, err := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: "b", Amount: amount})
	if err != nil {
		t.Fatal(err)
	}
	return []txn.Work{{Participant: from, Ops: debit}, {Participant: to, Ops: credit}}
}

func quiesce(t *testing.T, c *txn.Coordinator) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Quiesce(ctx); err != nil {
		t.Fatalf("Quiesce() = %v", err)
	}
}

func wantBalance(t *testing.T, st *txn.Store, key string, want int64) {
	t.Helper()
	if got, _ := st.Get(key); got != want {
		t.Errorf("%s = %d; want %d", key, got, want)
	}
}

func TestRuntimeCommit(t *testing.T) {
	c := newCluster(t, "bank1", "bank2")
	r, err := c.coord.Run(context.Background(), transferWorkRT(t, "bank1", "bank2", 60)...)
	if err != nil || r.Outcome != txn.Committed {
		t.Fatalf("Run() = %v, %v; want committed", r.Outcome, err)
	}
	quiesce(t, c.coord)
	wantBalance(t, c.stores["bank1"], "a", 40)
	wantBalance(t, c.stores["bank2"], "b", 160)
	if got := c.coord.Stats().Committed; got != 1 {
		t.Errorf("Stats().Committed = %d; want 1", got)
	}
}

func TestRuntimeVoteNo(t *testing.T) {
	c := newCluster(t, "bank1", "bank2")
	r, err := c.coord.Run(context.Background(), transferWorkRT(t, "bank1", "bank2", 150)...)
	var ae *txn.AbortError
	if !errors.As(err, &ae) || !errors.Is(err, txn.ErrVotedNo) || !errors.Is(err, txn.ErrAborted) {
		t.Fatalf("Run() = %v; want an AbortError with ErrVotedNo", err)
	}
	if r.Outcome != txn.Aborted || len(ae.Participants) != 1 || ae.Participants[0] != "bank1" || !strings.Contains(ae.Reason, "insufficient funds") {
		t.Fatalf("abort = %+v; want bank1 voting NO for insufficient funds", ae)
	}
	quiesce(t, c.coord)
	wantBalance(t, c.stores["bank1"], "a", 100)
	wantBalance(t, c.stores["bank2"], "b", 100)
	if got := c.stores["bank2"].Locked(); got != 0 {
		t.Errorf("bank2 holds %d locks after the abort; want 0", got)
	}
}

func TestRuntimeTimeoutAndCancel(t *testing.T) {
	c := newCluster(t, "bank1")
	ops, _ := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: "a", Amount: 1})
	work := []txn.Work{{Participant: "bank1", Ops: ops}, {Participant: "ghost", Ops: ops}}

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.coord.Run(ctx, work...)
	var ae *txn.AbortError
	if !errors.As(err, &ae) || !errors.Is(err, txn.ErrTimeout) && !errors.Is(err, txn.ErrCancelled) {
		t.Fatalf("Run(deadline) = %v; want a timeout abort", err)
	}
	if len(ae.Participants) != 1 || ae.Participants[0] != "ghost" {
		t.Errorf("missing votes = %v; want [ghost]", ae.Participants)
	}

	ctx2, cancel2 := context.WithCancel(context.Background())
	stop := time.AfterFunc(20*time.Millisecond, cancel2) // cancel while the ghost's vote is awaited
	defer stop.Stop()
	if _, err := c.coord.Run(ctx2, work...); !errors.Is(err, txn.ErrCancelled) {
		t.Fatalf("Run(cancelled) = %v; want ErrCancelled", err)
	}
	if got := c.coord.Stats().Aborted; got != 2 {
		t.Errorf("Stats().Aborted = %d; want 2", got)
	}
	// The coordinator keeps sending ABORT until everyone acknowledges:
	// once the ghost comes up (with no record of either transaction) the
	// coordinator can forget both, and bank1 must have released its locks.
	tr, err := c.net.Join("ghost")
	if err != nil {
		t.Fatal(err)
	}
	if c.parts["ghost"], err = txn.NewParticipant(tr, txn.NewMemoryLog(), txn.NewStore(), runtimeConfig()); err != nil {
		t.Fatal(err)
	}
	quiesce(t, c.coord)
	if got := c.stores["bank1"].Locked(); got != 0 {
		t.Errorf("bank1 holds %d locks after the aborts; want 0", got)
	}
	wantBalance(t, c.stores["bank1"], "a", 100)
}

// crashAfterCommitLog is a Log that takes the coordinator's node off the
// network right after a COMMIT record is durable: the process "dies"
// between its decision and its first COMMIT message.
type crashAfterCommitLog struct {
	txn.Log
	crash func()
}

func (l *crashAfterCommitLog) Append(recs []txn.Record) error {
	err := l.Log.Append(recs)
	for _, r := range recs {
		if r.Type == txn.RecCommit && l.crash != nil {
			l.crash()
			l.crash = nil
		}
	}
	return err
}

func TestRuntimeCoordinatorCrashAfterDecision(t *testing.T) {
	c := newCluster(t, "bank1", "bank2")
	c.coord.Close()
	mem := txn.NewMemoryLog()
	crashing := &crashAfterCommitLog{Log: mem, crash: func() { c.net.Crash("c") }}
	coord, err := txn.NewCoordinator(c.trs["c"], crashing, runtimeConfig())
	if err != nil {
		t.Fatal(err)
	}
	c.coord = coord
	if _, err := coord.Run(context.Background(), transferWorkRT(t, "bank1", "bank2", 30)...); err != nil {
		t.Fatalf("Run() = %v; want committed (the decision is durable)", err)
	}
	// Both banks are in doubt: they voted YES and hold their locks.
	if got := c.stores["bank1"].Locked() + c.stores["bank2"].Locked(); got != 2 {
		t.Fatalf("locks held while in doubt = %d; want 2", got)
	}
	coord.Close()
	if err := c.net.Restart("c"); err != nil {
		t.Fatal(err)
	}
	// A new coordinator recovers from the log and finishes the commit.
	if c.coord, err = txn.NewCoordinator(c.trs["c"], mem, runtimeConfig()); err != nil {
		t.Fatal(err)
	}
	quiesce(t, c.coord)
	wantBalance(t, c.stores["bank1"], "a", 70)
	wantBalance(t, c.stores["bank2"], "b", 130)
	if got := c.stores["bank1"].Locked() + c.stores["bank2"].Locked(); got != 0 {
		t.Errorf("locks after recovery = %d; want 0", got)
	}
}

func TestRuntimeParticipantRestartFromFileLog(t *testing.T) {
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	ct, _ := net.Join("c")
	pt, _ := net.Join("p")
	cfg := runtimeConfig()
	cfg.CheckpointEvery = 3 // exercise checkpoints
	coord, err := txn.NewCoordinator(ct, txn.NewMemoryLog(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer coord.Close()
	dir := t.TempDir()
	open := func() (*txn.Participant, *txn.Store, txn.Log) {
		l, err := txn.OpenFileLog(dir)
		if err != nil {
			t.Fatal(err)
		}
		st := txn.NewStore()
		p, err := txn.NewParticipant(pt, l, st, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return p, st, l
	}
	p, _, l := open()
	for i := range 10 {
		ops, _ := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: "n", Amount: int64(i)})
		if _, err := coord.Run(context.Background(), txn.Work{Participant: "p", Ops: ops}); err != nil {
			t.Fatalf("Run(%d) = %v", i, err)
		}
	}
	quiesce(t, coord)
	p.Close()
	l.Close()
	p, st, l := open()
	defer l.Close()
	defer p.Close()
	wantBalance(t, st, "n", 45)
}

func TestRuntimeTCP(t *testing.T) {
	ids := []transport.NodeID{"c", "bank1", "bank2"}
	lns := map[transport.NodeID]net.Listener{}
	peers := map[transport.NodeID]string{}
	for _, id := range ids {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[id] = ln
		peers[id] = ln.Addr().String()
	}
	trs := map[transport.NodeID]*tcp.Transport{}
	for _, id := range ids {
		cfg := tcp.DefaultConfig()
		cfg.ID = id
		cfg.Peers = peers
		tr, err := tcp.New(cfg, lns[id])
		if err != nil {
			t.Fatal(err)
		}
		trs[id] = tr
		defer tr.Close()
	}
	stores := map[transport.NodeID]*txn.Store{}
	for _, id := range ids[1:] {
		st := txn.NewStore()
		p, err := txn.NewParticipant(trs[id], txn.NewMemoryLog(), st, runtimeConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		st.Set("a", 100)
		stores[id] = st
	}
	coord, err := txn.NewCoordinator(trs["c"], txn.NewMemoryLog(), runtimeConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer coord.Close()
	if _, err := coord.Run(context.Background(), transferWorkRT(t, "bank1", "bank2", 25)...); err != nil {
		t.Fatalf("Run() over tcp = %v", err)
	}
	quiesce(t, coord)
	wantBalance(t, stores["bank1"], "a", 75)
	wantBalance(t, stores["bank2"], "b", 25)
}

func TestRuntimeBadInput(t *testing.T) {
	c := newCluster(t, "bank1")
	bad := txn.DefaultConfig()
	bad.RetryInterval = 0
	tests := []struct {
		name string
		err  error
	}{
		{"nil transport", func() error { _, err := txn.NewCoordinator(nil, txn.NewMemoryLog(), txn.DefaultConfig()); return err }()},
		{"nil log", func() error {
			_, err := txn.NewParticipant(c.trs["bank1"], nil, txn.NewStore(), txn.DefaultConfig())
			return err
		}()},
		{"bad config", func() error { _, err := txn.NewCoordinator(c.trs["c"], txn.NewMemoryLog(), bad); return err }()},
		{"no work", func() error { _, err := c.coord.Run(context.Background()); return err }()},
		{"empty participant", func() error { _, err := c.coord.Run(context.Background(), txn.Work{}); return err }()},
		{"duplicate participant", func() error {
			_, err := c.coord.Run(context.Background(), txn.Work{Participant: "x"}, txn.Work{Participant: "x"})
			return err
		}()},
		{"empty log dir", func() error { _, err := txn.OpenFileLog(""); return err }()},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, txn.ErrInvalid) {
			t.Errorf("%s: err = %v; want ErrInvalid", tt.name, tt.err)
		}
	}
	id := uuid.New()
	ops, _ := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: "a", Amount: 1})
	if _, err := c.coord.RunID(context.Background(), id, txn.Work{Participant: "bank1", Ops: ops}); err != nil {
		t.Fatal(err)
	}
	c.coord.Close()
	if _, err := c.coord.Run(context.Background(), txn.Work{Participant: "bank1"}); !errors.Is(err, txn.ErrClosed) {
		t.Errorf("Run after Close = %v; want ErrClosed", err)
	}
}
