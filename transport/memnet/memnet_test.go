package memnet_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
	"github.com/distkit/distkit/transport/transporttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	transporttest.Run(t, func(t *testing.T, ids []transport.NodeID) []transport.Transport {
		cfg := memnet.DefaultConfig()
		cfg.MaxPayload = 1 << 20
		net, err := memnet.New(cfg)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		t.Cleanup(func() { _ = net.Close() })
		out := make([]transport.Transport, len(ids))
		for i, id := range ids {
			tr, err := net.Join(id)
			if err != nil {
				t.Fatalf("Join(%s): %v", id, err)
			}
			out[i] = tr
		}
		return out
	}, transporttest.Options{FIFO: true, MaxPayload: 1 << 20})
}

// cluster is a network with joined nodes and a recorder on each.
type cluster struct {
	net   *memnet.Network
	nodes map[transport.NodeID]*memnet.Transport
	rec   map[transport.NodeID]*recorder
}

// recorder keeps the payloads one node received on service "test".
type recorder struct {
	mu  sync.Mutex // guards got
	got []uint64
}

func (r *recorder) handle(msg transport.Message) {
	r.mu.Lock()
	r.got = append(r.got, binary.BigEndian.Uint64(msg.Payload))
	r.mu.Unlock()
}

func (r *recorder) received() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func newCluster(t *testing.T, cfg memnet.Config, ids ...transport.NodeID) *cluster {
	t.Helper()
	net, err := memnet.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = net.Close() })
	c := &cluster{net: net, nodes: map[transport.NodeID]*memnet.Transport{}, rec: map[transport.NodeID]*recorder{}}
	for _, id := range ids {
		tr, err := net.Join(id)
		if err != nil {
			t.Fatalf("Join(%s): %v", id, err)
		}
		c.nodes[id] = tr
		c.rec[id] = &recorder{}
		tr.Handle("test", c.rec[id].handle)
	}
	return c
}

func seq(i int) []byte { return binary.BigEndian.AppendUint64(nil, uint64(i)) }

// sendN sends messages numbered first..first+n-1 from -> to and fails on
// any error.
func (c *cluster) sendN(t *testing.T, from, to transport.NodeID, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		if err := c.nodes[from].Send(context.Background(), to, "test", seq(i)); err != nil {
			t.Fatalf("%s.Send(%s, #%d) = %v; want nil", from, to, i, err)
		}
	}
}

func (c *cluster) flush(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.net.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

func upTo(n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(i)
	}
	return out
}

func TestFIFOWithoutFaults(t *testing.T) {
	cfg := memnet.DefaultConfig()
	cfg.QueueSize = 4000 // room for both bursts, however slow the receiver
	c := newCluster(t, cfg, "a", "b", "c")
	var wg sync.WaitGroup
	wg.Go(func() { c.sendN(t, "a", "b", 0, 2000) })
	wg.Go(func() { c.sendN(t, "c", "b", 10000, 2000) })
	wg.Wait()
	c.flush(t)
	got := c.rec["b"].received()
	// The two senders interleave freely, but each one's messages arrive in
	// the order it sent them.
	var fromA, fromC []uint64
	for _, v := range got {
		if v < 10000 {
			fromA = append(fromA, v)
		} else {
			fromC = append(fromC, v-10000)
		}
	}
	if !slices.Equal(fromA, upTo(2000)) || !slices.Equal(fromC, upTo(2000)) {
		t.Fatalf("b received %d from a and %d from c, not in send order; want 2000 each, in order", len(fromA), len(fromC))
	}
	if st := c.net.LinkStats("a", "b"); st != (memnet.LinkStats{Sent: 2000, Delivered: 2000}) {
		t.Fatalf("LinkStats(a, b) = %+v; want 2000 sent and delivered", st)
	}
}

func TestFaults(t *testing.T) {
	const n = 3000
	tests := []struct {
		name                       string
		faults                     memnet.Faults
		minDelivered, maxDelivered int
		wantInOrder                bool
	}{
		{"perfect", memnet.Faults{}, n, n, true},
		{"drop all", memnet.Faults{Drop: 1}, 0, 0, true},
		{"drop 30%", memnet.Faults{Drop: 0.3}, n * 6 / 10, n * 8 / 10, true},
		{"duplicate all", memnet.Faults{Duplicate: 1}, 2 * n, 2 * n, false},
		{"duplicate 20%", memnet.Faults{Duplicate: 0.2}, n * 11 / 10, n * 13 / 10, false},
		{"reorder", memnet.Faults{Reorder: 0.1, ReorderDelay: 2 * time.Millisecond}, n, n, false},
		{"jitter", memnet.Faults{MinDelay: 0, MaxDelay: 2 * time.Millisecond}, n, n, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := memnet.DefaultConfig()
			cfg.Faults = tt.faults
			cfg.QueueSize = 2 * n // room for every copy, however slow the receiver
			c := newCluster(t, cfg, "a", "b")
			c.sendN(t, "a", "b", 0, n)
			c.flush(t)
			got := c.rec["b"].received()
			if len(got) < tt.minDelivered || len(got) > tt.maxDelivered {
				t.Errorf("delivered %d; want in [%d, %d]", len(got), tt.minDelivered, tt.maxDelivered)
			}
			if inOrder := slices.IsSorted(got) && len(slices.Compact(slices.Clone(got))) == len(got); inOrder != tt.wantInOrder {
				t.Errorf("arrived strictly in order: %v; want %v", inOrder, tt.wantInOrder)
			}
			st := c.net.LinkStats("a", "b")
			if st.Sent != n || st.Delivered != uint64(len(got)) || st.Sent+st.Duplicated != st.Delivered+st.Dropped {
				t.Errorf("LinkStats(a, b) = %+v; want %d sent, %d delivered, sent+duplicated = delivered+dropped", st, n, len(got))
			}
		})
	}
}

// TestDelayLowerBound checks that no message arrives before MinDelay. Only a
// lower bound is asserted: upper bounds on wall time are flaky on a loaded
// machine.
func TestDelayLowerBound(t *testing.T) {
	cfg := memnet.DefaultConfig()
	cfg.Faults = memnet.Faults{MinDelay: 20 * time.Millisecond, MaxDelay: 30 * time.Millisecond}
	c := newCluster(t, cfg, "a", "b")
	arrived := make(chan time.Time, 1) // the handler reports the first arrival without blocking
	c.nodes["b"].Handle("timed", func(transport.Message) {
		select {
		case arrived <- time.Now():
		default:
		}
	})
	start := time.Now()
	if err := c.nodes["a"].Send(context.Background(), "b", "timed", nil); err != nil {
		t.Fatal(err)
	}
	if took := (<-arrived).Sub(start); took < 20*time.Millisecond {
		t.Fatalf("message arrived after %v; want at least MinDelay 20ms", took)
	}
}

func TestSeededFaultsRepeat(t *testing.T) {
	run := func(seed int64) []uint64 {
		cfg := memnet.DefaultConfig()
		cfg.Seed = seed
		cfg.Faults = memnet.Faults{Drop: 0.5}
		c := newCluster(t, cfg, "a", "b")
		c.sendN(t, "a", "b", 0, 500)
		c.flush(t)
		return c.rec["b"].received()
	}
	first, second, other := run(7), run(7), run(8)
	if !slices.Equal(first, second) {
		t.Fatalf("seed 7 delivered different messages on two runs")
	}
	if slices.Equal(first, other) {
		t.Fatalf("seeds 7 and 8 delivered the same messages; want different")
	}
}

func TestPartitionsAndCuts(t *testing.T) {
	type node = transport.NodeID
	tests := []struct {
		name  string
		fault func(n *memnet.Network)
		want  map[[2]node]bool // link -> delivered
	}{
		{"none", func(*memnet.Network) {}, map[[2]node]bool{{"a", "b"}: true, {"b", "a"}: true, {"a", "c"}: true, {"c", "b"}: true}},
		{"partition a | b c", func(n *memnet.Network) { n.Partition([]node{"a"}, []node{"b", "c"}) },
			map[[2]node]bool{{"a", "b"}: false, {"b", "a"}: false, {"a", "c"}: false, {"c", "b"}: true}},
		{"partition naming only a", func(n *memnet.Network) { n.Partition([]node{"a"}) },
			map[[2]node]bool{{"a", "b"}: false, {"b", "a"}: false, {"a", "c"}: false, {"c", "b"}: true}},
		{"cut a->b", func(n *memnet.Network) { n.Cut("a", "b") },
			map[[2]node]bool{{"a", "b"}: false, {"b", "a"}: true, {"a", "c"}: true, {"c", "b"}: true}},
		{"isolate b", func(n *memnet.Network) { n.Isolate("b") },
			map[[2]node]bool{{"a", "b"}: false, {"b", "a"}: false, {"a", "c"}: true, {"c", "b"}: false}},
		{"heal", func(n *memnet.Network) { n.Partition([]node{"a"}); n.Cut("c", "b"); n.Isolate("b"); n.Heal() },
			map[[2]node]bool{{"a", "b"}: true, {"b", "a"}: true, {"a", "c"}: true, {"c", "b"}: true}},
		{"link faults", func(n *memnet.Network) { _ = n.SetLinkFaults("a", "c", memnet.Faults{Drop: 1}) },
			map[[2]node]bool{{"a", "b"}: true, {"b", "a"}: true, {"a", "c"}: false, {"c", "b"}: true}},
		{"link faults reset", func(n *memnet.Network) {
			_ = n.SetLinkFaults("a", "c", memnet.Faults{Drop: 1})
			n.ResetLinkFaults("a", "c")
		}, map[[2]node]bool{{"a", "b"}: true, {"b", "a"}: true, {"a", "c"}: true, {"c", "b"}: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t, memnet.DefaultConfig(), "a", "b", "c")
			tt.fault(c.net)
			for l := range tt.want {
				c.sendN(t, l[0], l[1], 0, 1)
			}
			c.flush(t)
			for l, want := range tt.want {
				st := c.net.LinkStats(l[0], l[1])
				if got := st.Delivered == 1; got != want || st.Delivered+st.Dropped != 1 {
					t.Errorf("%s->%s: LinkStats = %+v; want delivered %v", l[0], l[1], st, want)
				}
			}
		})
	}
}

func TestPartitionLosesInFlight(t *testing.T) {
	cfg := memnet.DefaultConfig()
	cfg.Faults = memnet.Faults{MinDelay: 20 * time.Millisecond, MaxDelay: 20 * time.Millisecond}
	c := newCluster(t, cfg, "a", "b")
	c.sendN(t, "a", "b", 0, 10)
	c.net.Partition([]transport.NodeID{"a"}, []transport.NodeID{"b"})
	c.flush(t)
	if st := c.net.LinkStats("a", "b"); st.Delivered != 0 || st.Dropped != 10 {
		t.Fatalf("LinkStats(a, b) = %+v; want the 10 messages in flight dropped by the partition", st)
	}
}

func TestCrashRestart(t *testing.T) {
	cfg := memnet.DefaultConfig()
	cfg.Faults = memnet.Faults{MinDelay: 20 * time.Millisecond, MaxDelay: 20 * time.Millisecond}
	c := newCluster(t, cfg, "a", "b")
	c.sendN(t, "a", "b", 0, 5) // in flight to b
	c.sendN(t, "b", "a", 0, 5) // in flight from b
	if err := c.net.Crash("b"); err != nil {
		t.Fatalf("Crash(b) = %v", err)
	}
	if err := c.net.Crash("b"); err != nil {
		t.Fatalf("second Crash(b) = %v; want nil", err)
	}
	if !c.net.Crashed("b") {
		t.Fatalf("Crashed(b) = false after Crash")
	}
	c.sendN(t, "a", "b", 5, 5) // to a crashed node: accepted, lost
	c.sendN(t, "b", "a", 5, 5) // from a crashed node: accepted, lost
	c.flush(t)
	if got := c.rec["b"].received(); len(got) != 0 {
		t.Fatalf("crashed b received %v; want nothing", got)
	}
	if got := c.rec["a"].received(); len(got) != 0 {
		t.Fatalf("a received %v from crashed b; want nothing (lost in flight)", got)
	}
	for _, l := range [][2]transport.NodeID{{"a", "b"}, {"b", "a"}} {
		if st := c.net.LinkStats(l[0], l[1]); st != (memnet.LinkStats{Sent: 10, Dropped: 10}) {
			t.Fatalf("LinkStats(%s, %s) = %+v; want 10 sent, 10 dropped", l[0], l[1], st)
		}
	}

	if err := c.net.Restart("b"); err != nil {
		t.Fatalf("Restart(b) = %v", err)
	}
	c.sendN(t, "a", "b", 100, 3)
	c.sendN(t, "b", "a", 100, 3)
	c.flush(t)
	if got, want := c.rec["b"].received(), []uint64{100, 101, 102}; !slices.Equal(got, want) {
		t.Fatalf("restarted b received %v; want %v (same Transport and handlers)", got, want)
	}
	if got, want := c.rec["a"].received(), []uint64{100, 101, 102}; !slices.Equal(got, want) {
		t.Fatalf("a received %v from restarted b; want %v", got, want)
	}
}

func TestRejoinAfterClose(t *testing.T) {
	c := newCluster(t, memnet.DefaultConfig(), "a", "b")
	if _, err := c.net.Join("b"); !errors.Is(err, memnet.ErrDuplicateNode) {
		t.Fatalf("Join(b) while open = %v; want ErrDuplicateNode", err)
	}
	if err := c.nodes["b"].Close(); err != nil {
		t.Fatal(err)
	}
	c.sendN(t, "a", "b", 0, 1) // to a closed node: accepted, dropped
	b2, err := c.net.Join("b")
	if err != nil {
		t.Fatalf("Join(b) after Close = %v; want a fresh Transport", err)
	}
	r := &recorder{}
	b2.Handle("test", r.handle)
	c.sendN(t, "a", "b", 1, 1)
	c.flush(t)
	if got := r.received(); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("new b received %v; want [1]", got)
	}
	if got := c.net.Nodes(); !slices.Equal(got, []transport.NodeID{"a", "b"}) {
		t.Fatalf("Nodes() = %v; want [a b]", got)
	}
}

func TestQueueFull(t *testing.T) {
	cfg := memnet.DefaultConfig()
	cfg.QueueSize = 4
	c := newCluster(t, cfg, "a", "b")
	started, release := make(chan struct{}), make(chan struct{})
	c.nodes["b"].Handle("block", func(transport.Message) {
		started <- struct{}{}
		<-release
	})
	// Released on every path, so that a failed check does not leave the
	// handler blocking the network's Close.
	releaseOnce := sync.OnceFunc(func() { close(release) })
	defer releaseOnce()
	ctx := context.Background()
	if err := c.nodes["a"].Send(ctx, "b", "block", nil); err != nil {
		t.Fatal(err)
	}
	<-started // the handler holds b's delivery goroutine; the next 4 queue up
	for i := range 4 {
		if err := c.nodes["a"].Send(ctx, "b", "test", seq(i)); err != nil {
			t.Fatalf("Send #%d = %v; want nil", i, err)
		}
	}
	if err := c.nodes["a"].Send(ctx, "b", "test", seq(4)); !errors.Is(err, transport.ErrQueueFull) {
		t.Fatalf("Send to a full queue = %v; want ErrQueueFull", err)
	}
	releaseOnce()
	c.flush(t)
	if got, want := c.rec["b"].received(), upTo(4); !slices.Equal(got, want) {
		t.Fatalf("b received %v; want %v", got, want)
	}
	if st := c.net.LinkStats("a", "b"); st.Dropped != 1 {
		t.Fatalf("LinkStats(a, b).Dropped = %d; want 1 (the rejected message)", st.Dropped)
	}
}

func TestPanickingHandlerCounted(t *testing.T) {
	c := newCluster(t, memnet.DefaultConfig(), "a", "b")
	c.nodes["b"].Handle("boom", func(transport.Message) { panic("boom") })
	for range 3 {
		if err := c.nodes["a"].Send(context.Background(), "b", "boom", nil); err != nil {
			t.Fatal(err)
		}
	}
	c.sendN(t, "a", "b", 0, 1)
	c.flush(t)
	if st := c.net.Stats(); st.HandlerPanics != 3 {
		t.Fatalf("Stats().HandlerPanics = %d; want 3", st.HandlerPanics)
	}
	if got := c.rec["b"].received(); !slices.Equal(got, []uint64{0}) {
		t.Fatalf("b received %v after panics; want [0]", got)
	}
}

func TestErrors(t *testing.T) {
	cfg := memnet.DefaultConfig()
	cfg.MaxPayload = 10
	c := newCluster(t, cfg, "a", "b")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	closed, err := c.net.Join("z")
	if err != nil {
		t.Fatal(err)
	}
	_ = closed.Close()
	bg := context.Background()
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"unknown peer", c.nodes["a"].Send(bg, "nobody", "test", nil), transport.ErrUnknownPeer},
		{"at the size limit", c.nodes["a"].Send(bg, "b", "test", make([]byte, 10)), nil},
		{"too large", c.nodes["a"].Send(bg, "b", "test", make([]byte, 11)), transport.ErrMessageTooLarge},
		{"cancelled", c.nodes["a"].Send(cancelled, "b", "test", nil), context.Canceled},
		{"closed", closed.Send(bg, "a", "test", nil), transport.ErrClosed},
		{"crash unknown", c.net.Crash("nobody"), transport.ErrUnknownPeer},
		{"restart unknown", c.net.Restart("nobody"), transport.ErrUnknownPeer},
		{"bad faults", c.net.SetFaults(memnet.Faults{Drop: 2}), memnet.ErrInvalidFaults},
		{"bad link faults", c.net.SetLinkFaults("a", "b", memnet.Faults{MinDelay: 2, MaxDelay: 1}), memnet.ErrInvalidFaults},
		{"join empty", joinErr(c.net, ""), memnet.ErrInvalidConfig},
		{"zero Network Join", joinErr(new(memnet.Network), "a"), memnet.ErrInvalidConfig},
		{"zero Transport Send", new(memnet.Transport).Send(bg, "b", "test", nil), memnet.ErrInvalidConfig},
		{"zero Transport Close", new(memnet.Transport).Close(), memnet.ErrInvalidConfig},
		{"zero Network Crash", new(memnet.Network).Crash("a"), transport.ErrUnknownPeer},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: error = %v; want %v", tt.name, tt.err, tt.want)
		}
	}
	// The calls with no error result do nothing on zero values (no panic).
	var zero memnet.Network
	zero.Partition([]transport.NodeID{"a"})
	zero.Cut("a", "b")
	zero.Heal()
	new(memnet.Transport).Handle("test", func(transport.Message) {})
	if err := c.net.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.net.Join("late"); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Join after Network.Close = %v; want ErrClosed", err)
	}
}

func joinErr(n *memnet.Network, id transport.NodeID) error { _, err := n.Join(id); return err }

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*memnet.Config)
		ok     bool
	}{
		{"default", func(*memnet.Config) {}, true},
		{"zero queue", func(c *memnet.Config) { c.QueueSize = 0 }, false},
		{"negative payload", func(c *memnet.Config) { c.MaxPayload = -1 }, false},
		{"drop NaN", func(c *memnet.Config) { var z float64; c.Faults.Drop = z / z }, false},
		{"duplicate > 1", func(c *memnet.Config) { c.Faults.Duplicate = 1.1 }, false},
		{"negative delay", func(c *memnet.Config) { c.Faults.MinDelay = -1 }, false},
		{"min > max", func(c *memnet.Config) { c.Faults.MinDelay = time.Second }, false},
	}
	for _, tt := range tests {
		cfg := memnet.DefaultConfig()
		tt.mutate(&cfg)
		_, err := memnet.New(cfg)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, memnet.ErrInvalidConfig)) {
			t.Errorf("%s: New error = %v; want ok=%v (ErrInvalidConfig otherwise)", tt.name, err, tt.ok)
		}
	}
}

// TestCountersAddUp sends random traffic (some of it to a service with no
// handler) under random faults, partitions and crashes, and checks after each round that every link's counters balance
// and that the totals are the sums of the links.
func TestCountersAddUp(t *testing.T) {
	ids := []transport.NodeID{"a", "b", "c", "d"}
	for seed := range uint64(5) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 1))
			cfg := memnet.DefaultConfig()
			cfg.Seed = int64(seed)
			c := newCluster(t, cfg, ids...)
			for range 6 {
				f := memnet.Faults{Drop: rng.Float64() / 2, Duplicate: rng.Float64() / 2, Reorder: rng.Float64() / 2,
					MaxDelay: time.Duration(rng.IntN(2)) * time.Millisecond}
				if err := c.net.SetFaults(f); err != nil {
					t.Fatal(err)
				}
				switch rng.IntN(4) {
				case 0:
					c.net.Partition(ids[:rng.IntN(4)])
				case 1:
					_ = c.net.Crash(ids[rng.IntN(4)])
				case 2:
					c.net.Cut(ids[rng.IntN(4)], ids[rng.IntN(4)])
				}
				for i := range 200 {
					from, to := ids[rng.IntN(4)], ids[rng.IntN(4)]
					// Every fifth message goes to a service nobody handles.
					service := "test"
					if i%5 == 0 {
						service = "nobody"
					}
					_ = c.nodes[from].Send(context.Background(), to, service, seq(i))
				}
				c.flush(t)
				st := c.net.Stats()
				var sum memnet.LinkStats
				for l, ls := range st.Links {
					if ls.Sent+ls.Duplicated != ls.Delivered+ls.Dropped {
						t.Fatalf("link %s->%s: %+v; want sent+duplicated = delivered+dropped", l.From, l.To, ls)
					}
					sum.Sent += ls.Sent
					sum.Delivered += ls.Delivered
					sum.Dropped += ls.Dropped
					sum.Duplicated += ls.Duplicated
				}
				if sum != st.LinkStats {
					t.Fatalf("totals %+v; want the sum of the links %+v", st.LinkStats, sum)
				}
				c.net.Heal()
				for _, id := range ids {
					_ = c.net.Restart(id)
				}
			}
		})
	}
}

func TestFlushHonoursContext(t *testing.T) {
	cfg := memnet.DefaultConfig()
	c := newCluster(t, cfg, "a", "b")
	release := make(chan struct{})
	c.nodes["b"].Handle("block", func(transport.Message) { <-release })
	if err := c.nodes["a"].Send(context.Background(), "b", "block", nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.net.Flush(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Flush with a busy handler and a cancelled ctx = %v; want context.Canceled", err)
	}
	close(release)
	c.flush(t)
}

// TestBlockedSendsDoNotQueue checks that a message across a partition, cut
// or isolation is dropped when it is sent: it takes no room in the
// receiver's queue, so Send still returns nil when the queue is full of
// other traffic, and it is counted as dropped.
func TestBlockedSendsDoNotQueue(t *testing.T) {
	type node = transport.NodeID
	tests := []struct {
		name  string
		fault func(n *memnet.Network)
	}{
		{"partition", func(n *memnet.Network) { n.Partition([]node{"a"}) }},
		{"cut a->b", func(n *memnet.Network) { n.Cut("a", "b") }},
		{"isolate a", func(n *memnet.Network) { n.Isolate("a") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := memnet.DefaultConfig()
			cfg.QueueSize = 2
			c := newCluster(t, cfg, "a", "b", "c")
			started, release := make(chan struct{}), make(chan struct{})
			c.nodes["b"].Handle("block", func(transport.Message) {
				close(started)
				<-release
			})
			// Released on every path, so that a failed check does not
			// leave the handler blocking the network's Close.
			releaseOnce := sync.OnceFunc(func() { close(release) })
			defer releaseOnce()
			if err := c.nodes["c"].Send(context.Background(), "b", "block", nil); err != nil {
				t.Fatal(err)
			}
			<-started // b's delivery goroutine is busy: its queue only fills
			tt.fault(c.net)
			c.sendN(t, "a", "b", 0, 2*cfg.QueueSize)
			releaseOnce()
			c.flush(t)
			if st := c.net.LinkStats("a", "b"); st != (memnet.LinkStats{Sent: 4, Dropped: 4}) {
				t.Errorf("LinkStats(a, b) = %+v; want 4 sent, 4 dropped", st)
			}
		})
	}
}

// TestQueueBoundCountsDelayed checks that messages held back by a delay
// count against QueueSize like those due now.
func TestQueueBoundCountsDelayed(t *testing.T) {
	cfg := memnet.DefaultConfig()
	cfg.QueueSize = 4
	cfg.Faults = memnet.Faults{MinDelay: time.Hour, MaxDelay: time.Hour} // still queued when the test ends
	c := newCluster(t, cfg, "a", "b")
	c.sendN(t, "a", "b", 0, cfg.QueueSize)
	if err := c.nodes["a"].Send(context.Background(), "b", "test", seq(cfg.QueueSize)); !errors.Is(err, transport.ErrQueueFull) {
		t.Fatalf("Send with %d delayed messages queued = %v; want ErrQueueFull", cfg.QueueSize, err)
	}
}

// TestCloseDropsRestOfBatch checks that once Close begins, the messages
// still waiting for a node are dropped, even those its delivery goroutine
// had already taken from the queue.
func TestCloseDropsRestOfBatch(t *testing.T) {
	c := newCluster(t, memnet.DefaultConfig(), "a", "b")
	b := c.nodes["b"]
	blocked, unblockCh := make(chan struct{}), make(chan struct{})
	// Both handlers are released on every path, so a failed check does not
	// leave the cluster's Close waiting for them.
	unblock := sync.OnceFunc(func() { close(unblockCh) })
	defer unblock()
	b.Handle("block", func(transport.Message) {
		close(blocked)
		<-unblockCh
	})
	var got []uint64 // only b's delivery goroutine appends; read after Close
	first, releaseCh := make(chan struct{}), make(chan struct{})
	release := sync.OnceFunc(func() { close(releaseCh) })
	defer release()
	b.Handle("test", func(msg transport.Message) {
		got = append(got, binary.BigEndian.Uint64(msg.Payload))
		if len(got) == 1 {
			close(first)
			<-releaseCh
		}
	})
	if err := c.nodes["a"].Send(context.Background(), "b", "block", nil); err != nil {
		t.Fatal(err)
	}
	<-blocked
	c.sendN(t, "a", "b", 0, 3) // queued behind "block": delivered as one batch
	unblock()
	<-first // the batch is being delivered
	closed := make(chan struct{})
	go func() {
		_ = b.Close()
		close(closed)
	}()
	<-b.Done() // Close has begun
	release()
	<-closed
	if !slices.Equal(got, []uint64{0}) {
		t.Errorf("b's handler got %v; want [0] (the rest dropped by Close)", got)
	}
	if st := c.net.LinkStats("a", "b"); st.Delivered != 2 || st.Dropped != 2 {
		t.Errorf("LinkStats(a, b) = %+v; want 2 delivered (block and 0), 2 dropped", st)
	}
}
