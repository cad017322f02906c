package memnet_test

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// TestChaosWhileSending changes faults, partitions, cuts and crashes while
// several goroutines send and handlers reply, then checks that the network
// settles with every message accounted for. Run it with -race.
func TestChaosWhileSending(t *testing.T) {
	ids := []transport.NodeID{"a", "b", "c", "d"}
	var logs strings.Builder
	var logMu sync.Mutex // guards logs
	cfg := memnet.DefaultConfig()
	cfg.QueueSize = 64 // small, so full queues happen too
	cfg.Logger = slog.New(slog.NewTextHandler(&lockedWriter{mu: &logMu, w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	net, err := memnet.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	nodes := make([]*memnet.Transport, len(ids))
	for i, id := range ids {
		if nodes[i], err = net.Join(id); err != nil {
			t.Fatal(err)
		}
		tr := nodes[i]
		tr.Handle("ping", func(msg transport.Message) {
			_ = tr.Send(context.Background(), msg.From, "pong", msg.Payload)
		})
		tr.Handle("pong", func(transport.Message) {})
		tr.Handle("boom", func(transport.Message) { panic("boom") })
	}

	// chaos applies one random change to the network.
	chaosRng := rand.New(rand.NewPCG(1, 1))
	chaos := func() {
		rng := chaosRng
		switch rng.IntN(6) {
		case 0:
			_ = net.SetFaults(memnet.Faults{Drop: rng.Float64() / 3, Duplicate: rng.Float64() / 3,
				MaxDelay: time.Duration(rng.IntN(500)) * time.Microsecond, Reorder: rng.Float64() / 3})
		case 1:
			net.Partition(ids[:rng.IntN(len(ids))])
		case 2:
			net.Cut(ids[rng.IntN(4)], ids[rng.IntN(4)])
		case 3:
			_ = net.Crash(ids[rng.IntN(4)])
		case 4:
			_ = net.Restart(ids[rng.IntN(4)])
		case 5:
			net.Heal()
			_ = net.SetLinkFaults(ids[rng.IntN(4)], ids[rng.IntN(4)], memnet.Faults{Drop: 0.5})
		}
		_ = net.Stats()
	}
	const perSender = 2000
	var wg sync.WaitGroup
	for i, tr := range nodes {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 9))
			services := []string{"ping", "pong", "boom", "nobody"}
			for k := range perSender {
				if i == 0 && k%20 == 0 {
					chaos() // only this goroutine touches chaosRng
				}
				err := tr.Send(context.Background(), ids[rng.IntN(len(ids))], services[rng.IntN(len(services))], []byte("x"))
				if err != nil && !errors.Is(err, transport.ErrQueueFull) {
					t.Errorf("Send = %v; want nil or ErrQueueFull", err)
					return
				}
			}
		})
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := net.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	st := net.Stats()
	for l, ls := range st.Links {
		if ls.Sent+ls.Duplicated != ls.Delivered+ls.Dropped {
			t.Errorf("link %s->%s: %+v; want sent+duplicated = delivered+dropped", l.From, l.To, ls)
		}
	}
	if st.Sent == 0 || st.Delivered == 0 || st.Dropped == 0 || st.HandlerPanics == 0 {
		t.Errorf("Stats() = sent %d, delivered %d, dropped %d, panics %d; want all non-zero",
			st.Sent, st.Delivered, st.Dropped, st.HandlerPanics)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(logs.String(), "handler panicked") {
		t.Errorf("log lacks the handler panics")
	}
}

// lockedWriter serialises writes from concurrent loggers.
type lockedWriter struct {
	mu *sync.Mutex // guards w; shared with the test that reads it
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
