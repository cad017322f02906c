package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
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
	atLimit := strings.Repeat("v", maxValueBytes)
	keyAtLimit := strings.Repeat("k", maxKeyBytes)
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
		// Exactly at the limit: accepted, through a follower that
		// forwards it, and read back whole.
		{"n2", "PUT", "/kv/big", atLimit, 200, `"found":true`},
		{"n3", "GET", "/kv/big", "", 200, `"value":"` + atLimit + `"`},
		// One byte over: rejected, never truncated.
		{"n2", "PUT", "/kv/big", atLimit + "w", 413, "larger than 1048576 bytes"},
		{"n3", "GET", "/kv/big", "", 200, `"value":"` + atLimit + `"`},
		// Keys: up to maxKeyBytes inclusive.
		{"n1", "PUT", "/kv/" + keyAtLimit, "k", 200, `"value":"k"`},
		{"n1", "PUT", "/kv/" + keyAtLimit + "k", "k", 414, "longer than 1024 bytes"},
		// The largest request: both limits at once, session stamp included.
		{"n3", "PUT", "/kv/" + keyAtLimit, atLimit, 200, `"found":true`},
		{"n2", "GET", "/kv/" + keyAtLimit + "k", "", 414, "longer than 1024 bytes"},
		// JSON would replace invalid UTF-8: rejected rather than altered.
		{"n1", "PUT", "/kv/bin", "\xff\xfe", 400, "UTF-8"},
		{"n1", "PUT", "/kv/%FF", "x", 400, "UTF-8"},
		{"n2", "GET", "/kv/%FF?stale=1", "", 400, "UTF-8"},
		{"n2", "GET", "/kv/bin", "", 404, `"value":""`},
	}
	for _, tt := range tests {
		h := servers[tt.node].handler()
		req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		body, _ := io.ReadAll(rec.Result().Body)
		if rec.Code != tt.wantCode || !strings.Contains(string(body), tt.wantBody) {
			t.Fatalf("%s %.40s on %s = %d %.200s; want %d with %.60q", tt.method, tt.path, tt.node, rec.Code, body, tt.wantCode, tt.wantBody)
		}
		if ct := rec.Header().Get("Content-Type"); rec.Code < 400 && ct != "application/json" {
			t.Fatalf("%s %.40s on %s: Content-Type %q; want application/json", tt.method, tt.path, tt.node, ct)
		}
	}
	rec := httptest.NewRecorder()
	servers["n1"].handler().ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"role"`) {
		t.Fatalf("GET /status = %d %s", rec.Code, rec.Body.String())
	}

	t.Run("short body", func(t *testing.T) { testShortBody(t, servers["n1"]) })
}

// testShortBody sends a PUT whose body is shorter than its Content-Length
// and then waits: the server must give up on the body (408) instead of
// holding the handler forever, and store nothing.
func testShortBody(t *testing.T, s *server) {
	hs := newHTTPServer("127.0.0.1:0", s.handler(), slog.New(slog.DiscardHandler))
	if hs.ReadTimeout <= 0 || hs.ReadHeaderTimeout <= 0 {
		t.Fatalf("newHTTPServer: ReadTimeout %v, ReadHeaderTimeout %v; want both > 0", hs.ReadTimeout, hs.ReadHeaderTimeout)
	}
	hs.ReadTimeout = 100 * time.Millisecond // shortened for the test
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	defer func() {
		hs.Close()
		<-errc
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT /kv/short HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
	// A guard against the hang this test is about, not a timing claim.
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a short body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("short body = %s; want 408", resp.Status)
	}
	if v, ok := s.store.Get("short"); ok {
		t.Fatalf("short body stored %q", v)
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

func TestRunFlags(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantStatus int
		wantStderr string
	}{
		{"help", []string{"-h"}, 0, "usage:\n  kvstore"},
		{"help lists the flags", []string{"-help"}, 0, "-peers"},
		{"unknown flag", []string{"-bogus"}, 2, "flag provided but not defined: -bogus"},
		{"stray argument", []string{"-id", "n1", "extra"}, 2, `unexpected argument "extra"`},
		{"id without peers", []string{"-id", "n1", "-http", "127.0.0.1:0"}, 1, "-peers is required"},
		{"id alone", []string{"-id", "n1"}, 1, "-peers is required"},
		{"id without http", []string{"-id", "n1", "-peers", "n1=127.0.0.1:0"}, 1, "-http is required"},
		{"node flags without id", []string{"-peers", "n1=127.0.0.1:0"}, 1, "need -id"},
		{"peers without self", []string{"-id", "n1", "-http", "127.0.0.1:0", "-peers", "n2=127.0.0.1:0"}, 1, `does not list this node "n1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			got := run(tt.args, &stdout, &stderr)
			if got != tt.wantStatus || !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Fatalf("run(%q) = %d, stderr:\n%s\nwant %d with %q", tt.args, got, stderr.String(), tt.wantStatus, tt.wantStderr)
			}
		})
	}
}

func TestNewLogger(t *testing.T) {
	tests := []struct {
		verbose            bool
		wantInfo, wantWarn bool
	}{
		{false, false, true}, // warnings (a torn WAL cut on open) show without -v
		{true, true, true},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		l := newLogger(&buf, tt.verbose)
		l.Info("info line")
		l.Warn("warn line")
		if gotInfo, gotWarn := strings.Contains(buf.String(), "info line"), strings.Contains(buf.String(), "warn line"); gotInfo != tt.wantInfo || gotWarn != tt.wantWarn {
			t.Errorf("newLogger(verbose %v) logged info %v, warn %v; want %v, %v", tt.verbose, gotInfo, gotWarn, tt.wantInfo, tt.wantWarn)
		}
	}
}

func TestCommandEncoding(t *testing.T) {
	tests := []command{
		{Op: "put", Key: "k", Value: "v"},
		{Op: "put", Key: "", Value: ""},
		{Op: "put", Key: "ключ", Value: strings.Repeat("\"<>&", 1000)},
		{Op: "get", Key: "k"},
		{Op: "delete", Key: strings.Repeat("k", maxKeyBytes)},
	}
	for _, c := range tests {
		b := encodeCommand(c.Op, c.Key, c.Value)
		if len(b) > maxCommandBytes {
			t.Errorf("encodeCommand(%+.40v) is %d bytes; limit %d", c, len(b), maxCommandBytes)
		}
		got, err := decodeCommand(b)
		if err != nil || got != c {
			t.Errorf("decodeCommand(encodeCommand(%+.40v)) = %+.40v, %v", c, got, err)
		}
	}
	// The largest valid request fits the log's command limit exactly.
	if n := len(encodeCommand("put", strings.Repeat("k", maxKeyBytes), strings.Repeat("v", maxValueBytes))); n > maxCommandBytes {
		t.Errorf("largest command is %d bytes; maxCommandBytes is %d", n, maxCommandBytes)
	}
	for _, bad := range [][]byte{nil, {'x'}, {'p'}, {'p', 5, 'a'}, {'g', 1, 'k', 'v'}, {'p', 0xff, 0xff}} {
		if _, err := decodeCommand(bad); !errors.Is(err, errBadCommand) {
			t.Errorf("decodeCommand(%q) = %v; want errBadCommand", bad, err)
		}
	}
}

func FuzzDecodeCommand(f *testing.F) {
	f.Add(encodeCommand("put", "k", "v"))
	f.Add(encodeCommand("delete", "k", ""))
	f.Add([]byte{'p', 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCommand(b)
		if err != nil {
			if !errors.Is(err, errBadCommand) {
				t.Fatalf("decodeCommand(%q) = %v; want errBadCommand", b, err)
			}
			return
		}
		if again, err := decodeCommand(encodeCommand(c.Op, c.Key, c.Value)); err != nil || again != c {
			t.Fatalf("decodeCommand(%q) = %+v, which does not survive encoding: %+v, %v", b, c, again, err)
		}
	})
}
