package tcp_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/tcp"
	"github.com/distkit/distkit/transport/transporttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// cluster starts one transport per id on loopback, each knowing every
// other's address, and closes them when t ends.
func cluster(t testing.TB, ids []transport.NodeID, mutate func(*tcp.Config)) []*tcp.Transport {
	t.Helper()
	ts, err := tcp.ListenMesh(tcp.MeshConfigs(tcp.DefaultConfig(), mutate, ids...)...)
	if err != nil {
		t.Fatalf("ListenMesh(%v) = %v", ids, err)
	}
	for _, tr := range ts {
		t.Cleanup(func() { tr.Close() })
	}
	return ts
}

const conformanceFrameSize = 64 << 10

func TestConformance(t *testing.T) {
	transporttest.Run(t, func(t *testing.T, ids []transport.NodeID) []transport.Transport {
		ts := cluster(t, ids, func(c *tcp.Config) { c.MaxFrameSize = conformanceFrameSize })
		out := make([]transport.Transport, len(ts))
		for i, tr := range ts {
			out[i] = tr
		}
		return out
	}, transporttest.Options{
		FIFO: true,
		// The suite sends its large messages to service "large": one
		// byte of name length and five of name share the frame.
		MaxPayload: conformanceFrameSize - 1 - len("large"),
	})
}
