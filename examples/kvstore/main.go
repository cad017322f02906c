// Command kvstore is a replicated key-value store on distkit's Raft.
//
// Without flags it runs a narrated demo: three nodes in one process over
// loopback TCP, writes, the leader killed, a new leader elected, reads that
// still see every acknowledged write, and the old leader restarting from its
// data directory and catching up.
//
//	go run ./examples/kvstore
//
// With flags, each node is its own process with a data directory and an
// HTTP API (PUT, GET and DELETE on /kv/KEY; GET /status):
//
//	go run ./examples/kvstore -id n1 -data /tmp/kv/n1 -http 127.0.0.1:8001 \
//	    -peers n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003
//	(and n2, n3 likewise in two more terminals)
//	curl -X PUT -d world localhost:8001/kv/hello
//	curl localhost:8002/kv/hello
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/tcp"
)

func main() {
	id := flag.String("id", "", "this node's ID (omit for the in-process demo)")
	peers := flag.String("peers", "", "every node as ID=HOST:PORT, comma-separated, this one included")
	data := flag.String("data", "", "data directory (default: ./kvstore-data/ID)")
	httpAddr := flag.String("http", "", "HTTP listen address, e.g. 127.0.0.1:8001")
	verbose := flag.Bool("v", false, "log Raft events")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	demo, err := demoMode(*id, *peers, *data, *httpAddr)
	switch {
	case err != nil:
	case demo:
		err = runDemo(ctx, os.Stdout)
	default:
		err = runNode(ctx, *id, *peers, *data, *httpAddr, *verbose)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kvstore:", err)
		os.Exit(1)
	}
}

// demoMode reports whether the flags ask for the in-process demo (no
// node flags at all) or one node (-id and the rest); node flags without -id
// are an error rather than silently running the demo.
func demoMode(id, peers, data, httpAddr string) (bool, error) {
	if id != "" {
		return false, nil
	}
	if peers != "" || data != "" || httpAddr != "" {
		return false, errors.New("-peers, -data and -http need -id (omit them all for the in-process demo)")
	}
	return true, nil
}

// parsePeers parses "n1=host:port,n2=host:port".
func parsePeers(s string) ([]transport.NodeID, map[transport.NodeID]string, error) {
	var ids []transport.NodeID
	addrs := map[transport.NodeID]string{}
	for _, part := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || id == "" || addr == "" {
			return nil, nil, fmt.Errorf("bad -peers entry %q; want ID=HOST:PORT", part)
		}
		if _, dup := addrs[transport.NodeID(id)]; dup {
			return nil, nil, fmt.Errorf("-peers lists %q twice", id)
		}
		ids = append(ids, transport.NodeID(id))
		addrs[transport.NodeID(id)] = addr
	}
	return ids, addrs, nil
}

// runNode runs one node as its own process until ctx ends.
func runNode(ctx context.Context, id, peerList, dataDir, httpAddr string, verbose bool) error {
	ids, addrs, err := parsePeers(peerList)
	if err != nil {
		return err
	}
	self := transport.NodeID(id)
	if _, ok := addrs[self]; !ok {
		return fmt.Errorf("-peers does not list this node %q", id)
	}
	if httpAddr == "" {
		return errors.New("-http is required with -id")
	}
	if dataDir == "" {
		dataDir = "kvstore-data/" + id
	}
	var logger *slog.Logger
	if verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	tcfg := tcp.DefaultConfig()
	tcfg.ID = self
	tcfg.ListenAddr = addrs[self]
	tcfg.Peers = map[transport.NodeID]string{}
	for p, a := range addrs {
		if p != self {
			tcfg.Peers[p] = a
		}
	}
	tr, err := tcp.Listen(tcfg)
	if err != nil {
		return err
	}
	srv, err := startServer(tr, ids, dataDir, logger)
	if err != nil {
		tr.Close()
		return err
	}
	defer srv.Close()

	hs := &http.Server{Addr: httpAddr, Handler: srv.handler(), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.ListenAndServe() }()
	fmt.Printf("kvstore node %s: raft on %s, HTTP on http://%s, data in %s\n", id, addrs[self], httpAddr, dataDir)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	hs.Shutdown(sctx)
	<-errc
	return nil
}
