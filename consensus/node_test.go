package consensus_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/consensus/consensustest"
	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// rounds is how many times the fault scenarios repeat: once by default,
// many times under DISTKIT_SOAK=1.
func rounds() int {
	if os.Getenv("DISTKIT_SOAK") == "1" {
		return 25
	}
	return 1
}

// write proposes key=value through p and returns the applied index.
func write(ctx context.Context, t *testing.T, p consensus.Proposer, key, value string) uint64 {
	t.Helper()
	res, err := p.Propose(ctx, []byte(key+"="+value))
	if err != nil {
		t.Fatalf("Propose(%s=%s) = %v", key, value, err)
	}
	return res.(uint64)
}

// writeKeys writes PREFIXi=value for i in [0, n) through p, records each
// acknowledged write in acked, and returns the last applied index.
func writeKeys(ctx context.Context, t *testing.T, p consensus.Proposer, acked map[string]string, prefix, value string, n int) uint64 {
	t.Helper()
	var last uint64
	for i := range n {
		k := fmt.Sprintf("%s%d", prefix, i)
		last = write(ctx, t, p, k, value)
		acked[k] = value
	}
	return last
}

func TestNodeReplicates(t *testing.T) {
	for _, durable := range []bool{false, true} {
		t.Run(fmt.Sprintf("durable=%v", durable), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var opts []consensustest.Option
			if durable {
				opts = append(opts, consensustest.WithDataDir())
			}
			c := consensustest.Start(t, 3, opts...)
			cl := c.Client()
			acked := map[string]string{}
			last := writeKeys(ctx, t, cl, acked, "k", "v", 50)
			checkAcked(ctx, t, c, c.IDs(), last, acked)
			st := c.Node(cl.Leader()).Status()
			if st.Role != raft.Leader || st.Applied < last || len(st.Progress) != 3 {
				t.Fatalf("leader status = %+v; want role leader, applied >= %d, progress for 3", st, last)
			}
		})
	}
}

func TestNodeProposeErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := consensustest.Start(t, 3, consensustest.WithConfig(func(cfg *consensus.Config) { cfg.MaxCommandBytes = 16 }))
	l := c.WaitLeader(ctx)
	leader := l.ID()
	follower := c.Others(leader)[0]
	// The leader knows it leads before the follower hears of it.
	for c.Node(follower).Status().Leader != leader {
		if ctx.Err() != nil {
			t.Fatalf("follower %s never learned of leader %s", follower, leader)
		}
		time.Sleep(time.Millisecond)
	}
	_, err := c.Node(follower).Propose(ctx, []byte("x=1"))
	var nle *raft.NotLeaderError
	if !errors.As(err, &nle) || !errors.Is(err, consensus.ErrNotLeader) || nle.Leader != leader {
		t.Fatalf("Propose on follower err = %v; want a NotLeaderError naming %s", err, leader)
	}
	if !strings.HasPrefix(err.Error(), "consensus: ") {
		t.Fatalf("Propose on follower err = %q; want the package prefix", err)
	}
	if _, err := l.Propose(ctx, make([]byte, 17)); !errors.Is(err, consensus.ErrTooLarge) {
		t.Fatalf("Propose(17 bytes) err = %v; want ErrTooLarge", err)
	}
	done, stop := context.WithCancel(ctx)
	stop()
	if _, err := l.Propose(done, []byte("x=1")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Propose with a cancelled context err = %v; want context.Canceled", err)
	}
	c.Stop(leader)
	if _, err := l.Propose(ctx, []byte("x=1")); !errors.Is(err, consensus.ErrClosed) {
		t.Fatalf("Propose after Close err = %v; want ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close = %v; want nil", err)
	}
	if st := l.Status(); st.ID != leader {
		t.Fatalf("Status after Close = %+v; want the final status of %s", st, leader)
	}
}

// TestLeaderFailover kills the leader mid-stream: a new leader is elected
// and no acknowledged write is lost.
func TestLeaderFailover(t *testing.T) {
	for round := range rounds() {
		for _, durable := range []bool{false, true} {
			t.Run(fmt.Sprintf("round=%d/durable=%v", round, durable), func(t *testing.T) {
				testLeaderFailover(t, durable)
			})
		}
	}
}

func testLeaderFailover(t *testing.T, durable bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var opts []consensustest.Option
	if durable {
		opts = append(opts, consensustest.WithDataDir())
	}
	c := consensustest.Start(t, 3, opts...)
	cl := c.Client()
	acked := map[string]string{}
	writeKeys(ctx, t, cl, acked, "a", "1", 30)
	old := cl.Leader()
	c.Stop(old)
	// The client finds the new leader on its own.
	last := writeKeys(ctx, t, cl, acked, "b", "2", 30)
	if cl.Leader() == old {
		t.Fatalf("new leader is the old one, %s", old)
	}
	checkAcked(ctx, t, c, c.Others(old), last, acked)
}

// restoreLog is a KV that records the index of every snapshot it is
// restored from.
type restoreLog struct {
	*consensustest.KV
	mu       sync.Mutex // guards restored
	restored []uint64
}

func (r *restoreLog) Restore(rd io.Reader) error {
	if err := r.KV.Restore(rd); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.restored = append(r.restored, r.KV.Applied())
	return nil
}

func (r *restoreLog) restoredAbove(index uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, i := range r.restored {
		if i > index {
			return true
		}
	}
	return false
}

// TestRestartCatchesUp restarts a node from its data directory after the
// others moved on; it catches up from the log, or by snapshot when the log
// it needs was compacted away.
func TestRestartCatchesUp(t *testing.T) {
	tests := []struct {
		name        string
		snapshot    uint64 // SnapshotThreshold
		viaSnapshot bool
	}{
		{"from the log", 0, false},
		{"by snapshot", 20, true},
	}
	for round := range rounds() {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("round=%d/%s", round, tt.name), func(t *testing.T) {
				testRestartCatchesUp(t, tt.snapshot, tt.viaSnapshot)
			})
		}
	}
}

func testRestartCatchesUp(t *testing.T, threshold uint64, viaSnapshot bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := consensustest.Start(t, 3, consensustest.WithDataDir(),
		consensustest.WithStateMachine(func(transport.NodeID) consensus.StateMachine {
			return &restoreLog{KV: consensustest.NewKV()}
		}),
		consensustest.WithConfig(func(cfg *consensus.Config) {
			cfg.SnapshotThreshold = threshold
			cfg.SnapshotRetainEntries = 5
		}))
	cl := c.Client()
	for i := range 20 {
		write(ctx, t, cl, fmt.Sprintf("a%d", i), "1")
	}
	lagger := c.Others(cl.Leader())[0]
	lastBefore := c.Node(lagger).Status().LastIndex
	c.Stop(lagger)
	var last uint64
	for i := range 60 {
		last = write(ctx, t, cl, fmt.Sprintf("b%d", i), "2")
	}
	c.Restart(lagger) // same data directory
	sm := c.StateMachine(lagger).(*restoreLog)
	if err := sm.WaitApplied(ctx, last); err != nil {
		t.Fatalf("restarted %s: %v", lagger, err)
	}
	for i := range 60 {
		if v, _ := sm.Get(fmt.Sprintf("b%d", i)); v != "2" {
			t.Fatalf("restarted %s: b%d = %q; want 2", lagger, i, v)
		}
	}
	if got := sm.restoredAbove(lastBefore); got != viaSnapshot {
		t.Fatalf("restarted %s, whose log ended at %d, restored from a snapshot past it = %v; want %v",
			lagger, lastBefore, got, viaSnapshot)
	}
	if v, _ := sm.Get("a0"); v != "1" {
		t.Fatalf("restarted %s: a0 = %q; want 1", lagger, v)
	}
}

// TestWholeClusterRestart stops every node and restarts them all from their
// data directories: every acknowledged write is still there.
func TestWholeClusterRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := consensustest.Start(t, 3, consensustest.WithDataDir(),
		consensustest.WithConfig(func(cfg *consensus.Config) { cfg.SnapshotThreshold = 15 }))
	cl := c.Client()
	acked := map[string]string{}
	writeKeys(ctx, t, cl, acked, "k", "v", 40)
	for _, id := range c.IDs() {
		c.Stop(id)
	}
	for _, id := range c.IDs() {
		c.Restart(id)
	}
	last := write(ctx, t, cl, "after", "restart")
	checkAcked(ctx, t, c, c.IDs(), last, acked)
}

func TestConfigValidate(t *testing.T) {
	base := func() consensus.Config {
		cfg := consensus.DefaultConfig()
		cfg.ID, cfg.Peers = "a", []transport.NodeID{"a", "b"}
		return cfg
	}
	tests := []struct {
		name   string
		modify func(*consensus.Config)
	}{
		{"empty ID", func(c *consensus.Config) { c.ID = "" }},
		{"no peers", func(c *consensus.Config) { c.Peers = nil }},
		{"ID not a peer", func(c *consensus.Config) { c.ID = "z" }},
		{"duplicate peer", func(c *consensus.Config) { c.Peers = []transport.NodeID{"a", "a"} }},
		{"empty peer", func(c *consensus.Config) { c.Peers = []transport.NodeID{"a", ""} }},
		{"no service", func(c *consensus.Config) { c.Service = "" }},
		{"zero tick", func(c *consensus.Config) { c.TickInterval = 0 }},
		{"zero heartbeat", func(c *consensus.Config) { c.HeartbeatTicks = 0 }},
		{"election not above heartbeat", func(c *consensus.Config) { c.ElectionTicks = c.HeartbeatTicks }},
		{"zero inflight", func(c *consensus.Config) { c.MaxInflightMsgs = 0 }},
		{"zero message bytes", func(c *consensus.Config) { c.MaxMsgBytes = 0 }},
		{"zero command bytes", func(c *consensus.Config) { c.MaxCommandBytes = 0 }},
	}
	good := base()
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate(base) = %v; want nil", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base()
			tt.modify(&cfg)
			if err := cfg.Validate(); !errors.Is(err, consensus.ErrInvalidConfig) {
				t.Fatalf("Validate() = %v; want ErrInvalidConfig", err)
			}
		})
	}
}

func TestNewRejectsBadArguments(t *testing.T) {
	net, _ := memnet.New(memnet.DefaultConfig())
	defer net.Close()
	tr, _ := net.Join("a")
	other, _ := net.Join("b")
	cfg := consensus.DefaultConfig()
	cfg.ID, cfg.Peers = "a", []transport.NodeID{"a"}
	tests := []struct {
		name string
		cfg  consensus.Config
		tr   transport.Transport
		sm   consensus.StateMachine
	}{
		{"nil transport", cfg, nil, consensustest.NewKV()},
		{"typed nil transport", cfg, (*memnet.Transport)(nil), consensustest.NewKV()},
		{"nil state machine", cfg, tr, nil},
		{"typed nil state machine", cfg, tr, (*consensustest.KV)(nil)},
		{"transport of another node", cfg, other, consensustest.NewKV()},
		{"invalid config", consensus.Config{}, tr, consensustest.NewKV()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n, err := consensus.New(tt.cfg, tt.tr, tt.sm); !errors.Is(err, consensus.ErrInvalidConfig) {
				if n != nil {
					n.Close()
				}
				t.Fatalf("New = %v; want ErrInvalidConfig", err)
			}
		})
	}
}

// TestConfigReachesCore: the core options in Config take effect. With
// MaxUncommittedBytes tiny, a leader cut off from its followers accepts
// one proposal (it cannot commit it) and drops the next as flow control.
func TestConfigReachesCore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := consensustest.Start(t, 3, consensustest.WithConfig(func(cfg *consensus.Config) {
			cfg.MaxUncommittedBytes = 1
			cfg.CheckQuorum = false // the isolated leader stays leader
		}))
		ctx := context.Background()
		leader := c.WaitLeader(ctx)
		c.Isolate(leader.ID())
		first := make(chan error, 1)
		go func() {
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			_, err := leader.Propose(pctx, []byte("x=1"))
			first <- err
		}()
		synctest.Wait()
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if _, err := leader.Propose(pctx, []byte("y=1")); !errors.Is(err, raft.ErrProposalDropped) {
			t.Errorf("second uncommitted Propose = %v; want raft.ErrProposalDropped (MaxUncommittedBytes)", err)
		}
		if err := <-first; !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("first Propose on the isolated leader = %v; want a timeout", err)
		}
		if st := leader.Status(); st.Role != raft.Leader {
			t.Errorf("isolated leader's role = %v with CheckQuorum off; want leader", st.Role)
		}
	})
}
