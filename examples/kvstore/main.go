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
// HTTP API (PUT, GET and DELETE on /kv/KEY; GET /status). Build the binary
// rather than use `go run`: kill -9 of `go run` kills the go command and
// leaves the server running.
//
//	go build -o /tmp/kvstore ./examples/kvstore
//	/tmp/kvstore -id n1 -data /tmp/kv/n1 -http 127.0.0.1:8001 \
//	    -peers n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003
//	(and n2, n3 likewise in two more terminals)
//	curl -X PUT -d world localhost:8001/kv/hello
//	curl localhost:8002/kv/hello
//
// The admin API (admin.go) grows, shrinks and re-leads the cluster: POST
// /members?id=ID[&learner=1], POST /members/ID/promote, DELETE /members/ID,
// POST /transfer[?to=ID], GET /members. A node added later is added first,
// then started with -join and -cluster set to the founding IDs (the README
// walks through growing three nodes to five and back, and a rolling
// restart). SIGTERM stops a node gracefully: a leader hands over first.
//
// The answers, the status codes and the limits are listed on the handler
// (server.go) and in the README's Consensus section. Warnings and errors
// (a torn WAL tail cut on open, a refused start) are logged to stderr; -v
// adds elections and leader changes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/tcp"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run runs the command with args and returns its exit status: 0, 1 for a
// failure, 2 for a usage error (as the flag package does).
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kvstore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	id := fs.String("id", "", "this node's ID (omit every flag for the in-process demo)")
	peers := fs.String("peers", "", "the address book: every node that is or may become a member as ID=HOST:PORT, comma-separated, this one included (required with -id)")
	founders := fs.String("cluster", "", "the IDs the cluster was founded with, comma-separated, the same on every node and every start (default: the IDs in -peers; required with -join)")
	join := fs.Bool("join", false, "this node was added to a running cluster (POST /members) and does not bootstrap one; give it on every start of such a node")
	data := fs.String("data", "", "data directory (default: ./kvstore-data/ID)")
	httpAddr := fs.String("http", "", "HTTP listen address, e.g. 127.0.0.1:8001 (required with -id)")
	verbose := fs.Bool("v", false, "log Raft events (INFO); warnings and errors are always logged")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2 // the flag package has printed the error and the usage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kvstore: unexpected argument %q (flags only; -h for help)\n", fs.Arg(0))
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	demo, err := demoMode(*id, *peers, *data, *httpAddr)
	if err == nil && demo && (*founders != "" || *join) {
		err = errors.New("-cluster and -join need -id (omit them all for the in-process demo)")
	}
	switch {
	case err != nil:
	case demo:
		err = runDemo(ctx, stdout)
	default:
		err = runNode(ctx, nodeFlags{id: *id, peers: *peers, founders: *founders, join: *join, dataDir: *data, httpAddr: *httpAddr, verbose: *verbose}, stdout, stderr)
	}
	if err != nil {
		fmt.Fprintln(stderr, "kvstore:", err)
		return 1
	}
	return 0
}

const usage = `usage:
  kvstore                                                 the in-process demo: three nodes, narrated
  kvstore -id ID -peers LIST -http ADDR [-data DIR] [-v]  one node of a cluster, in this process
          [-cluster IDS] [-join]

A node serves PUT, GET and DELETE on /kv/KEY, GET /status and the admin API
(GET and POST /members, POST /members/ID/promote, DELETE /members/ID,
POST /transfer) over HTTP. SIGTERM or Ctrl-C stops it gracefully: a leader
hands leadership over first.

Bootstrap and join: the founding nodes start without -join and with the
same -cluster (or, without -cluster, the same IDs in -peers). A node added
later is added first (POST /members on any member), then started with -join
and -cluster set to the founding IDs, on every start.

flags:
`

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

// parseIDs parses "n1,n2,n3".
func parseIDs(s string) ([]transport.NodeID, error) {
	var ids []transport.NodeID
	for _, part := range strings.Split(s, ",") {
		id := transport.NodeID(strings.TrimSpace(part))
		if id == "" || strings.Contains(string(id), "=") {
			return nil, fmt.Errorf("bad -cluster entry %q; want a node ID", part)
		}
		if slices.Contains(ids, id) {
			return nil, fmt.Errorf("-cluster lists %q twice", id)
		}
		ids = append(ids, id)
	}
	return ids, nil
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

// nodeFlags are the flags of one node.
type nodeFlags struct {
	id, peers, founders, dataDir, httpAddr string
	join, verbose                          bool
}

// newLogger logs to w at WARN (a truncated WAL, a refused start, failed
// snapshots), or at INFO (elections, leader changes) with -v.
func newLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// HTTP server limits. A request's headers must arrive within
// readHeaderTimeout and its body within readTimeout (so a client that
// announces more body than it sends cannot hold a handler forever); the
// handler then has its 5 s budget (requestBudget) and the answer must be
// written by writeTimeout, counted from the end of the headers.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 15 * time.Second
	writeTimeout      = readTimeout + requestBudget + 10*time.Second
	idleTimeout       = 60 * time.Second
)

// newHTTPServer returns the HTTP server of a node.
func newHTTPServer(addr string, h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxKeyBytes + 64<<10, // the key is in the request line
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// runNode runs one node as its own process until ctx ends.
func runNode(ctx context.Context, f nodeFlags, stdout, stderr io.Writer) error {
	switch {
	case f.peers == "":
		return errors.New("-peers is required with -id: list every node as ID=HOST:PORT, this one included")
	case f.httpAddr == "":
		return errors.New("-http is required with -id")
	}
	ids, addrs, err := parsePeers(f.peers)
	if err != nil {
		return err
	}
	self := transport.NodeID(f.id)
	if _, ok := addrs[self]; !ok {
		return fmt.Errorf("-peers does not list this node %q", f.id)
	}
	founders := ids
	switch {
	case f.founders != "":
		if founders, err = parseIDs(f.founders); err != nil {
			return err
		}
	case f.join:
		return errors.New("-join needs -cluster: the IDs the cluster was founded with")
	}
	if !f.join && !slices.Contains(founders, self) {
		return fmt.Errorf("-cluster %s does not list this node %q: a node added later starts with -join", f.founders, f.id)
	}
	if f.dataDir == "" {
		f.dataDir = "kvstore-data/" + f.id
	}
	logger := newLogger(stderr, f.verbose)
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
	srv, err := startNode(tr, nodeConfig{founders: founders, members: ids, join: f.join, dataDir: f.dataDir, logger: logger})
	if err != nil {
		tr.Close()
		return err
	}
	defer srv.Close()

	hs := newHTTPServer(f.httpAddr, srv.handler(), logger)
	errc := make(chan error, 1)
	go func() { errc <- hs.ListenAndServe() }()
	fmt.Fprintf(stdout, "kvstore node %s: raft on %s, HTTP on http://%s, data in %s\n", f.id, addrs[self], f.httpAddr, f.dataDir)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	hs.Shutdown(sctx)
	<-errc
	srv.stopGracefully(logger)
	return nil
}

// stopGracefully ends the node's client session and shuts the node down,
// a leader handing leadership over first. The caller then calls Close.
func (s *server) stopGracefully(logger *slog.Logger) {
	// A clean stop ends this node's client session through the log, so
	// every node frees its cached results now rather than at expiry. Best
	// effort: an unclosed session expires anyway.
	cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.client.Close(cctx); err != nil {
		logger.Warn("kvstore: closing the client session", "err", err)
	}
	// A leader hands leadership to the most up-to-date voter before it
	// stops, so a rolling restart costs the cluster no election timeout.
	nctx, ncancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ncancel()
	if err := s.node.Shutdown(nctx); err != nil {
		logger.Warn("kvstore: stopping the node", "err", err)
	}
}
