package consensus

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// The safety rules of Read's batching and lease path (read.go).

// TestReadMidRoundWaitsForNextRound: a Read that arrives while another
// Read's round is in flight must not share that round's answer, whose read
// index was taken before a write acknowledged in between. A follower's
// first Read is answered late (the leader's link to it is slow); a write
// is acknowledged meanwhile; a second Read on the follower must return only
// once the follower shows the write.
func TestReadMidRoundWaitsForNextRound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, net := newMemnetCluster(t, false, memnet.Faults{}, func(cfg *Config) {
			cfg.ElectionTicks = 40 // 200 ms: the slow link below never costs the leader
		})
		ctx := context.Background()
		l := waitLeaderNode(ctx, t, c)
		if _, err := l.Propose(ctx, []byte("x=1")); err != nil {
			t.Fatal(err)
		}
		f := c.others(l.ID())[0]
		const delay = 30 * time.Millisecond
		if err := net.SetLinkFaults(l.ID(), f, memnet.Faults{MinDelay: delay, MaxDelay: delay}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		first := make(chan error, 1)
		go func() { first <- c.nodes[f].Read(ctx) }()
		synctest.Wait() // the first Read's request is out; its answer is on the slow link
		time.Sleep(5 * time.Millisecond)
		if _, err := l.Propose(ctx, []byte("x=2")); err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := c.nodes[f].Read(rctx); err != nil {
			t.Fatalf("second Read on %s = %v", f, err)
		}
		if v, _ := c.sms[f].get("x"); v != "2" {
			t.Fatalf("a Read that began after x=2 was acknowledged returned with x = %q: it shared the answer of a round started before it arrived", v)
		}
		if err := <-first; err != nil {
			t.Fatalf("first Read on %s = %v", f, err)
		}
	})
}

// stallTransport blocks every Send while stalled: the node's loop stops in
// the middle of a Ready, as in a long pause, and publishes nothing more.
type stallTransport struct {
	transport.Transport
	mu      sync.Mutex // guards release
	release chan struct{}
}

func (s *stallTransport) stall() {
	s.mu.Lock()
	s.release = make(chan struct{})
	s.mu.Unlock()
}

func (s *stallTransport) resume() {
	s.mu.Lock()
	if s.release != nil {
		close(s.release)
		s.release = nil
	}
	s.mu.Unlock()
}

func (s *stallTransport) Send(ctx context.Context, to transport.NodeID, service string, payload []byte) error {
	s.mu.Lock()
	r := s.release
	s.mu.Unlock()
	if r != nil {
		<-r
	}
	return s.Transport.Send(ctx, to, service, payload)
}

// stallCluster is three nodes with lease reads whose transports can stall;
// it returns them once a leader has applied x=1 and holds its lease.
type stallCluster struct {
	net   *memnet.Network
	nodes map[transport.NodeID]*Node
	sms   map[transport.NodeID]*kvSM
	trs   map[transport.NodeID]*stallTransport
	l     *Node
}

func newStallCluster(t *testing.T) *stallCluster {
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	c := &stallCluster{net: net, nodes: map[transport.NodeID]*Node{}, sms: map[transport.NodeID]*kvSM{}, trs: map[transport.NodeID]*stallTransport{}}
	for _, id := range three {
		mt, err := net.Join(id)
		if err != nil {
			t.Fatal(err)
		}
		c.trs[id] = &stallTransport{Transport: mt}
		cfg := testConfig(id, three)
		cfg.LeaseReads, cfg.LeaseDriftTicks = true, 2
		c.sms[id] = newKV()
		if c.nodes[id], err = New(cfg, c.trs[id], c.sms[id]); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, id := range three {
			c.trs[id].resume()
			c.nodes[id].Close()
		}
		net.Close()
	})
	for c.l == nil {
		for _, n := range c.nodes {
			if n.Leader().Role == raft.Leader {
				c.l = n
			}
		}
		time.Sleep(time.Millisecond) // virtual time
	}
	ctx := context.Background()
	if _, err := c.l.Propose(ctx, []byte("x=1")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // a few heartbeat rounds: the lease holds
	if c.l.reads.view.Load() == nil {
		t.Fatal("no lease published on a healthy leader")
	}
	if err := c.l.Read(ctx); err != nil {
		t.Fatalf("lease Read = %v", err)
	}
	return c
}

// newLeaderWrites waits for a leader other than the stalled one and has it
// commit x=2.
func (c *stallCluster) newLeaderWrites(t *testing.T) {
	time.Sleep(300 * time.Millisecond) // far past the lease; the others elect a leader
	var nl *Node
	for _, n := range c.nodes {
		if n != c.l && n.Leader().Role == raft.Leader {
			nl = n
		}
	}
	if nl == nil {
		t.Fatal("no new leader while the old one stalled")
	}
	if _, err := nl.Propose(context.Background(), []byte("x=2")); err != nil {
		t.Fatal(err)
	}
}

// staleRead fails the test if a Read on the old leader returns nil
// without showing x=2.
func (c *stallCluster) staleRead(t *testing.T, what string) {
	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	err := c.l.Read(rctx)
	if v, _ := c.sms[c.l.ID()].get("x"); err == nil && v != "2" {
		t.Fatalf("Read on the old leader %s = nil with x = %q; want an error (x=2 was acknowledged elsewhere)", what, v)
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read on the old leader %s = %v; want context.DeadlineExceeded", what, err)
	}
}

// TestLeaseReadRefusedAfterExpiry: the lease is checked against the
// reader's clock, not only by the loop. A leader whose loop stalls (its
// sends block) keeps its last published lease; once that lease has run out
// on the monotonic clock, a Read must not be served off it, although the
// others have since elected a leader and committed a write this node does
// not know.
func TestLeaseReadRefusedAfterExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newStallCluster(t)
		c.trs[c.l.ID()].stall()
		c.newLeaderWrites(t)
		if c.l.reads.view.Load() == nil {
			t.Fatal("the stalled leader withdrew its lease: the test does not exercise the reader's clock check")
		}
		c.staleRead(t, "whose loop stalled past its lease")
	})
}

// TestLeaseEndsOnTheClockWhenTicksAreLost: a leader whose loop was paused
// lost the ticks of the pause (a ticker keeps one), so by its tick count
// its lease still holds when the loop resumes. The lease must end by the
// monotonic clock: the node ends the core's lease (ExpireLease) before any
// read, so neither its own Reads nor forwarded ones are answered off it.
func TestLeaseEndsOnTheClockWhenTicksAreLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newStallCluster(t)
		c.net.Isolate(c.l.ID()) // it hears nothing of the new leader
		c.trs[c.l.ID()].stall()
		c.newLeaderWrites(t)
		c.trs[c.l.ID()].resume()
		synctest.Wait()
		if c.l.Leader().Role != raft.Leader {
			t.Fatal("the old leader stepped down: the test does not exercise lost ticks")
		}
		c.staleRead(t, "that lost the ticks of a pause")
	})
}

// TestLeaseExpiryFromRoundStart: the lease runs (ElectionTicks -
// LeaseDriftTicks) tick intervals from the time of the tick during which
// its heartbeat round was started (sent), whatever the time the
// acknowledgements arrived (thesis §6.4.1); a round older than the ticks
// recorded gives no lease.
func TestLeaseExpiryFromRoundStart(t *testing.T) {
	cfg := testConfig("a", three) // 5 ms ticks, ElectionTicks 10
	cfg.LeaseReads, cfg.LeaseDriftTicks = true, 2
	var rs readState
	rs.init(cfg, 0)
	// The loop took tick k at 7 ms * k (ticks ran late), and processes the
	// acknowledgements an hour after init.
	rs.epoch = time.Now().Add(-time.Hour)
	for k := range uint64(30) {
		rs.tickWall[k%uint64(len(rs.tickWall))] = int64(7 * time.Millisecond * time.Duration(k))
	}
	lease := 8 * 5 * time.Millisecond
	tests := []struct {
		name   string
		t, age uint64
		want   int64
	}{
		{"round started this tick", 29, 0, int64(29*7*time.Millisecond + lease)},
		{"round started 5 ticks ago", 29, 5, int64(24*7*time.Millisecond + lease)},
		{"oldest recorded tick", 29, 10, int64(19*7*time.Millisecond + lease)},
		{"older than recorded", 29, 11, 0},
		{"before the first tick", 3, 4, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rs.expiry(tt.t, tt.age); got != tt.want {
				t.Errorf("expiry(%d, %d) = %v; want %v", tt.t, tt.age, time.Duration(got), time.Duration(tt.want))
			}
		})
	}
}
