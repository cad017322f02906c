package memnet_test

import (
	"context"
	"errors"
	"runtime"
	"testing"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// BenchmarkMemnetSend measures Send of a 128-byte payload between two nodes
// on a perfect network, including delivery to a handler on the receiving
// node's goroutine (a full queue makes the sender yield and retry, so the
// figure is end-to-end throughput). The "lossy" case adds faults so the
// seeded fate decision is on the path too.
func BenchmarkMemnetSend(b *testing.B) {
	nets := []struct {
		name   string
		faults memnet.Faults
	}{
		{"128B", memnet.Faults{}},
		{"128B-lossy", memnet.Faults{Drop: 0.05, Duplicate: 0.05}},
	}
	for _, nt := range nets {
		b.Run(nt.name, func(b *testing.B) {
			cfg := memnet.DefaultConfig()
			cfg.Faults = nt.faults
			net, err := memnet.New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer net.Close()
			a, _ := net.Join("a")
			peer, _ := net.Join("b")
			peer.Handle("bench", func(transport.Message) {})
			payload := make([]byte, 128)
			ctx := context.Background()
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				for {
					err := a.Send(ctx, "b", "bench", payload)
					if err == nil {
						break
					}
					if !errors.Is(err, transport.ErrQueueFull) {
						b.Fatal(err)
					}
					runtime.Gosched()
				}
			}
			if err := net.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
