package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/tcp"
)

// adminCluster is an in-process cluster over loopback TCP whose address
// book holds more nodes than the founders, so that others can join.
type adminCluster struct {
	t        *testing.T
	dir      string
	founders []transport.NodeID
	all      []transport.NodeID
	trs      map[transport.NodeID]*tcp.Transport
	servers  map[transport.NodeID]*server
	https    map[transport.NodeID]*httptest.Server
	// leaderWait, if not 0, replaces adminLeaderWait.
	leaderWait time.Duration
}

func newAdminCluster(t *testing.T, founders, all []transport.NodeID) *adminCluster {
	c := &adminCluster{
		t: t, dir: t.TempDir(), founders: founders, all: all,
		trs: map[transport.NodeID]*tcp.Transport{}, servers: map[transport.NodeID]*server{},
		https: map[transport.NodeID]*httptest.Server{},
	}
	t.Cleanup(c.close)
	for _, id := range all {
		cfg := tcp.DefaultConfig()
		cfg.ID = id
		tr, err := tcp.Listen(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.trs[id] = tr
	}
	for _, id := range all {
		for _, p := range all {
			if p != id {
				if err := c.trs[id].AddPeer(p, c.trs[p].Addr().String()); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return c
}

// startFounders starts every founding node.
func (c *adminCluster) startFounders() *adminCluster {
	for _, id := range c.founders {
		c.start(id, false)
	}
	return c
}

// start starts id's server and its HTTP endpoint.
func (c *adminCluster) start(id transport.NodeID, join bool) {
	c.t.Helper()
	s, err := startNode(c.trs[id], nodeConfig{
		founders: c.founders, members: c.all, join: join,
		dataDir: filepath.Join(c.dir, string(id)),
	})
	if err != nil {
		c.t.Fatalf("start %s: %v", id, err)
	}
	if c.leaderWait != 0 {
		s.leaderWait = c.leaderWait
	}
	c.servers[id] = s
	c.https[id] = httptest.NewServer(s.handler())
}

func (c *adminCluster) close() {
	for _, h := range c.https {
		h.Close()
	}
	for id, tr := range c.trs {
		if s := c.servers[id]; s != nil {
			s.Close() // closes tr too
		} else {
			tr.Close()
		}
	}
}

// do sends method path to id and returns the status and body.
func (c *adminCluster) do(ctx context.Context, id transport.NodeID, method, path string) (int, string) {
	c.t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, c.https[id].URL+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s on %s: %v", method, path, id, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// leader waits until the founders agree on a leader and returns it.
func (c *adminCluster) leader(ctx context.Context) transport.NodeID {
	c.t.Helper()
	l, err := c.servers[c.founders[0]].node.WaitLeader(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	return l
}

// follower returns a running node that does not lead.
func (c *adminCluster) follower(ctx context.Context) transport.NodeID {
	c.t.Helper()
	for {
		l := c.leader(ctx)
		for _, id := range c.all {
			if s := c.servers[id]; s != nil && id != l && s.node.Leader().Leader == l {
				return id
			}
		}
		select {
		case <-ctx.Done():
			c.t.Fatal("no follower that knows the leader")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func decodeView(t *testing.T, body string) membersView {
	t.Helper()
	var v membersView
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("answer %q is not a membersView: %v", body, err)
	}
	return v
}

// TestAdminGrowTransferShrink drives the admin API through followers (so
// every change is forwarded): add n4 as a learner, start it with join,
// promote it, hand leadership to it, remove a founder. Every acknowledged
// write is readable on n4, and each answer is the configuration as the
// README shows it.
func TestAdminGrowTransferShrink(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	founders := []transport.NodeID{"n1", "n2", "n3"}
	c := newAdminCluster(t, founders, []transport.NodeID{"n1", "n2", "n3", "n4"}).startFounders()
	c.leader(ctx)
	for i := range 5 {
		if code, body := c.do(ctx, "n1", http.MethodPut, fmt.Sprintf("/kv/k%d", i)); code != http.StatusOK {
			t.Fatalf("PUT k%d = %d %s", i, code, body)
		}
	}

	code, body := c.do(ctx, c.follower(ctx), http.MethodPost, "/members?id=n4&learner=1")
	if v := decodeView(t, body); code != http.StatusOK || !slices.Equal(v.Learners, []string{"n4"}) || len(v.Voters) != 3 {
		t.Fatalf("POST /members?id=n4&learner=1 = %d %s; want 200 with learner n4", code, body)
	}
	c.start("n4", true)
	code, body = c.do(ctx, c.follower(ctx), http.MethodPost, "/members/n4/promote")
	if v := decodeView(t, body); code != http.StatusOK || !slices.Equal(v.Voters, []string{"n1", "n2", "n3", "n4"}) || len(v.Learners) != 0 || !v.Committed {
		t.Fatalf("POST /members/n4/promote = %d %s; want 200 with voters n1..n4, committed", code, body)
	}

	code, body = c.do(ctx, c.follower(ctx), http.MethodPost, "/transfer?to=n4")
	if v := decodeView(t, body); code != http.StatusOK || v.Leader != "n4" {
		t.Fatalf("POST /transfer?to=n4 = %d %s; want 200 with leader n4", code, body)
	}
	// n4 was just elected: the removal waits inside until it has committed
	// an entry of its term.
	code, body = c.do(ctx, "n2", http.MethodDelete, "/members/n1")
	if v := decodeView(t, body); code != http.StatusOK || !slices.Equal(v.Voters, []string{"n2", "n3", "n4"}) || !v.Committed {
		t.Fatalf("DELETE /members/n1 = %d %s; want 200 with voters n2 n3 n4", code, body)
	}
	code, body = c.do(ctx, "n4", http.MethodGet, "/members")
	if v := decodeView(t, body); code != http.StatusOK || v.ID != "n4" || !slices.Equal(v.Voters, []string{"n2", "n3", "n4"}) {
		t.Fatalf("GET /members on n4 = %d %s; want voters n2 n3 n4", code, body)
	}
	for i := range 5 {
		if code, body := c.do(ctx, "n4", http.MethodGet, fmt.Sprintf("/kv/k%d", i)); code != http.StatusOK {
			t.Fatalf("GET k%d on n4 = %d %s; want the acknowledged write", i, code, body)
		}
	}
	// Transfer to whoever is most up to date.
	code, body = c.do(ctx, "n3", http.MethodPost, "/transfer")
	if v := decodeView(t, body); code != http.StatusOK || v.Leader == "n4" || v.Leader == "" {
		t.Fatalf("POST /transfer = %d %s; want 200 with another leader", code, body)
	}
}

// TestAdminBadRequests: malformed requests and changes that make no sense
// are 400, answered by any node (forwarded or not).
func TestAdminBadRequests(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ids := []transport.NodeID{"n1", "n2", "n3"}
	c := newAdminCluster(t, ids, ids).startFounders()
	l := c.leader(ctx)
	f := c.follower(ctx)
	tests := []struct {
		name         string
		method, path string
		want         int
	}{
		{"add without id", http.MethodPost, "/members", http.StatusBadRequest},
		{"add with a bad learner flag", http.MethodPost, "/members?id=n9&learner=maybe", http.StatusBadRequest},
		{"add an ID with a comma", http.MethodPost, "/members?id=a,b", http.StatusBadRequest},
		{"add a voter twice", http.MethodPost, "/members?id=n2&learner=1", http.StatusBadRequest},
		{"promote a voter", http.MethodPost, "/members/n2/promote", http.StatusBadRequest},
		{"promote a stranger", http.MethodPost, "/members/n9/promote", http.StatusBadRequest},
		{"remove a stranger", http.MethodDelete, "/members/n9", http.StatusBadRequest},
		{"transfer to a stranger", http.MethodPost, "/transfer?to=n9", http.StatusBadRequest},
		{"transfer to an ID too long", http.MethodPost, "/transfer?to=" + strings.Repeat("x", maxIDBytes+1), http.StatusBadRequest},
		{"members is not PUT", http.MethodPut, "/members", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		for _, on := range []transport.NodeID{l, f} {
			if code, body := c.do(ctx, on, tt.method, tt.path); code != tt.want {
				t.Errorf("%s: %s %s on %s = %d %s; want %d", tt.name, tt.method, tt.path, on, code, body, tt.want)
			}
		}
	}
	code, body := c.do(ctx, f, http.MethodGet, "/members")
	if v := decodeView(t, body); code != http.StatusOK || len(v.Voters) != 3 || v.Leader != string(l) {
		t.Errorf("GET /members after the refusals = %d %s; want 3 voters led by %s", code, body, l)
	}
}

// TestAdminNoLeader: a node that knows no leader answers 503 at once.
func TestAdminNoLeader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Only n1 of three founders runs: it never learns of a leader.
	ids := []transport.NodeID{"n1", "n2", "n3"}
	c := newAdminCluster(t, ids, ids)
	c.leaderWait = 100 * time.Millisecond
	c.start("n1", false)
	for _, path := range []string{"/members?id=n4", "/transfer"} {
		if code, body := c.do(ctx, "n1", http.MethodPost, path); code != http.StatusServiceUnavailable {
			t.Errorf("POST %s without a leader = %d %s; want 503", path, code, body)
		}
	}
}

// TestAdminStatus maps the errors of the admin operations to HTTP.
func TestAdminStatus(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{fmt.Errorf("x: %w", raft.ErrInvalidConfChange), http.StatusBadRequest},
		{raft.ErrNoTransferTarget, http.StatusBadRequest},
		{fmt.Errorf("x: %w", raft.ErrConfChangeInProgress), http.StatusConflict},
		{raft.ErrTransferInProgress, http.StatusConflict},
		{raft.ErrProposalDropped, http.StatusConflict},
		{context.DeadlineExceeded, http.StatusGatewayTimeout},
		{&raft.NotLeaderError{Leader: "n2"}, http.StatusServiceUnavailable},
		{consensus.ErrTransferAborted, http.StatusServiceUnavailable},
		{consensus.ErrStopped, http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		if got := adminStatus(tt.err); got != tt.want {
			t.Errorf("adminStatus(%v) = %d; want %d", tt.err, got, tt.want)
		}
	}
}

// TestDecodeAdmin: forwarded requests and replies that do not decode are
// refused with errBadAdminRequest or errBadReply.
func TestDecodeAdmin(t *testing.T) {
	reqs := []struct {
		in   string
		want error
	}{
		{`{"op":"add","id":"n4"}`, nil},
		{`{"op":"transfer"}`, nil},
		{`{"op":"add"}`, errBadAdminRequest},
		{`{"op":"explode","id":"n4"}`, errBadAdminRequest},
		{`{"op":"remove","id":"a=b"}`, errBadAdminRequest},
		{`not json`, errBadAdminRequest},
		{``, errBadAdminRequest},
	}
	for _, tt := range reqs {
		if _, err := decodeAdminRequest([]byte(tt.in)); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("decodeAdminRequest(%q) = %v; want %v", tt.in, err, tt.want)
		}
	}
	reps := []struct {
		in   string
		want error
	}{
		{`{"code":200,"body":"e30="}`, nil},
		{`{"code":99}`, errBadReply},
		{`{"code":600}`, errBadReply},
		{`[]`, errBadReply},
	}
	for _, tt := range reps {
		if _, err := decodeAdminReply([]byte(tt.in)); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("decodeAdminReply(%q) = %v; want %v", tt.in, err, tt.want)
		}
	}
}

// FuzzDecodeAdmin: the decoders of forwarded admin traffic never panic,
// and a request they accept is valid and survives a round trip.
func FuzzDecodeAdmin(f *testing.F) {
	for _, s := range []string{`{"op":"add","id":"n4","learner":true}`, `{"op":"transfer","id":""}`, `{"code":409,"body":"eA=="}`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeAdminReply(b)
		req, err := decodeAdminRequest(b)
		if err != nil {
			if !errors.Is(err, errBadAdminRequest) {
				t.Fatalf("decodeAdminRequest(%q) = %v; want errBadAdminRequest", b, err)
			}
			return
		}
		if err := req.validate(); err != nil {
			t.Fatalf("accepted %q, which does not validate: %v", b, err)
		}
		again, _ := json.Marshal(req)
		if got, err := decodeAdminRequest(again); err != nil || got != req {
			t.Fatalf("round trip of %+v = %+v, %v", req, got, err)
		}
	})
}

// TestGracefulStopHandsOver: the SIGTERM path (stopGracefully) of a leader
// hands leadership over before the node stops: by the time it returns,
// another node leads the next term, so the cluster sees no election
// timeout.
func TestGracefulStopHandsOver(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ids := []transport.NodeID{"n1", "n2", "n3"}
	c := newAdminCluster(t, ids, ids).startFounders()
	l := c.leader(ctx)
	if code, body := c.do(ctx, l, http.MethodPut, "/kv/k"); code != http.StatusOK {
		t.Fatalf("PUT = %d %s", code, body)
	}
	term := c.servers[l].node.Leader().Term
	c.servers[l].stopGracefully(slog.New(slog.DiscardHandler))
	var next []string
	for _, id := range ids {
		if li := c.servers[id].node.Leader(); id != l && li.Role == raft.Leader {
			next = append(next, fmt.Sprintf("%s (term %d)", id, li.Term))
			if li.Term != term+1 {
				t.Errorf("%s leads in term %d after %s stopped in term %d; want term %d", id, li.Term, l, term, term+1)
			}
		}
	}
	if len(next) != 1 {
		t.Fatalf("after leader %s stopped gracefully, leaders %v; want one other node leading already", l, next)
	}
}

// TestRunJoinFlags: the bootstrap-vs-join flags are checked before the
// node starts, with messages that say the rule.
func TestRunJoinFlags(t *testing.T) {
	node := []string{"-id", "n4", "-http", "127.0.0.1:0", "-peers", "n1=127.0.0.1:1,n4=127.0.0.1:4"}
	tests := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{"cluster without id", []string{"-cluster", "n1,n2,n3"}, "need -id"},
		{"join without id", []string{"-join"}, "need -id"},
		{"join without cluster", append(slices.Clone(node), "-join"), "-join needs -cluster"},
		{"not a founder and no join", append(slices.Clone(node), "-cluster", "n1,n2,n3"), "starts with -join"},
		{"empty cluster entry", append(slices.Clone(node), "-cluster", "n1,,n2"), "bad -cluster entry"},
		{"cluster lists an ID twice", append(slices.Clone(node), "-join", "-cluster", "n1,n1"), `-cluster lists "n1" twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if got := run(tt.args, &stdout, &stderr); got != 1 || !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Fatalf("run(%q) = %d, stderr:\n%s\nwant 1 with %q", tt.args, got, stderr.String(), tt.wantStderr)
			}
		})
	}
}

// TestAdminConflictDuringTransfer: while a transfer to a node that is down
// is under way, a membership change answers 409; once the leader gives the
// transfer up (an election timeout later) the transfer answers 503 and
// the change goes through.
func TestAdminConflictDuringTransfer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ids := []transport.NodeID{"n1", "n2", "n3"}
	c := newAdminCluster(t, ids, ids).startFounders()
	l := c.leader(ctx)
	down := c.follower(ctx)
	c.servers[down].Close()
	c.https[down].Close()
	delete(c.servers, down)
	delete(c.https, down)
	delete(c.trs, down) // closed with its server

	type answer struct {
		code int
		body string
	}
	// The transfer lasts an election timeout: on a machine so loaded that
	// the change arrives later than that, it is accepted (200) and the
	// attempt proves nothing; try again.
	conflict := false
	for attempt := 0; attempt < 5 && !conflict; attempt++ {
		transfer := make(chan answer, 1)
		go func() {
			code, body := c.do(ctx, l, http.MethodPost, "/transfer?to="+string(down))
			transfer <- answer{code, body}
		}()
		for c.servers[l].node.Status().LeadTransferee != down {
			select {
			case a := <-transfer:
				t.Fatalf("POST /transfer?to=%s (down) = %d %s before the test saw it under way", down, a.code, a.body)
			case <-time.After(time.Millisecond):
			}
		}
		code, body := c.do(ctx, l, http.MethodPost, fmt.Sprintf("/members?id=x%d&learner=1", attempt))
		switch code {
		case http.StatusConflict:
			conflict = true
		case http.StatusOK:
			t.Logf("attempt %d: the change arrived after the transfer was given up", attempt)
		default:
			t.Errorf("POST /members during a transfer = %d %s; want 409", code, body)
		}
		if a := <-transfer; a.code != http.StatusServiceUnavailable {
			t.Errorf("POST /transfer?to=%s (down) = %d %s; want 503 (given up)", down, a.code, a.body)
		}
	}
	if !conflict {
		t.Errorf("no change asked during a transfer answered 409")
	}
	if code, body := c.do(ctx, l, http.MethodPost, "/members?id=n9&learner=1"); code != http.StatusOK {
		t.Errorf("POST /members after the transfer was given up = %d %s; want 200", code, body)
	}
}
