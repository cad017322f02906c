package dketcd_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	dketcd "github.com/distkit/distkit/contrib/etcd"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// gRPC's resolver and balancer goroutines end shortly after the
		// client closes, not before Close returns.
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreTopFunction("google.golang.org/grpc.(*addrConn).resetTransportAndUnlock"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// endpoints returns the test etcd's client endpoints, skipping the test
// when none is configured (failing under CI=true).
func endpoints(tb testing.TB) []string {
	tb.Helper()
	e := os.Getenv("DISTKIT_ETCD_ENDPOINTS")
	if e == "" {
		msg := "no etcd: set DISTKIT_ETCD_ENDPOINTS=127.0.0.1:2379 after starting `etcd` (the etcd-server package), or run `bash .ci/contrib/etcd.sh`"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	return strings.Split(e, ",")
}

// newClient connects to the test etcd; closed at the end of the test.
func newClient(tb testing.TB) *clientv3.Client {
	tb.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints(tb), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		tb.Fatalf("etcd client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Get(ctx, "distkit-ping"); err != nil {
		c.Close()
		tb.Fatalf("etcd at %v: %v", endpoints(tb), err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func newService(tb testing.TB, c *clientv3.Client) *dketcd.Service {
	tb.Helper()
	s, err := dketcd.New(c, dketcd.DefaultConfig())
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
