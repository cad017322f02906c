package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
)

// The admin API changes the cluster's membership and moves its leadership.
// Every change runs on the leader: a node that does not lead forwards the
// request to the leader it knows over adminService (one hop, like the
// writes of forward.go, through the same RPC endpoint) and relays the
// answer, so any node can be asked. Parameters are query (or form)
// parameters; no request has a body.
//
//	GET    /members                 this node's view of the configuration (not forwarded)
//	POST   /members?id=ID           add ID as a voter the safe way: as a learner first,
//	                                promoted once it has caught up (Node.AddAndPromote)
//	POST   /members?id=ID&learner=1 add ID as a learner only (it receives the log, never votes)
//	POST   /members/ID/promote      promote the learner ID once it has caught up
//	DELETE /members/ID              remove the voter or learner ID (the leader itself too:
//	                                it hands over once the change commits)
//	POST   /transfer?to=ID          hand leadership to the voter ID; without to (or to=)
//	                                to the most up-to-date voter
//
// A successful request answers 200 with the configuration as the leader
// sees it afterwards (membersView, JSON). Errors answer a line of text:
// 400 for bad input (a missing or malformed ID, a change that makes no
// sense such as adding a member twice, removing a stranger or promoting a
// node that is not a learner, a transfer target that is not another
// voter); 409 when another membership change or a leadership transfer is
// in progress (retry once it is over); 503 when no leader is known or
// leadership moved during the request (retry), or a transfer was given up
// (the old leader leads on) — a node that knows no leader waits
// adminLeaderWait for one first; 504 when the request's budget (adminBudget)
// passed: the change may or may not happen. Changes are not idempotent: a
// retried add of a node that was added answers 400.
//
// The node being added must be listed in -peers of the nodes that will
// send to it, and is started with -join (see the README's bootstrap and
// join rule). Adding a voter waits until it has caught up, so start it
// while POST /members?id=ID runs (it waits up to adminBudget); or add it
// with learner=1, start it, and promote it.

// adminService is the RPC service through which a follower hands an admin
// request to the leader.
const adminService = "kv.admin"

// adminLeaderWait is how long an admin request waits for a leader when
// none is known (server.leaderWait).
const adminLeaderWait = 2 * time.Second

// adminBudget bounds an admin request: a learner may need a while to catch
// up before it is promoted. It is below writeTimeout.
const adminBudget = 20 * time.Second

// promoteMaxLag is how far (in entries) behind the leader's last index a
// learner may be when it is promoted.
const promoteMaxLag = 64

// maxIDBytes bounds a node ID (the tcp transport's limit).
const maxIDBytes = 255

// Admin operations (adminRequest.Op).
const (
	adminAdd      = "add"      // AddAndPromote, or AddLearner with Learner
	adminPromote  = "promote"  // AddAndPromote of a learner
	adminRemove   = "remove"   // Remove
	adminTransfer = "transfer" // TransferLeadership to ID ("" = most up to date)
)

// adminRequest is one admin operation, as forwarded to the leader.
type adminRequest struct {
	Op      string `json:"op"`
	ID      string `json:"id,omitempty"`
	Learner bool   `json:"learner,omitempty"`
}

// adminReply is the leader's answer to a forwarded adminRequest: the HTTP
// status and body to relay.
type adminReply struct {
	Code int    `json:"code"`
	Body []byte `json:"body"`
}

// membersView is the answer of GET /members and of every successful
// change: a configuration, and whether it is committed (a configuration is
// in force from the moment its entry is appended).
type membersView struct {
	ID        string   `json:"id"`     // the node that answers
	Leader    string   `json:"leader"` // "" if it knows none
	Term      uint64   `json:"term"`
	Voters    []string `json:"voters"`
	Learners  []string `json:"learners"`
	Outgoing  []string `json:"outgoing,omitempty"` // the old voters, in a joint configuration
	Committed bool     `json:"committed"`
}

// errBadAdminRequest marks a malformed admin request (400).
var errBadAdminRequest = errors.New("kvstore: bad admin request")

// validID checks a node ID given to the admin API.
func validID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: a node ID is required", errBadAdminRequest)
	case len(id) > maxIDBytes:
		return fmt.Errorf("%w: node ID longer than %d bytes", errBadAdminRequest, maxIDBytes)
	case !utf8.ValidString(id), strings.ContainsAny(id, ",= \t\r\n"):
		return fmt.Errorf("%w: node ID %q must be UTF-8 without commas, '=' or spaces", errBadAdminRequest, id)
	}
	return nil
}

// validate checks a request, as received over HTTP or forwarded.
func (a adminRequest) validate() error {
	switch a.Op {
	case adminAdd, adminPromote, adminRemove:
		return validID(a.ID)
	case adminTransfer:
		if a.ID == "" {
			return nil
		}
		return validID(a.ID)
	}
	return fmt.Errorf("%w: unknown operation %q", errBadAdminRequest, a.Op)
}

// parseBool parses an optional flag parameter.
func parseBool(name, v string) (bool, error) {
	switch v {
	case "", "0", "false":
		return false, nil
	case "1", "true":
		return true, nil
	}
	return false, fmt.Errorf("%w: %s=%q; want 1, true, 0 or false", errBadAdminRequest, name, v)
}

// adminRoutes adds the admin API to mux.
func (s *server) adminRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /members", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, s.membersView())
	})
	mux.HandleFunc("POST /members", func(w http.ResponseWriter, r *http.Request) {
		learner, err := parseBool("learner", r.FormValue("learner"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.admin(w, r, adminRequest{Op: adminAdd, ID: r.FormValue("id"), Learner: learner})
	})
	mux.HandleFunc("POST /members/{id}/promote", func(w http.ResponseWriter, r *http.Request) {
		s.admin(w, r, adminRequest{Op: adminPromote, ID: r.PathValue("id")})
	})
	mux.HandleFunc("DELETE /members/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.admin(w, r, adminRequest{Op: adminRemove, ID: r.PathValue("id")})
	})
	mux.HandleFunc("POST /transfer", func(w http.ResponseWriter, r *http.Request) {
		s.admin(w, r, adminRequest{Op: adminTransfer, ID: r.FormValue("to")})
	})
}

// admin serves one admin request: on the leader, or forwarded to it.
func (s *server) admin(w http.ResponseWriter, r *http.Request, req adminRequest) {
	if err := req.validate(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), adminBudget)
	defer cancel()
	rep := s.routeAdmin(ctx, req)
	if rep.Code != http.StatusOK {
		http.Error(w, strings.TrimSpace(string(rep.Body)), rep.Code)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(rep.Body)
}

// routeAdmin runs req here if this node leads, or forwards it to the
// leader it knows.
func (s *server) routeAdmin(ctx context.Context, req adminRequest) adminReply {
	li := s.node.Leader()
	if li.Leader == "" && s.leaderWait > 0 {
		// Just started, or an election is running: one is normally over
		// within an election timeout.
		wctx, cancel := context.WithTimeout(ctx, s.leaderWait)
		s.node.WaitLeader(wctx)
		cancel()
		li = s.node.Leader()
	}
	switch {
	case li.Role == raft.Leader:
		return s.runAdmin(ctx, req)
	case li.Leader == "":
		return adminError(http.StatusServiceUnavailable, "kvstore: no leader known; retry")
	}
	b, _ := json.Marshal(req)
	resp, err := s.rpc.Call(ctx, li.Leader, adminService, b)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return adminError(http.StatusGatewayTimeout, fmt.Sprintf("kvstore: forwarding to leader %s: %v (the change may or may not happen)", li.Leader, err))
		}
		return adminError(http.StatusServiceUnavailable, fmt.Sprintf("kvstore: forwarding to leader %s: %v (the change may or may not happen)", li.Leader, err))
	}
	rep, err := decodeAdminReply(resp)
	if err != nil {
		return adminError(http.StatusServiceUnavailable, fmt.Sprintf("kvstore: leader %s: %v", li.Leader, err))
	}
	return rep
}

// serveAdmin runs an admin request forwarded by another node. It does not
// forward again: a node that no longer leads answers 503.
func (s *server) serveAdmin(ctx context.Context, from transport.NodeID, b []byte) ([]byte, error) {
	req, err := decodeAdminRequest(b)
	if err != nil {
		return json.Marshal(adminError(http.StatusBadRequest, err.Error()))
	}
	ctx, cancel := context.WithTimeout(ctx, adminBudget)
	defer cancel()
	return json.Marshal(s.runAdmin(ctx, req))
}

// decodeAdminRequest decodes and checks a forwarded admin request.
func decodeAdminRequest(b []byte) (adminRequest, error) {
	var req adminRequest
	if err := json.Unmarshal(b, &req); err != nil {
		return adminRequest{}, fmt.Errorf("%w: %w", errBadAdminRequest, err)
	}
	if err := req.validate(); err != nil {
		return adminRequest{}, err
	}
	return req, nil
}

// decodeAdminReply decodes the leader's answer to a forwarded request.
func decodeAdminReply(b []byte) (adminReply, error) {
	var rep adminReply
	if err := json.Unmarshal(b, &rep); err != nil {
		return adminReply{}, fmt.Errorf("%w: %w", errBadReply, err)
	}
	if rep.Code < 200 || rep.Code > 599 {
		return adminReply{}, fmt.Errorf("%w: status %d", errBadReply, rep.Code)
	}
	return rep, nil
}

// runAdmin runs req on this node, which is expected to lead.
func (s *server) runAdmin(ctx context.Context, req adminRequest) adminReply {
	id := transport.NodeID(req.ID)
	var err error
	switch req.Op {
	case adminAdd:
		if req.Learner {
			err = s.node.AddLearner(ctx, id)
		} else {
			err = s.node.AddAndPromote(ctx, id, promoteMaxLag)
		}
	case adminPromote:
		if m, _ := s.node.Members(); !m.IsLearner(id) {
			return adminError(http.StatusBadRequest, fmt.Sprintf("kvstore: %s is not a learner (voters %v, learners %v)", id, m.Voters, m.Learners))
		}
		err = s.node.AddAndPromote(ctx, id, promoteMaxLag)
	case adminRemove:
		err = s.node.Remove(ctx, id)
	case adminTransfer:
		err = s.node.TransferLeadership(ctx, id)
	}
	if err != nil {
		return adminError(adminStatus(err), err.Error())
	}
	b, _ := json.Marshal(s.membersView())
	return adminReply{Code: http.StatusOK, Body: append(b, '\n')}
}

// adminStatus maps a failed admin operation to an HTTP status.
func adminStatus(err error) int {
	switch {
	case errors.Is(err, raft.ErrInvalidConfChange), errors.Is(err, raft.ErrNoTransferTarget):
		return http.StatusBadRequest
	case errors.Is(err, raft.ErrConfChangeInProgress), errors.Is(err, raft.ErrTransferInProgress),
		errors.Is(err, raft.ErrProposalDropped):
		return http.StatusConflict
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	// ErrNotLeader (leadership moved), ErrTransferAborted, ErrProposalLost,
	// ErrOutcomeUnknown, a stopping node.
	return http.StatusServiceUnavailable
}

func adminError(code int, msg string) adminReply {
	return adminReply{Code: code, Body: []byte(msg)}
}

// membersView returns this node's view of the configuration.
func (s *server) membersView() membersView {
	m, committed := s.node.Members()
	li := s.node.Leader()
	strs := func(ids []transport.NodeID) []string {
		out := make([]string, 0, len(ids))
		for _, id := range ids {
			out = append(out, string(id))
		}
		slices.Sort(out)
		return out
	}
	v := membersView{
		ID: string(s.id), Leader: string(li.Leader), Term: li.Term,
		Voters: strs(m.Voters), Learners: strs(m.Learners), Committed: committed,
	}
	if len(m.OutgoingVoters) > 0 {
		v.Outgoing = strs(m.OutgoingVoters)
	}
	return v
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
