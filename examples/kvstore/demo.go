package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/tcp"
)

// runDemo narrates a three-node cluster in one process: writes, the leader
// killed, a new leader, reads that see every acknowledged write, and the old
// leader restarting from disk and catching up.
func runDemo(ctx context.Context, out io.Writer) error {
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	dir, err := os.MkdirTemp("", "kvstore-demo")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	ids := []transport.NodeID{"n1", "n2", "n3"}
	servers, addrs, err := startCluster(ids, dir)
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	if err != nil {
		return err
	}
	say("started %s, %s, %s over loopback TCP, each with its own data directory", ids[0], ids[1], ids[2])

	acked := map[string]string{}
	put := func(via transport.NodeID, k, v string) error {
		start := time.Now()
		if _, err := servers[via].do(ctx, "put", k, v); err != nil {
			return fmt.Errorf("put %s: %w", k, err)
		}
		acked[k] = v
		say("  PUT %-8s = %-8s acknowledged in %v (asked %s)", k, v, time.Since(start).Round(time.Microsecond), via)
		return nil
	}
	for i, city := range []string{"paris", "tokyo", "lima"} {
		if err := put(ids[i%3], fmt.Sprintf("city%d", i), city); err != nil {
			return err
		}
	}
	leader := servers[ids[0]].node.Status().Leader
	say("leader is %s (term %d)", leader, servers[leader].node.Status().Term)

	say("killing the leader %s", leader)
	servers[leader].Close()
	delete(servers, leader)
	var survivor transport.NodeID
	for id := range servers {
		survivor = id
		break
	}
	start := time.Now()
	if err := put(survivor, "after", "failover"); err != nil {
		return err
	}
	st := servers[survivor].node.Status()
	say("new leader is %s (term %d), writes resumed %v after the kill", st.Leader, st.Term, time.Since(start).Round(time.Millisecond))
	for i, fruit := range []string{"apple", "fig"} {
		if err := put(survivor, fmt.Sprintf("fruit%d", i), fruit); err != nil {
			return err
		}
	}

	say("reading every acknowledged key through the log on the new leader:")
	for _, k := range sortedKeys(acked) {
		res, err := servers[survivor].do(ctx, "get", k, "")
		if err != nil {
			return fmt.Errorf("get %s: %w", k, err)
		}
		if !res.Found || res.Value != acked[k] {
			return fmt.Errorf("acknowledged %s=%s but read %q (found %v)", k, acked[k], res.Value, res.Found)
		}
		say("  GET %-8s = %s", k, res.Value)
	}
	say("all %d acknowledged writes survived the leader's death", len(acked))

	say("restarting %s from its data directory", leader)
	tcfg := tcp.DefaultConfig()
	tcfg.ID = leader
	tcfg.ListenAddr = addrs[leader] // the others still dial this address
	tcfg.Peers = map[transport.NodeID]string{}
	for _, p := range ids {
		if p != leader {
			tcfg.Peers[p] = addrs[p]
		}
	}
	tr, err := tcp.Listen(tcfg)
	if err != nil {
		return err
	}
	s, err := startServer(tr, ids, filepath.Join(dir, string(leader)), nil)
	if err != nil {
		tr.Close()
		return err
	}
	servers[leader] = s
	// A write through the new node completes once it is applied
	// everywhere it needs to be; then its local copy is current.
	if err := put(leader, "rejoined", string(leader)); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err = s.store.waitUntil(wctx, func(data map[string]string) bool {
		for k, v := range acked {
			if data[k] != v {
				return false
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("restarted %s did not catch up: %w", leader, err)
	}
	st = s.node.Status()
	say("%s caught up: applied index %d, follows %s; its local copy holds all %d keys", leader, st.Applied, st.Leader, len(acked))
	return nil
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

// startCluster starts one server per ID over loopback TCP on free ports,
// with data directories under dir. On error, the servers started so far are
// returned too, for the caller to close.
func startCluster(ids []transport.NodeID, dir string) (map[transport.NodeID]*server, map[transport.NodeID]string, error) {
	addrs := map[transport.NodeID]string{}
	servers := map[transport.NodeID]*server{}
	// Listen first, then tell everyone the addresses.
	trs := map[transport.NodeID]*tcp.Transport{}
	closeUnused := func() {
		for id, tr := range trs {
			if servers[id] == nil {
				tr.Close()
			}
		}
	}
	for _, id := range ids {
		cfg := tcp.DefaultConfig()
		cfg.ID = id
		tr, err := tcp.Listen(cfg)
		if err != nil {
			closeUnused()
			return servers, addrs, err
		}
		trs[id] = tr
		addrs[id] = tr.Addr().String()
	}
	for _, id := range ids {
		for _, p := range ids {
			if p != id {
				if err := trs[id].AddPeer(p, addrs[p]); err != nil {
					closeUnused()
					return servers, addrs, err
				}
			}
		}
		s, err := startServer(trs[id], ids, filepath.Join(dir, string(id)), nil)
		if err != nil {
			closeUnused()
			return servers, addrs, err
		}
		servers[id] = s
	}
	return servers, addrs, nil
}
