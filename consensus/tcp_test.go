package consensus_test

import (
	"context"
	"testing"
	"time"

	"github.com/distkit/distkit/consensus/consensustest"
)

// TestTCPFailoverAndRestart runs the fault scenarios over real sockets: the
// leader is killed (node and transport), a new leader takes over without
// losing acknowledged writes, and the old leader restarts from its data
// directory, on a new transport at the same address, and catches up.
func TestTCPFailoverAndRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := consensustest.Start(t, 3, consensustest.WithNetwork(consensustest.TCP), consensustest.WithDataDir())
	cl := c.Client()
	acked := map[string]string{}
	writeKeys(ctx, t, cl, acked, "a", "1", 20)
	old := cl.Leader()
	c.Crash(old)

	last := writeKeys(ctx, t, cl, acked, "b", "2", 20)
	if cl.Leader() == old {
		t.Fatalf("new leader is the killed one, %s", old)
	}
	c.Restart(old)
	checkAcked(ctx, t, c, c.IDs(), last, acked)
}
