package transporttest_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/internal/loopback"
	"github.com/distkit/distkit/transport/transporttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestLoopback runs the suite against the minimal in-process transport, which
// shows that the suite passes on a correct implementation.
func TestLoopback(t *testing.T) {
	transporttest.Run(t, func(t *testing.T, ids []transport.NodeID) []transport.Transport {
		net := loopback.New(64<<10, 1024)
		ts := make([]transport.Transport, len(ids))
		for i, id := range ids {
			n, err := net.Join(id)
			if err != nil {
				t.Fatal(err)
			}
			ts[i] = n
		}
		return ts
	}, transporttest.Options{FIFO: true, MaxPayload: 64 << 10})
}
