package lock_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/distkit/distkit/clock"
	"github.com/distkit/distkit/election"
	"github.com/distkit/distkit/lock"
	"github.com/distkit/distkit/transport"
)

func newElector(t *testing.T, svc lock.Service, id transport.NodeID) *lock.Elector {
	t.Helper()
	cfg := lock.DefaultElectorConfig()
	cfg.ID = id
	cfg.Session.TTL = 300 * time.Millisecond
	e, err := lock.NewElector(svc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// waitFor reads views from ch until one satisfies ok.
func waitFor(t *testing.T, ch <-chan election.Leader, what string, ok func(election.Leader) bool) election.Leader {
	t.Helper()
	for l := range ch {
		if ok(l) {
			return l
		}
	}
	t.Fatalf("observer closed before %s", what)
	return election.Leader{}
}

func TestElectorHandsOverOnResign(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l := newLocal(t)
	n1, n2 := newElector(t, l, "n1"), newElector(t, l, "n2")
	won, err := n1.Campaign(ctx)
	if err != nil || won.ID != "n1" || won.Epoch == 0 {
		t.Fatalf("n1.Campaign = %+v, %v; want n1 with an epoch", won, err)
	}
	if again, err := n1.Campaign(ctx); err != nil || again != won {
		t.Errorf("n1.Campaign while leading = %+v, %v; want %+v", again, err, won)
	}
	seen := waitFor(t, n2.Observe(ctx), "n2 sees n1", func(v election.Leader) bool { return v.ID == "n1" })
	if seen != won {
		t.Errorf("n2 observes %+v; want %+v", seen, won)
	}
	type result struct {
		l   election.Leader
		err error
	}
	c2 := make(chan result, 1)
	go func() {
		l, err := n2.Campaign(ctx)
		c2 <- result{l, err}
	}()
	if err := n1.Resign(ctx); err != nil {
		t.Fatalf("n1.Resign = %v", err)
	}
	r := <-c2
	if r.err != nil || r.l.ID != "n2" || r.l.Epoch <= won.Epoch {
		t.Fatalf("n2.Campaign = %+v, %v; want n2 with an epoch above %d", r.l, r.err, won.Epoch)
	}
	waitFor(t, n1.Observe(ctx), "n1 sees n2", func(v election.Leader) bool { return v == r.l })
}

func TestElectorLeaseLossEndsLeadership(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l := newLocal(t)
	f := &flaky{svc: l}
	n1 := newElector(t, f, "n1")
	won, err := n1.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	views := n1.Observe(ctx)
	waitFor(t, views, "n1 leads", func(v election.Leader) bool { return v == won })
	f.cut()
	waitFor(t, views, "n1 loses", func(v election.Leader) bool { return !v.Known() })
	n2 := newElector(t, l, "n2")
	next, err := n2.Campaign(ctx)
	if err != nil || next.Epoch <= won.Epoch {
		t.Errorf("n2.Campaign = %+v, %v; want an epoch above %d", next, err, won.Epoch)
	}
}

func TestElectorClose(t *testing.T) {
	l := newLocal(t)
	e := newElector(t, l, "n1")
	if _, err := e.Campaign(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if _, err := e.Campaign(context.Background()); !errors.Is(err, election.ErrClosed) {
		t.Errorf("Campaign after Close = %v; want election.ErrClosed", err)
	}
	if h, ok := l.Holder("leader"); ok {
		t.Errorf("election lock still held by %+v after Close", h)
	}
}

func TestElectorConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  lock.ElectorConfig
	}{
		{"no ID", lock.ElectorConfig{Name: "x", Session: lock.DefaultSessionConfig()}},
		{"no name", lock.ElectorConfig{ID: "n1", Session: lock.DefaultSessionConfig()}},
		{"bad session", lock.ElectorConfig{ID: "n1", Name: "x"}},
		{"negative poll", lock.ElectorConfig{ID: "n1", Name: "x", Session: lock.DefaultSessionConfig(), PollInterval: -1}},
	}
	for _, tt := range tests {
		if _, err := lock.NewElector(newLocal(t), tt.cfg); !errors.Is(err, lock.ErrInvalidConfig) {
			t.Errorf("%s: NewElector err = %v; want ErrInvalidConfig", tt.name, err)
		}
	}
}

// leadingOnManualClock returns an Elector whose session reads the manual
// clock it returns, once it leads (won), with its session TTL. The TTL is
// DefaultElectorConfig's, 10 s: the watchdog's real timer stays out of the
// way of a test that moves the manual clock past the lease bound.
func leadingOnManualClock(ctx context.Context, t *testing.T) (*lock.Elector, *clock.Manual, time.Duration, election.Leader) {
	t.Helper()
	clk := clock.NewManual(time.Now())
	cfg := lock.DefaultElectorConfig()
	cfg.ID = "n1"
	cfg.Session.Clock = clk
	e, err := lock.NewElector(newLocal(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	won, err := e.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return e, clk, cfg.Session.TTL, won
}

func TestElectorLeaderIsEmptyOnceTheBoundPassed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, clk, ttl, won := leadingOnManualClock(ctx, t)
	if got := e.Leader(); got != won {
		t.Fatalf("Leader() = %+v; want %+v", got, won)
	}
	clk.Advance(ttl) // the lease bound passes; the watchdog has not run yet
	if got := e.Leader(); got == won {
		t.Errorf("Leader() = %+v after the lease bound passed; want no leader known", got)
	}
}

// TestElectorCampaignOnceTheBoundPassed: Campaign does not return a
// leadership whose lease bound passed before the watchdog ran (found by
// review: its "already leading" path did, while Leader said no leader).
// It waits for the session to end instead, here past the caller's
// deadline (the watchdog's real timer, at 10 s, does not end it first).
func TestElectorCampaignOnceTheBoundPassed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, clk, ttl, won := leadingOnManualClock(ctx, t)
	if again, err := e.Campaign(ctx); err != nil || again != won {
		t.Fatalf("Campaign while leading = %+v, %v; want the leadership held, %+v", again, err, won)
	}
	clk.Advance(ttl) // the lease bound passes; the watchdog has not run yet
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if again, err := e.Campaign(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Campaign after the lease bound passed = %+v, %v; want to wait (the deadline), not %+v", again, err, won)
	}
}

// TestElectorNilContext: Campaign and Resign refuse a nil context with
// election.ErrNilContext, as the other electors do (found by review: they
// panicked).
func TestElectorNilContext(t *testing.T) {
	e := newElector(t, newLocal(t), "n1")
	//lint:ignore SA1012 a nil context is what is tested
	if _, err := e.Campaign(nil); !errors.Is(err, election.ErrNilContext) {
		t.Errorf("Campaign(nil) = %v; want ErrNilContext", err)
	}
	//lint:ignore SA1012 a nil context is what is tested
	if err := e.Resign(nil); !errors.Is(err, election.ErrNilContext) {
		t.Errorf("Resign(nil) = %v; want ErrNilContext", err)
	}
}

// holderIs is a Service that answers every OpHolder with grant g.
type holderIs struct{ g lock.Grant }

func (h holderIs) Do(_ context.Context, req lock.Request) (lock.Response, error) {
	if req.Op == lock.OpHolder {
		return lock.Response{Granted: true, Grant: h.g}, nil
	}
	return lock.Response{}, nil
}

// TestElectorPollDoesNotNameItself: the poll reports the election lock's
// holder as leader, except this node: a grant of this node's that the
// service still shows may be under a lease this node already lost (its
// bound passes before the service expires it), and only the node's own
// lease-checked leadership may name it.
func TestElectorPollDoesNotNameItself(t *testing.T) {
	tests := []struct {
		owner string
		want  election.Leader
	}{
		{"n2", election.Leader{ID: "n2", Epoch: 7}},
		{"n1", election.Leader{}},
	}
	for _, tt := range tests {
		synctest.Test(t, func(t *testing.T) {
			cfg := lock.DefaultElectorConfig()
			cfg.ID = "n1"
			e, err := lock.NewElector(holderIs{lock.Grant{Name: cfg.Name, Session: 9, Owner: tt.owner, Token: 7}}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			synctest.Wait() // the first poll has answered
			if got := e.Leader(); got != tt.want {
				t.Errorf("Leader() with the lock held by %s = %+v; want %+v", tt.owner, got, tt.want)
			}
		})
	}
}

// TestElectorPublishesLeaseLoss: when the leadership's lease is lost (here
// the service stops answering), observers are told at once that no leader
// is known, in virtual time, without waiting for anyone's deadline.
func TestElectorPublishesLeaseLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLocal(t)
		f := &flaky{svc: l}
		cfg := lock.DefaultElectorConfig()
		cfg.ID = "n1"
		cfg.Session.TTL = 3 * time.Second // the bound is 2.7 s after the last acknowledged keepalive
		e, err := lock.NewElector(f, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		won, err := e.Campaign(ctx)
		if err != nil {
			t.Fatal(err)
		}
		views := e.Observe(ctx)
		if v := <-views; v != won {
			t.Fatalf("first view = %+v; want %+v", v, won)
		}
		f.cut()
		time.Sleep(cfg.Session.TTL) // past the lease bound
		synctest.Wait()
		select {
		case v := <-views:
			if v.Known() {
				t.Errorf("view after the lease was lost = %+v; want no leader known", v)
			}
		default:
			t.Error("no view published after the leadership's lease was lost")
		}
	})
}

// TestElectorResignHandsOverAtOnce: Resign unlocks the election lock, so
// the next candidate in line leads at once (not a TTL later, and not never:
// the resigned node's session stays alive); when it returns, the resigned
// node's own view no longer names it.
func TestElectorResignHandsOverAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLocal(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var es []*lock.Elector
		for _, id := range []transport.NodeID{"n1", "n2"} {
			cfg := lock.DefaultElectorConfig()
			cfg.ID = id
			e, err := lock.NewElector(l, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			es = append(es, e)
		}
		won, err := es[0].Campaign(ctx)
		if err != nil {
			t.Fatal(err)
		}
		next := make(chan election.Leader, 1)
		go func() {
			won2, _ := es[1].Campaign(ctx)
			next <- won2
		}()
		synctest.Wait()
		if err := es[0].Resign(ctx); err != nil {
			t.Fatalf("Resign = %v", err)
		}
		if got := es[0].Leader(); got.ID == "n1" {
			t.Errorf("n1.Leader() right after Resign = %+v; want a view that no longer names n1 (election.Elector)", got)
		}
		synctest.Wait()
		select {
		case got := <-next:
			if got.ID != "n2" || got.Epoch <= won.Epoch {
				t.Errorf("n2.Campaign = %+v; want n2 with an epoch above %d", got, won.Epoch)
			}
		default:
			t.Error("n2 does not lead after n1 resigned")
		}
	})
}
