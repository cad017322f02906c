package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := runDemo(ctx, &out); err != nil {
		t.Fatalf("runDemo = %v\n%s", err, out.String())
	}
	for _, want := range []string{"new leader is", "all 6 acknowledged writes survived", "caught up"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestHTTPAPI(t *testing.T) {
	ids := []transport.NodeID{"n1", "n2", "n3"}
	servers, _, err := startCluster(ids, t.TempDir())
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	if err != nil {
		t.Fatal(err)
	}
	// Every request goes to a different node: followers forward to the
	// leader.
	big := strings.Repeat("v", maxValueBytes)
	tests := []struct {
		node       transport.NodeID
		method     string
		path, body string
		wantCode   int
		wantBody   string
	}{
		{"n1", "PUT", "/kv/hello", "world", 200, `"value":"world"`},
		{"n2", "GET", "/kv/hello", "", 200, `"value":"world"`},
		{"n3", "GET", "/kv/missing", "", 404, `"value":""`},
		{"n3", "DELETE", "/kv/hello", "", 200, `"value":"world"`},
		{"n1", "GET", "/kv/hello", "", 404, `"value":""`},
		// Too large for the request limit: rejected, never truncated.
		{"n2", "PUT", "/kv/big", big + "v", 413, "larger than"},
		// Within the request limit, but the command is too large for the log.
		{"n2", "PUT", "/kv/big", big, 413, "too large"},
		{"n3", "GET", "/kv/big", "", 404, `"value":""`},
		// JSON would replace invalid UTF-8: rejected rather than altered.
		{"n1", "PUT", "/kv/bin", "\xff\xfe", 400, "UTF-8"},
		{"n1", "PUT", "/kv/%FF", "x", 400, "UTF-8"},
		{"n2", "GET", "/kv/bin", "", 404, `"value":""`},
	}
	for _, tt := range tests {
		h := servers[tt.node].handler()
		req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		body, _ := io.ReadAll(rec.Result().Body)
		if rec.Code != tt.wantCode || !strings.Contains(string(body), tt.wantBody) {
			t.Fatalf("%s %s on %s = %d %.200s; want %d with %q", tt.method, tt.path, tt.node, rec.Code, body, tt.wantCode, tt.wantBody)
		}
	}
	rec := httptest.NewRecorder()
	servers["n1"].handler().ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"role"`) {
		t.Fatalf("GET /status = %d %s", rec.Code, rec.Body.String())
	}
}

func TestParsePeers(t *testing.T) {
	tests := []struct {
		in      string
		wantErr bool
	}{
		{"n1=127.0.0.1:7001,n2=127.0.0.1:7002", false},
		{"n1", true},
		{"n1=a:1,n1=b:2", true},
		{"=a:1", true},
	}
	for _, tt := range tests {
		if _, _, err := parsePeers(tt.in); (err != nil) != tt.wantErr {
			t.Fatalf("parsePeers(%q) err = %v; want error %v", tt.in, err, tt.wantErr)
		}
	}
}

func TestHTTPStatus(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{fmt.Errorf("wrapped: %w", consensus.ErrTooLarge), http.StatusRequestEntityTooLarge},
		{fmt.Errorf("consensus: client: %w", context.DeadlineExceeded), http.StatusGatewayTimeout},
		{consensus.ErrOutcomeUnknown, http.StatusServiceUnavailable},
		{&raft.NotLeaderError{}, http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		if got := httpStatus(tt.err); got != tt.want {
			t.Errorf("httpStatus(%v) = %d; want %d", tt.err, got, tt.want)
		}
	}
}

func TestDemoMode(t *testing.T) {
	tests := []struct {
		id, peers, data, http string
		wantDemo, wantErr     bool
	}{
		{"", "", "", "", true, false},
		{"n1", "n1=127.0.0.1:7001", "", "127.0.0.1:8001", false, false},
		{"", "n1=127.0.0.1:7001", "", "", false, true},
		{"", "", "/tmp/x", "", false, true},
		{"", "", "", "127.0.0.1:8001", false, true},
	}
	for _, tt := range tests {
		demo, err := demoMode(tt.id, tt.peers, tt.data, tt.http)
		if demo != tt.wantDemo || (err != nil) != tt.wantErr {
			t.Errorf("demoMode(%q, %q, %q, %q) = %v, %v; want demo %v, error %v", tt.id, tt.peers, tt.data, tt.http, demo, err, tt.wantDemo, tt.wantErr)
		}
	}
}
