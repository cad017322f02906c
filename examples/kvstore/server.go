package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/consensus/session"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/tcp"
)

// Request limits. A value of exactly maxValueBytes is accepted; one byte
// more is 413. A key of exactly maxKeyBytes is accepted; one byte more is
// 414.
const (
	maxValueBytes = 1 << 20 // 1 MiB
	maxKeyBytes   = 1 << 10 // 1 KiB
)

// requestBudget bounds the time a request spends waiting for the cluster.
const requestBudget = 5 * time.Second

// server is one kvstore node: a Raft node over TCP whose state machine is
// the store wrapped with client sessions, an RPC endpoint that accepts
// session-stamped commands from the other nodes (forward.go), and a client
// with its own session that finds the leader.
type server struct {
	id     transport.NodeID
	tr     *tcp.Transport
	rpc    *transport.RPC
	node   *consensus.Node
	store  *kvStore
	sm     *consensus.SessionMachine // store wrapped with the session table
	client *consensus.Client
	// leaderWait is how long an admin request waits for a leader when
	// none is known (adminLeaderWait; tests shorten it).
	leaderWait time.Duration
}

// envelopeOverhead bounds the bytes a session stamp adds to a command.
const envelopeOverhead = session.MaxCommandOverhead

// startServer starts a founding node on tr. peers lists every founding
// node, this one included; dataDir holds its durable state.
func startServer(tr *tcp.Transport, peers []transport.NodeID, dataDir string, logger *slog.Logger) (*server, error) {
	return startNode(tr, nodeConfig{founders: peers, members: peers, dataDir: dataDir, logger: logger})
}

// nodeConfig configures a node that may have joined the cluster later.
type nodeConfig struct {
	// founders is the cluster's founding peer list (consensus.Config.Peers),
	// the same on every node and every start.
	founders []transport.NodeID
	// members lists the nodes this node's client may send writes to (the
	// -peers address book), this one included.
	members []transport.NodeID
	// join: this node was added to a running cluster (consensus.Config.Join).
	join    bool
	dataDir string
	logger  *slog.Logger
}

// startNode starts a node on tr.
func startNode(tr *tcp.Transport, nc nodeConfig) (*server, error) {
	s := &server{id: tr.ID(), tr: tr, store: newKVStore(), leaderWait: adminLeaderWait}
	cfg := consensus.DefaultConfig()
	cfg.ID = tr.ID()
	cfg.Peers = nc.founders
	cfg.Join = nc.join
	cfg.DataDir = nc.dataDir
	logger := nc.logger
	cfg.Logger = logger
	cfg.SnapshotThreshold = 1000
	cfg.MaxCommandBytes = maxCommandBytes + envelopeOverhead
	cfg.MaxMsgBytes = max(cfg.MaxMsgBytes, uint64(cfg.MaxCommandBytes)) // one entry per append at least
	scfg := consensus.DefaultSessionConfig()
	scfg.Codec = resultCodec{}
	sm, err := consensus.WithSessions(s.store, scfg)
	if err != nil {
		return nil, err
	}
	s.sm = sm
	node, err := consensus.New(cfg, tr, sm)
	if err != nil {
		return nil, err
	}
	s.node = node
	rpc, err := transport.NewRPC(tr, transport.DefaultRPCConfig())
	if err != nil {
		node.Close()
		return nil, err
	}
	s.rpc = rpc
	rpc.Handle(proposeService, s.serveProposal)
	rpc.Handle(adminService, s.serveAdmin)

	members := map[transport.NodeID]consensus.Proposer{s.id: node}
	for _, p := range nc.members {
		if p == s.id {
			members[p] = node
		} else {
			members[p] = remoteProposer{rpc: rpc, to: p}
		}
	}
	ccfg := consensus.DefaultClientConfig()
	// One attempt may carry a 1 MiB value to a slow leader: give it a
	// second (DefaultClientConfig's) before trying the next node, since a
	// retry appends another copy to the log (harmless with the session
	// stamp, but not free).
	ccfg.AttemptTimeout = time.Second
	// The Client sees that the node keeps sessions and stamps every
	// command: its retries after an ambiguous failure are applied at most
	// once.
	if s.client, err = consensus.NewClient(members, ccfg); err != nil {
		s.Close()
		return nil, err
	}
	if !s.client.Sessions() {
		s.Close()
		return nil, errors.New("kvstore: the client does not use sessions")
	}
	return s, nil
}

// Close stops the node, the RPC endpoint and the transport.
func (s *server) Close() {
	if s.rpc != nil {
		s.rpc.Close()
	}
	s.node.Close()
	s.tr.Close()
}

// do replicates one command through the leader, in this node's client
// session, and returns its result. GET goes through the log too, which
// makes it linearizable.
func (s *server) do(ctx context.Context, op, key, value string) (result, error) {
	v, err := s.client.Propose(ctx, encodeCommand(op, key, value))
	if err != nil {
		return result{}, err
	}
	switch v := v.(type) {
	case result:
		if v.Err != "" {
			return result{}, fmt.Errorf("kvstore: %s", v.Err)
		}
		return v, nil
	case error:
		// Refused by the session table, or the result was lost.
		return result{}, fmt.Errorf("kvstore: %w", v)
	}
	return result{}, fmt.Errorf("kvstore: unexpected answer of type %T", v)
}

// handler serves the HTTP API. Every answer to /kv/ is JSON,
// {"value":"...","found":true}, with Content-Type application/json:
//
//	PUT    /kv/KEY   body is the value; answers the value stored (200)
//	GET    /kv/KEY   linearizable read through ReadIndex (Node.Read, then this
//	                 node's copy); ?log=1 reads through the log instead, ?stale=1
//	                 reads this node's copy as it is; answers the value (200)
//	                 or found:false (404)
//	DELETE /kv/KEY   answers the value removed (200) or found:false (404)
//	GET    /status   this node's Raft status and open client sessions (JSON)
//	GET    /metrics  Prometheus text format (metrics.go)
//
// and the admin API (admin.go): GET, POST /members, POST
// /members/ID/promote, DELETE /members/ID and POST /transfer.
//
// Keys and values are UTF-8 text (400 otherwise). A value may be up to
// maxValueBytes (1 MiB, 1048576 bytes) inclusive, a key up to maxKeyBytes
// (1 KiB) inclusive: a larger value is 413 and a longer key 414, rejected
// whole, never truncated. A body that does not arrive within readTimeout is
// 408. No leader reachable is 503; no answer within the request's 5 s
// budget is 504 (a write answered 503 or 504 may or may not have been
// applied). Errors answer a line of text.
func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /kv/{key}", func(w http.ResponseWriter, r *http.Request) {
		value, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxValueBytes))
		var tooBig *http.MaxBytesError
		var netErr net.Error
		switch {
		case errors.As(err, &tooBig):
			// Rejected whole: storing a truncated value would lose data.
			http.Error(w, fmt.Sprintf("kvstore: value larger than %d bytes", maxValueBytes), http.StatusRequestEntityTooLarge)
			return
		case errors.As(err, &netErr) && netErr.Timeout():
			http.Error(w, "kvstore: the request body did not arrive in time", http.StatusRequestTimeout)
			return
		case err != nil:
			http.Error(w, "kvstore: reading the request body: "+err.Error(), http.StatusBadRequest)
			return
		}
		s.reply(w, r, "put", string(value))
	})
	mux.HandleFunc("GET /kv/{key}", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Query().Get("log") == "1":
			s.reply(w, r, "get", "") // the old way: a command through the log
			return
		case !validKey(w, r.PathValue("key")):
			return
		case r.URL.Query().Get("stale") != "1":
			// ReadIndex (Raft thesis §6.4): once Read returns, this node's
			// copy reflects every write acknowledged before the request,
			// on a follower too, for one heartbeat round instead of a log
			// entry.
			ctx, cancel := context.WithTimeout(r.Context(), requestBudget)
			defer cancel()
			if err := s.node.Read(ctx); err != nil {
				http.Error(w, "kvstore: read: "+err.Error(), httpStatus(err))
				return
			}
		}
		v, ok := s.store.Get(r.PathValue("key"))
		writeResult(w, result{Value: v, Found: ok})
	})
	mux.HandleFunc("DELETE /kv/{key}", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, r, "delete", "")
	})
	s.adminRoutes(mux)
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		st := s.node.Status()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"id": st.ID, "role": st.Role.String(), "term": st.Term, "leader": st.Leader,
			"commit": st.Commit, "applied": st.Applied, "lastIndex": st.LastIndex,
			"sessions": s.sm.Sessions(),
		})
	})
	mux.HandleFunc("GET /metrics", s.serveMetrics) // Prometheus text format (metrics.go)
	return mux
}

// validKey answers 414 or 400 and reports false for a key that is too long
// or not UTF-8.
func validKey(w http.ResponseWriter, key string) bool {
	switch {
	case len(key) > maxKeyBytes:
		http.Error(w, fmt.Sprintf("kvstore: key longer than %d bytes", maxKeyBytes), http.StatusRequestURITooLong)
		return false
	case !utf8.ValidString(key):
		http.Error(w, "kvstore: keys and values must be UTF-8 text", http.StatusBadRequest)
		return false
	}
	return true
}

func (s *server) reply(w http.ResponseWriter, r *http.Request, op, value string) {
	if !validKey(w, r.PathValue("key")) {
		return
	}
	if !utf8.ValidString(value) {
		// Answers are JSON, which would silently replace invalid bytes.
		http.Error(w, "kvstore: keys and values must be UTF-8 text", http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestBudget)
	defer cancel()
	res, err := s.do(ctx, op, r.PathValue("key"), value)
	if err != nil {
		http.Error(w, err.Error(), httpStatus(err))
		return
	}
	writeResult(w, res)
}

// httpStatus maps a failed command to an HTTP status: the client's fault
// (413), no answer in time (504), or no leader reachable (503).
func httpStatus(err error) int {
	switch {
	case errors.Is(err, consensus.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	return http.StatusServiceUnavailable
}

func writeResult(w http.ResponseWriter, res result) {
	w.Header().Set("Content-Type", "application/json")
	if !res.Found {
		w.WriteHeader(http.StatusNotFound)
	}
	json.NewEncoder(w).Encode(res)
}
