package dkredis_test

import (
	"context"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// addr returns the test server's address, skipping the test when none is
// configured (failing under CI=true, where a missing server is a failure).
func addr(tb testing.TB) string {
	tb.Helper()
	a := os.Getenv("DISTKIT_REDIS_ADDR")
	if a == "" {
		msg := "no Redis: set DISTKIT_REDIS_ADDR=127.0.0.1:6379 after `redis-server --port 6379 --save ''`, or run `bash .ci/contrib/redis.sh`"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	return a
}

// newClient connects to the test server; the client is closed at the end
// of the test.
func newClient(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr(tb), PoolSize: 128})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		tb.Fatalf("redis at %s: %v", addr(tb), err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func testingGOMAXPROCS() int { return runtime.GOMAXPROCS(0) }
