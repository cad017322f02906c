package lock_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/distkit/distkit/clock"
	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/lock"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// holderService is a three-member service whose members stamp with one
// manual clock and never propose ticks by themselves (TickInterval of an
// hour): time moves only when the test says, and expiry happens only if an
// OpHolder (or another request) carries a stamp past it.
func holderService(t *testing.T, m *clock.Manual) (*lock.Remote, map[transport.NodeID]*lock.Server) {
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { net.Close() })
	members := map[transport.NodeID]*lock.Server{}
	for _, id := range servers {
		tr, err := net.Join(id)
		if err != nil {
			t.Fatal(err)
		}
		rpc, err := transport.NewRPC(tr, transport.DefaultRPCConfig())
		if err != nil {
			t.Fatal(err)
		}
		cfg := lock.DefaultServerConfig()
		cfg.Consensus.ID, cfg.Consensus.Peers = id, servers
		cfg.TickInterval = time.Hour
		cfg.Clock = m
		srv, err := lock.NewServer(cfg, tr, rpc)
		if err != nil {
			t.Fatal(err)
		}
		members[id] = srv
		t.Cleanup(func() {
			srv.Close()
			rpc.Close()
			tr.Close()
		})
	}
	ctr, err := net.Join("client")
	if err != nil {
		t.Fatal(err)
	}
	crpc, err := transport.NewRPC(ctr, transport.DefaultRPCConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		crpc.Close()
		ctr.Close()
	})
	rcfg := lock.DefaultRemoteConfig()
	rcfg.Servers = servers
	rem, err := lock.NewRemote(crpc, rcfg)
	if err != nil {
		t.Fatal(err)
	}
	return rem, members
}

func holderLeader(members map[transport.NodeID]*lock.Server) *lock.Server {
	for {
		for _, srv := range members {
			if srv.Node().Status().Role == raft.Leader {
				return srv
			}
		}
		time.Sleep(time.Millisecond) // virtual time
	}
}

// TestHolderReadNeverReportsExpiredHolder: OpHolder is served through
// consensus.Node.Read (no log entry) while nothing is due, and never
// reports a holder whose session's lease has ended by the leader's clock
// at the time of the answer, although no command has expired it yet: the
// bound on that staleness is zero.
func TestHolderReadNeverReportsExpiredHolder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := clock.NewManual(time.Unix(1_000_000, 0))
		rem, members := holderService(t, m)
		ctx := context.Background()
		l := holderLeader(members)
		const ttl = 2 * time.Second
		if _, err := rem.Do(ctx, lock.Request{Op: lock.OpOpen, Session: 7, Owner: "a", TTL: ttl}); err != nil {
			t.Fatal(err)
		}
		if r, err := rem.Do(ctx, lock.Request{Op: lock.OpTryAcquire, Session: 7, Name: "L"}); err != nil || !r.Granted {
			t.Fatalf("TryAcquire = %+v, %v; want granted", r, err)
		}
		before := l.Node().Status().LastIndex
		steps := []struct {
			advance time.Duration
			held    bool
		}{
			{0, true},
			{ttl - time.Nanosecond, true}, // the last instant of the lease
			{time.Nanosecond, false},      // the lease ends: expired, whatever was applied
		}
		var elapsed time.Duration
		for i, st := range steps {
			m.Advance(st.advance)
			elapsed += st.advance
			r, err := rem.Do(ctx, lock.Request{Op: lock.OpHolder, Name: "L"})
			if err != nil {
				t.Fatalf("step %d: Holder = %v", i, err)
			}
			if r.Granted != st.held || (r.Granted && r.Grant.Session != 7) {
				t.Fatalf("step %d (lease ends at +%v, clock at +%v): Holder = %+v; want held=%v", i, ttl, elapsed, r, st.held)
			}
			if st.held {
				if after := l.Node().Status().LastIndex; after != before {
					t.Fatalf("step %d: Holder appended %d log entries; want none (served through Read)", i, after-before)
				}
			}
		}
	})
}
