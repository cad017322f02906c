package transport_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/internal/loopback"
)

// lossy wraps a Transport and drops or duplicates sent messages with
// seeded probabilities.
type lossy struct {
	transport.Transport
	drop, dup float64
	// mu guards rng, which is not safe for concurrent use.
	mu  sync.Mutex
	rng *rand.Rand
}

func (l *lossy) Send(ctx context.Context, to transport.NodeID, service string, payload []byte) error {
	l.mu.Lock()
	drop, dup := l.rng.Float64() < l.drop, l.rng.Float64() < l.dup
	l.mu.Unlock()
	if drop {
		return nil
	}
	if dup {
		_ = l.Transport.Send(ctx, to, service, payload)
	}
	return l.Transport.Send(ctx, to, service, payload)
}

// TestCallOverLossyNetwork checks, over seeded runs of a network that
// drops and duplicates messages, that every call either returns exactly the
// response its own request deserves or fails with a deadline, and that no
// call stays pending.
func TestCallOverLossyNetwork(t *testing.T) {
	seeds := uint64(3)
	if os.Getenv("DISTKIT_SOAK") == "1" {
		seeds = 100
	}
	for seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			net := loopback.New(1024, 4096)
			var rpcs [2]*transport.RPC
			for i, id := range []transport.NodeID{"a", "b"} {
				n, err := net.Join(id)
				if err != nil {
					t.Fatal(err)
				}
				defer n.Close()
				l := &lossy{Transport: n, drop: 0.2, dup: 0.2, rng: rand.New(rand.NewPCG(seed, uint64(i)))}
				r, err := transport.NewRPC(l, transport.DefaultRPCConfig())
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				rpcs[i] = r
			}
			// The reference: the response to x is x+1.
			rpcs[1].Handle("inc", func(_ context.Context, _ transport.NodeID, req []byte) ([]byte, error) {
				return []byte{req[0] + 1}, nil
			})
			const callers, calls = 8, 20
			var wg sync.WaitGroup
			errs := make(chan error, callers)   // one slot per caller
			ok := make(chan int, callers*calls) // one slot per call: callers never block
			for g := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range calls {
						x := byte(g*calls + i)
						ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
						got, err := rpcs[0].Call(ctx, "b", "inc", []byte{x})
						cancel()
						switch {
						case err == nil && (len(got) != 1 || got[0] != x+1):
							errs <- fmt.Errorf("Call(inc %d) = %v; want [%d]", x, got, x+1)
							return
						case err != nil && !errors.Is(err, context.DeadlineExceeded):
							errs <- fmt.Errorf("Call(inc %d) = %v; want a response or a deadline", x, err)
							return
						case err == nil:
							ok <- 1
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if len(ok) == 0 {
				t.Error("no call succeeded over a network that delivers 80% of messages")
			}
			if p := rpcs[0].Stats().Pending; p != 0 {
				t.Errorf("Stats().Pending = %d after every call returned; want 0", p)
			}
		})
	}
}
