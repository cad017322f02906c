package dketcd_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/internal/benchload"
	"github.com/distkit/distkit/lock"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// BenchmarkEtcdLock: acquire + release from 16 clients, each on its own
// lock, against etcd and, side by side in the same run, against distkit's
// replicated lock service (three members on memnet, in this process).
// The etcd server is whatever DISTKIT_ETCD_ENDPOINTS names (one member on
// loopback in .ci/contrib/etcd.sh), so the two differ in network and
// durability too: etcd fsyncs its WAL, the replicated service here keeps
// its log in memory.
func BenchmarkEtcdLock(b *testing.B) {
	const clients = 16
	services := []struct {
		name string
		open func(b *testing.B) func(i int) lock.Service
	}{
		{"etcd", func(b *testing.B) func(int) lock.Service {
			svc := newService(b, newClient(b))
			return func(int) lock.Service { return svc }
		}},
		{"distkit-replicated", replicatedService},
	}
	for _, s := range services {
		b.Run(fmt.Sprintf("%s/clients=%d", s.name, clients), func(b *testing.B) {
			svc := s.open(b)
			sessions := make([]*lock.Session, clients)
			for i := range sessions {
				cfg := lock.DefaultSessionConfig()
				cfg.TTL = 5 * time.Second
				ss, err := lock.NewSession(context.Background(), svc(i), cfg)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { ss.Close() })
				sessions[i] = ss
			}
			prefix := fmt.Sprintf("bench-%d-", time.Now().UnixNano())
			benchload.Run(b, clients, "ops/s", func(ctx context.Context, i int) error {
				g, err := sessions[i].Lock(ctx, prefix+fmt.Sprint(i))
				if err != nil {
					return err
				}
				return sessions[i].Unlock(ctx, g)
			})
		})
	}
}

// replicatedService starts a three-member replicated lock service on
// memnet and returns a client per index.
func replicatedService(b *testing.B) func(i int) lock.Service {
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { net.Close() })
	members := []transport.NodeID{"s1", "s2", "s3"}
	var servers []*lock.Server
	for i, id := range members {
		tr, err := net.Join(id)
		if err != nil {
			b.Fatal(err)
		}
		rpc, err := transport.NewRPC(tr, transport.DefaultRPCConfig())
		if err != nil {
			b.Fatal(err)
		}
		cfg := lock.DefaultServerConfig()
		cfg.Consensus.ID, cfg.Consensus.Peers, cfg.Consensus.Seed = id, members, uint64(i+1)
		cfg.TickInterval = 20 * time.Millisecond
		srv, err := lock.NewServer(cfg, tr, rpc)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			srv.Close()
			rpc.Close()
			tr.Close()
		})
		servers = append(servers, srv)
	}
	deadline := time.Now().Add(10 * time.Second)
	for led := false; !led; {
		for _, srv := range servers {
			led = led || srv.Node().Status().Role == raft.Leader
		}
		if time.Now().After(deadline) {
			b.Fatal("no leader elected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	clients := map[int]lock.Service{}
	return func(i int) lock.Service {
		if c, ok := clients[i]; ok {
			return c
		}
		tr, err := net.Join(transport.NodeID(fmt.Sprint("client-", i)))
		if err != nil {
			b.Fatal(err)
		}
		rpc, err := transport.NewRPC(tr, transport.DefaultRPCConfig())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			rpc.Close()
			tr.Close()
		})
		cfg := lock.DefaultRemoteConfig()
		cfg.Servers = members
		rem, err := lock.NewRemote(rpc, cfg)
		if err != nil {
			b.Fatal(err)
		}
		clients[i] = rem
		return rem
	}
}
