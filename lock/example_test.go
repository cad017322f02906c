package lock_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/distkit/distkit/lock"
)

// A session takes a lock, writes to a fenced resource with the grant's
// token, and releases it; a stale token is then rejected.
func ExampleSession() {
	ctx := context.Background()
	svc, _ := lock.NewLocal(lock.DefaultLocalConfig())
	defer svc.Close()
	s, err := lock.NewSession(ctx, svc, lock.DefaultSessionConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	var store lock.Fence // the resource's check
	first, _ := s.Lock(ctx, "inventory")
	fmt.Println("write with token", first.Token, "->", store.Check(first.Token))
	s.Unlock(ctx, first)

	second, _ := s.Lock(ctx, "inventory")
	fmt.Println("write with token", second.Token, "->", store.Check(second.Token))
	err = store.Check(first.Token)
	fmt.Println("stale write rejected:", errors.Is(err, lock.ErrStaleToken))
	// Output:
	// write with token 1 -> <nil>
	// write with token 2 -> <nil>
	// stale write rejected: true
}

// The Table is the deterministic core: time is an argument.
func ExampleTable() {
	tbl, _ := lock.NewTable(lock.DefaultTableConfig())
	tbl.Open(t0, 1, "alice", ttl)
	tbl.Open(t0, 2, "bob", ttl)
	g, _, _ := tbl.Acquire(t0, 1, "x", true)
	_, granted, _ := tbl.Acquire(t0, 2, "x", true)
	fmt.Println("alice holds x with token", g.Token, "- bob granted:", granted)
	tbl.KeepAlive(t0.Add(ttl/2), 2)
	tbl.Tick(t0.Add(ttl)) // alice did not renew: her lease expires
	for _, g := range tbl.Granted() {
		fmt.Println(g.Owner, "now holds", g.Name, "with token", g.Token)
	}
	// Output:
	// alice holds x with token 1 - bob granted: false
	// bob now holds x with token 2
}

// An Elector is a leader election on a lock: the epoch is the fencing token.
func ExampleElector() {
	ctx := context.Background()
	svc, _ := lock.NewLocal(lock.DefaultLocalConfig())
	defer svc.Close()
	cfg := lock.DefaultElectorConfig()
	cfg.ID = "n1"
	n1, _ := lock.NewElector(svc, cfg)
	defer n1.Close()
	cfg.ID = "n2"
	n2, _ := lock.NewElector(svc, cfg)
	defer n2.Close()

	l, _ := n1.Campaign(ctx)
	fmt.Println("leader", l.ID, "epoch", l.Epoch)
	n1.Resign(ctx)
	l, _ = n2.Campaign(ctx)
	fmt.Println("leader", l.ID, "epoch", l.Epoch)
	// Output:
	// leader n1 epoch 1
	// leader n2 epoch 2
}
