package lock_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/distkit/distkit/lock"
	"github.com/distkit/distkit/transport"
)

// TestReplicatedChaos runs clients that lock, write to a fenced resource
// and unlock, while the lock cluster's leader is killed and restarted from
// its data directory and clients are cut off from the service. It checks,
// in real time, that no two clients ever trusted their leases on the lock
// at once (each belief runs from Lock's return to Unlock or the session's
// bound, whichever is first) and that the resource only ever saw tokens
// rise. It runs in virtual time (synctest), so a busy machine slows it
// down without changing what happens in it.
func TestReplicatedChaos(t *testing.T) {
	synctest.Test(t, testReplicatedChaos)
}

func testReplicatedChaos(t *testing.T) {
	r, net := newMemnetService(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type interval struct {
		who        string
		token      lock.Token
		start, end time.Time
	}
	var (
		mu        sync.Mutex // guards beliefs, accepted and fence's check+append
		beliefs   []interval
		accepted  []lock.Token
		fence     lock.Fence
		rejected  int
		stop      = make(chan struct{})
		wg        sync.WaitGroup
		clientIDs = []transport.NodeID{"c0", "c1", "c2"}
	)
	write := func(tok lock.Token) {
		mu.Lock()
		defer mu.Unlock()
		if fence.Check(tok) != nil {
			rejected++
			return
		}
		accepted = append(accepted, tok)
	}
	for _, id := range clientIDs {
		svc := r.client(id)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				cfg := lock.DefaultSessionConfig()
				cfg.TTL = 500 * time.Millisecond
				s, err := lock.NewSession(ctx, svc, cfg)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					continue
				}
				for s.Err() == nil {
					select {
					case <-stop:
						s.Close()
						return
					default:
					}
					g, err := s.Lock(ctx, "x")
					if err != nil {
						break
					}
					start := time.Now()
					write(g.Token)
					time.Sleep(5 * time.Millisecond) // the critical section
					write(g.Token)
					end := time.Now()
					if b := s.Expiry(); b.Before(end) {
						end = b
					}
					mu.Lock()
					beliefs = append(beliefs, interval{string(id), g.Token, start, end})
					mu.Unlock()
					if err := s.Unlock(ctx, g); err != nil && !errors.Is(err, lock.ErrNotHolder) {
						break
					}
				}
				s.Close()
			}
		}()
	}
	for round := range 3 {
		time.Sleep(300 * time.Millisecond)
		leader := r.leader()
		r.kill(leader)
		net.Isolate(clientIDs[round]) // and a client loses contact for longer than its lease
		time.Sleep(700 * time.Millisecond)
		net.Heal()
		r.start(leader)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()

	slices.SortFunc(beliefs, func(a, b interval) int { return a.start.Compare(b.start) })
	for i := 1; i < len(beliefs); i++ {
		prev, cur := beliefs[i-1], beliefs[i]
		if cur.start.Before(prev.end) {
			t.Errorf("%s (token %d) trusted its lease from %v while %s (token %d) did until %v",
				cur.who, cur.token, cur.start.Format("05.000000"), prev.who, prev.token, prev.end.Format("05.000000"))
		}
		if cur.token <= prev.token {
			t.Errorf("token %d after token %d", cur.token, prev.token)
		}
	}
	if !slices.IsSorted(accepted) {
		t.Errorf("resource accepted tokens out of order: %v", accepted)
	}
	if len(beliefs) < 10 {
		t.Errorf("only %d grants: the test exercised too little", len(beliefs))
	}
	t.Logf("%d grants, %d writes accepted, %d rejected", len(beliefs), len(accepted), rejected)
}
