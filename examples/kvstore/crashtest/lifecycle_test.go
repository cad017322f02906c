//go:build unix

package crashtest

import (
	"context"
	"testing"
	"time"
)

// TestCleanStopClosesSession stops a follower with SIGTERM: it exits 0 and
// ends its client session through the log, so the leader's session count
// drops at once instead of at expiry.
func TestCleanStopClosesSession(t *testing.T) {
	if testing.Short() {
		t.Skip("crashtest: builds and runs the kvstore binary; skipped with -short")
	}
	bin := buildKVStore(t)
	c := newCluster(t, bin, keptDir(t), 3, time.Now())
	ctx := context.Background()
	for _, nd := range c.nodes {
		if err := c.start(nd); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.waitLeader(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// A write through each node opens that node's session.
	cl := &client{c: c, h: &history{}, t: t}
	for _, nd := range c.nodes {
		if o := cl.do(ctx, nd, kvInput{Op: "put", Key: "k", Value: nd.id}); o != answered {
			t.Fatalf("PUT through %s was not answered", nd.id)
		}
	}
	leader := c.leader(ctx)
	if leader == nil {
		t.Fatal("no leader")
	}
	sessions := func() int {
		st, err := c.status(ctx, leader)
		if err != nil {
			t.Fatal(err)
		}
		return st.Sessions
	}
	if got := sessions(); got != len(c.nodes) {
		t.Fatalf("leader %s has %d sessions after a write through each node; want %d", leader.id, got, len(c.nodes))
	}
	var f *node
	for _, nd := range c.nodes {
		if nd != leader {
			f = nd
			break
		}
	}
	if err := c.terminate(f, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	// Close committed before the process exited: the leader applied it.
	if got := sessions(); got != len(c.nodes)-1 {
		t.Fatalf("leader %s has %d sessions after %s stopped cleanly; want %d", leader.id, got, f.id, len(c.nodes)-1)
	}
}
