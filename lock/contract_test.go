package lock_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/distkit/distkit/lock"
	"github.com/distkit/distkit/lock/locktest"
	"github.com/distkit/distkit/transport"
)

// TestLocalConformance runs the exported lock.Service conformance suite
// (locktest) against Local.
func TestLocalConformance(t *testing.T) {
	l, err := lock.NewLocal(lock.DefaultLocalConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	locktest.Run(t, locktest.Harness{
		Open: func(t *testing.T) lock.Service { return l },
		TTL:  time.Second, // short expiry waits, but room for -race on a loaded machine
		Waiters: func(svc lock.Service, name string) int {
			return len(svc.(*lock.Local).Waiters(name))
		},
	})
}

// TestReplicatedConformance runs the suite against a three-member
// replicated service on memnet, each subtest through its own client.
func TestReplicatedConformance(t *testing.T) {
	r, _ := newMemnetService(t, false)
	n := 0
	locktest.Run(t, locktest.Harness{
		Open: func(t *testing.T) lock.Service {
			n++
			return r.client(transport.NodeID(fmt.Sprint("conformance-", n)))
		},
		TTL: 2 * time.Second,
	})
}
