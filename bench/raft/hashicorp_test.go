package raft

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb"
)

type hcounter struct{ n atomic.Uint64 }

func (c *hcounter) Apply(*hraft.Log) any { c.n.Add(1); return nil }
func (c *hcounter) Snapshot() (hraft.FSMSnapshot, error) {
	return hsnapshot(c.n.Load()), nil
}
func (c *hcounter) Restore(r io.ReadCloser) error {
	defer r.Close()
	var v uint64
	_, err := fmt.Fscan(r, &v)
	c.n.Store(v)
	return err
}

type hsnapshot uint64

func (s hsnapshot) Persist(sink hraft.SnapshotSink) error {
	if _, err := fmt.Fprint(sink, uint64(s)); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}
func (hsnapshot) Release() {}

// hashicorpCluster starts three hashicorp/raft nodes and returns a propose
// function bound to the leader. durable selects its TCP transport with a
// raft-boltdb store (fsync per batch) and file snapshots; otherwise its
// in-memory transport and stores.
func hashicorpCluster(b *testing.B, durable bool) (proposeFunc, func()) {
	b.Helper()
	type member struct {
		id    hraft.ServerID
		addr  hraft.ServerAddress
		trans hraft.Transport
		logs  hraft.LogStore
		stab  hraft.StableStore
		snaps hraft.SnapshotStore
		close func()
	}
	var ms []*member
	for i := range 3 {
		m := &member{id: hraft.ServerID(fmt.Sprintf("h%d", i+1))}
		if durable {
			dir := b.TempDir()
			tr, err := hraft.NewTCPTransport("127.0.0.1:0", nil, 3, 10*time.Second, io.Discard)
			if err != nil {
				b.Fatal(err)
			}
			store, err := raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db"))
			if err != nil {
				b.Fatal(err)
			}
			snaps, err := hraft.NewFileSnapshotStore(dir, 1, io.Discard)
			if err != nil {
				b.Fatal(err)
			}
			m.trans, m.addr, m.logs, m.stab, m.snaps = tr, tr.LocalAddr(), store, store, snaps
			m.close = func() { tr.Close(); store.Close() }
		} else {
			addr, tr := hraft.NewInmemTransport("")
			store := hraft.NewInmemStore()
			m.trans, m.addr, m.logs, m.stab, m.snaps = tr, addr, store, store, hraft.NewInmemSnapshotStore()
			m.close = func() { tr.Close() }
		}
		ms = append(ms, m)
	}
	if !durable {
		for _, a := range ms {
			for _, c := range ms {
				if a != c {
					a.trans.(*hraft.InmemTransport).Connect(c.addr, c.trans)
				}
			}
		}
	}
	var servers []hraft.Server
	for _, m := range ms {
		servers = append(servers, hraft.Server{ID: m.id, Address: m.addr})
	}
	var rafts []*hraft.Raft
	cleanup := func() {
		// Disconnect the in-memory transports first and shut all nodes
		// down at once: shutting them down one by one can hang
		// hashicorp/raft on a replication pipeline to a peer that is
		// already gone.
		for _, m := range ms {
			if tr, ok := m.trans.(*hraft.InmemTransport); ok {
				tr.DisconnectAll()
			}
		}
		var fs []hraft.Future
		for _, r := range rafts {
			fs = append(fs, r.Shutdown())
		}
		for _, f := range fs {
			f.Error()
		}
		for _, m := range ms {
			m.close()
		}
	}
	for i, m := range ms {
		cfg := hraft.DefaultConfig()
		cfg.LocalID = m.id
		cfg.LogOutput = io.Discard
		// hashicorp/raft's default timeouts (1 s): shorter ones make it
		// lose leadership under this load on a small machine.
		if i == 0 {
			if err := hraft.BootstrapCluster(cfg, m.logs, m.stab, m.snaps, m.trans, hraft.Configuration{Servers: servers}); err != nil {
				cleanup()
				b.Fatal(err)
			}
		}
		r, err := hraft.NewRaft(cfg, &hcounter{}, m.logs, m.stab, m.snaps, m.trans)
		if err != nil {
			cleanup()
			b.Fatal(err)
		}
		rafts = append(rafts, r)
	}
	findLeader := func() (*hraft.Raft, error) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			for _, r := range rafts {
				if r.State() == hraft.Leader {
					return r, nil
				}
			}
			if time.Now().After(deadline) {
				return nil, errors.New("hashicorp/raft elected no leader")
			}
			time.Sleep(10 * time.Millisecond) // hashicorp/raft offers no leader notification to wait on here
		}
	}
	first, err := findLeader()
	if err != nil {
		cleanup()
		b.Fatal(err)
	}
	if err := first.Barrier(10 * time.Second).Error(); err != nil {
		cleanup()
		b.Fatal(err)
	}
	var leader atomic.Pointer[hraft.Raft]
	leader.Store(first)
	return func(ctx context.Context, cmd []byte) error {
		err := leader.Load().Apply(cmd, 10*time.Second).Error()
		if err == nil || (!errors.Is(err, hraft.ErrNotLeader) && !errors.Is(err, hraft.ErrLeadershipLost)) {
			return err
		}
		// Leadership moved: find the new leader and retry once.
		r, ferr := findLeader()
		if ferr != nil {
			return ferr
		}
		leader.Store(r)
		return r.Apply(cmd, 10*time.Second).Error()
	}, cleanup
}
