package tcp_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distkit/distkit/transport"
)

// BenchmarkTCPSend measures one-way throughput between two nodes on
// loopback: the sender keeps the queue full (retrying on ErrQueueFull) and
// the clock stops when the receiver has every message.
func BenchmarkTCPSend(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"128B", 128}, {"4KiB", 4 << 10}, {"64KiB", 64 << 10}} {
		b.Run(size.name, func(b *testing.B) {
			ts := cluster(b, []transport.NodeID{"a", "b"}, nil)
			var received atomic.Int64
			var target atomic.Int64
			target.Store(-1)
			done := make(chan struct{}, 1) // signalled once per run
			ts[1].Handle("bench", func(transport.Message) {
				if received.Add(1) == target.Load() {
					done <- struct{}{}
				}
			})
			payload := make([]byte, size.n)
			ctx := context.Background()
			// Warm the connection up outside the measurement.
			sendAll(b, ctx, ts[0], payload, 1)
			for received.Load() < 1 {
				runtime.Gosched()
			}
			received.Store(0)
			b.SetBytes(int64(size.n))
			b.ReportAllocs()
			b.ResetTimer()
			target.Store(int64(b.N))
			sendAll(b, ctx, ts[0], payload, b.N)
			<-done
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

func sendAll(b *testing.B, ctx context.Context, from transport.Transport, payload []byte, n int) {
	for range n {
		for {
			err := from.Send(ctx, "b", "bench", payload)
			if err == nil {
				break
			}
			if !errors.Is(err, transport.ErrQueueFull) {
				b.Fatal(err)
			}
			// Backpressure: let the writer drain part of the queue
			// rather than spinning against it for the CPU.
			time.Sleep(50 * time.Microsecond)
		}
	}
}

// BenchmarkTCPCall measures a request/response round trip through
// transport.RPC between two nodes on loopback.
func BenchmarkTCPCall(b *testing.B) {
	ts := cluster(b, []transport.NodeID{"a", "b"}, nil)
	client, err := transport.NewRPC(ts[0], transport.DefaultRPCConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	server, err := transport.NewRPC(ts[1], transport.DefaultRPCConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer server.Close()
	server.Handle("echo", func(_ context.Context, _ transport.NodeID, req []byte) ([]byte, error) { return req, nil })
	req := make([]byte, 128)
	ctx := context.Background()
	if _, err := client.Call(ctx, "b", "echo", req); err != nil {
		b.Fatal(fmt.Errorf("warm-up call: %w", err))
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := client.Call(ctx, "b", "echo", req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/call")
}
