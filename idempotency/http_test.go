package idempotency

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/distkit/distkit/clock"
)

// payments is a test handler that charges on every call it receives.
type payments struct {
	charges atomic.Int64
	status  atomic.Int64  // status to answer with; 0 means 201
	gate    chan struct{} // if not nil, each call waits for it
	entered chan struct{} // if not nil, each call signals it first
	bigBody int           // bytes of padding to add to the body
}

func (p *payments) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.entered != nil {
		p.entered <- struct{}{}
	}
	if p.gate != nil {
		<-p.gate
	}
	body, _ := io.ReadAll(r.Body)
	n := p.charges.Add(1)
	status := int(p.status.Load())
	if status == 0 {
		status = http.StatusCreated
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Location", fmt.Sprint("/payments/", n))
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"charge":%d,"request":%q,"pad":%q}`, n, body, strings.Repeat("x", p.bigBody))
}

func newTestMiddleware(t *testing.T, tweak func(*HTTPConfig)) (*Middleware, *payments, *httptest.Server) {
	t.Helper()
	store, err := NewMemoryStore(DefaultMemoryConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultHTTPConfig()
	cfg.Runner.Clock = clock.NewManual(epoch)
	if tweak != nil {
		tweak(&cfg)
	}
	m, err := NewMiddleware(store, cfg)
	if err != nil {
		t.Fatalf("NewMiddleware: %v", err)
	}
	h := &payments{}
	srv := httptest.NewServer(m.Wrap(h))
	t.Cleanup(func() {
		srv.Close()
		m.Close()
	})
	return m, h, srv
}

type response struct {
	status int
	header http.Header
	body   string
}

func send(t *testing.T, srv *httptest.Server, method, path string, keys []string, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		req.Header.Add(KeyHeader, k)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(b)}
}

func TestMiddlewareStatuses(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		keys       []string
		body       string
		wantStatus int
	}{
		{"missing key", "POST", nil, "{}", http.StatusBadRequest},
		{"two keys", "POST", []string{`"a"`, `"b"`}, "{}", http.StatusBadRequest},
		{"malformed key", "POST", []string{`"a b"`}, "{}", http.StatusBadRequest},
		{"key too long", "POST", []string{strings.Repeat("k", 256)}, "{}", http.StatusBadRequest},
		{"body too large", "POST", []string{`"big"`}, strings.Repeat("x", 2<<20), http.StatusRequestEntityTooLarge},
		{"body at the limit", "POST", []string{`"at-limit"`}, strings.Repeat("x", 1<<20), http.StatusCreated},
		{"quoted key", "POST", []string{`"k1"`}, "{}", http.StatusCreated},
		{"bare key", "PATCH", []string{"k2"}, "{}", http.StatusCreated},
		{"GET passes through without key", "GET", nil, "", http.StatusCreated},
		{"PUT passes through without key", "PUT", nil, "", http.StatusCreated},
	}
	_, _, srv := newTestMiddleware(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := send(t, srv, tt.method, "/pay", tt.keys, tt.body)
			if got.status != tt.wantStatus {
				t.Errorf("%s with keys %.30q: status %d; want %d (body %.200s)", tt.method, tt.keys, got.status, tt.wantStatus, got.body)
			}
		})
	}
}

func TestMiddlewareProblemDocument(t *testing.T) {
	_, _, srv := newTestMiddleware(t, nil)
	got := send(t, srv, "POST", "/pay", nil, "{}")
	if ct := got.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q; want application/problem+json", ct)
	}
	var p struct {
		Title  string
		Status int
	}
	if err := json.Unmarshal([]byte(got.body), &p); err != nil || p.Status != 400 || p.Title == "" {
		t.Errorf("problem body %q: %+v, %v; want status 400 and a title", got.body, p, err)
	}
}

func TestMiddlewareReplay(t *testing.T) {
	m, h, srv := newTestMiddleware(t, nil)
	first := send(t, srv, "POST", "/pay", []string{`"pay-1"`}, `{"amount":100}`)
	again := send(t, srv, "POST", "/pay", []string{`"pay-1"`}, `{"amount":100}`)
	if first.status != 201 || again.status != 201 || again.body != first.body {
		t.Fatalf("replay = %d %q; want the original %d %q", again.status, again.body, first.status, first.body)
	}
	if loc := again.header.Get("Location"); loc != first.header.Get("Location") {
		t.Errorf("replayed Location = %q; want %q", loc, first.header.Get("Location"))
	}
	if first.header.Get(ReplayedHeader) != "" || again.header.Get(ReplayedHeader) != "true" {
		t.Errorf("%s: first %q, replay %q; want only the replay marked", ReplayedHeader,
			first.header.Get(ReplayedHeader), again.header.Get(ReplayedHeader))
	}
	if n := h.charges.Load(); n != 1 {
		t.Errorf("handler charged %d times; want 1", n)
	}
	reuse := send(t, srv, "POST", "/pay", []string{`"pay-1"`}, `{"amount":999}`)
	if reuse.status != http.StatusUnprocessableEntity {
		t.Errorf("key reused with another body: status %d; want 422", reuse.status)
	}
	otherPath := send(t, srv, "POST", "/refund", []string{`"pay-1"`}, `{"amount":100}`)
	if otherPath.status != http.StatusUnprocessableEntity {
		t.Errorf("key reused on another path: status %d; want 422", otherPath.status)
	}
	otherQuery := send(t, srv, "POST", "/pay?currency=USD", []string{`"pay-1"`}, `{"amount":100}`)
	if otherQuery.status != http.StatusUnprocessableEntity {
		t.Errorf("key reused with another query: status %d; want 422", otherQuery.status)
	}
	otherMethod := send(t, srv, "PATCH", "/pay", []string{`"pay-1"`}, `{"amount":100}`)
	if otherMethod.status != http.StatusUnprocessableEntity {
		t.Errorf("key reused with another method: status %d; want 422", otherMethod.status)
	}
	if st := m.Stats(); st.Executed != 1 || st.Replayed != 1 || st.KeyReuse != 4 {
		t.Errorf("Stats() = %+v; want 1 executed, 1 replayed, 4 key reuses", st)
	}
}

func TestMiddlewareConflictWhileInFlight(t *testing.T) {
	_, h, srv := newTestMiddleware(t, nil)
	h.gate, h.entered = make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	var first response
	wg.Add(1)
	go func() {
		defer wg.Done()
		first = send(t, srv, "POST", "/pay", []string{`"slow"`}, `{}`)
	}()
	<-h.entered // the first request is inside the handler
	dup := send(t, srv, "POST", "/pay", []string{`"slow"`}, `{}`)
	if dup.status != http.StatusConflict || dup.header.Get("Retry-After") == "" {
		t.Errorf("duplicate in flight: status %d, Retry-After %q; want 409 with Retry-After", dup.status, dup.header.Get("Retry-After"))
	}
	close(h.gate)
	wg.Wait()
	if first.status != 201 {
		t.Fatalf("first request: status %d; want 201", first.status)
	}
	h.entered = nil
	if again := send(t, srv, "POST", "/pay", []string{`"slow"`}, `{}`); again.body != first.body {
		t.Errorf("retry after completion = %q; want the first response %q", again.body, first.body)
	}
}

func TestMiddlewareServerErrors(t *testing.T) {
	tests := []struct {
		name          string
		status        int
		cacheFailures bool
		wantCharges   int64
		wantReplayed  string
	}{
		{"503 not cached by default", 503, false, 2, ""},
		{"500 not cached by default", 500, false, 2, ""},
		{"503 cached when configured", 503, true, 1, "true"},
		{"500 cached when configured", 500, true, 1, "true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, h, srv := newTestMiddleware(t, func(c *HTTPConfig) { c.CacheFailures = tt.cacheFailures })
			h.status.Store(int64(tt.status))
			send(t, srv, "POST", "/pay", []string{"k"}, "{}")
			second := send(t, srv, "POST", "/pay", []string{"k"}, "{}")
			if h.charges.Load() != tt.wantCharges || second.header.Get(ReplayedHeader) != tt.wantReplayed || second.status != tt.status {
				t.Errorf("after two %ds: %d charges, status %d, replayed %q; want %d charges, %d, replayed %q",
					tt.status, h.charges.Load(), second.status, second.header.Get(ReplayedHeader), tt.wantCharges, tt.status, tt.wantReplayed)
			}
		})
	}
}

func TestMiddlewareOversizedResponse(t *testing.T) {
	_, h, srv := newTestMiddleware(t, func(c *HTTPConfig) { c.MaxResponseBytes = 100 })
	h.bigBody = 200
	first := send(t, srv, "POST", "/pay", []string{"k"}, "{}")
	if len(first.body) < 200 {
		t.Fatalf("first response has %d bytes; want the full body", len(first.body))
	}
	again := send(t, srv, "POST", "/pay", []string{"k"}, "{}")
	if again.status != 201 || again.body != "" || again.header.Get(BodyOmittedHeader) != "true" || again.header.Get("Location") == "" {
		t.Errorf("replay of oversized response = %d %q %v; want 201, empty body, %s and the original headers",
			again.status, again.body, again.header, BodyOmittedHeader)
	}
	if n := h.charges.Load(); n != 1 {
		t.Errorf("handler charged %d times; want 1", n)
	}
}

func TestMiddlewareScopeAndOptionalKey(t *testing.T) {
	_, h, srv := newTestMiddleware(t, func(c *HTTPConfig) {
		c.RequireKey = false
		c.Scope = func(r *http.Request) string { return r.Header.Get("X-Client") }
	})
	if got := send(t, srv, "POST", "/pay", nil, "{}"); got.status != 201 {
		t.Errorf("no key with RequireKey=false: status %d; want 201", got.status)
	}
	for _, client := range []string{"alice", "bob"} {
		req, _ := http.NewRequest("POST", srv.URL+"/pay", strings.NewReader("{}"))
		req.Header.Set(KeyHeader, "same-key")
		req.Header.Set("X-Client", client)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 201 || resp.Header.Get(ReplayedHeader) != "" {
			t.Errorf("client %s: status %d replayed %q; want a fresh 201", client, resp.StatusCode, resp.Header.Get(ReplayedHeader))
		}
	}
	if n := h.charges.Load(); n != 3 {
		t.Errorf("charges = %d; want 3 (keys are scoped per client)", n)
	}
}

// TestMiddlewareMisconfigured: a zero Middleware and a nil wrapped handler
// answer 500 with a problem document instead of panicking.
func TestMiddlewareMisconfigured(t *testing.T) {
	store, err := NewMemoryStore(DefaultMemoryConfig())
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMiddleware(store, DefaultHTTPConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var zero Middleware
	tests := []struct {
		name string
		h    http.Handler
	}{
		{"zero Middleware", zero.Wrap(&payments{})},
		{"nil handler", m.Wrap(nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/payments", strings.NewReader("{}"))
			req.Header.Set(KeyHeader, "k1")
			rec := httptest.NewRecorder()
			tt.h.ServeHTTP(rec, req)
			if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "idempotency:") {
				t.Errorf("%s: status %d, body %q; want 500 with a problem naming the mistake", tt.name, rec.Code, rec.Body.String())
			}
		})
	}
}

func TestHTTPConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		tweak func(*HTTPConfig)
	}{
		{"no methods", func(c *HTTPConfig) { c.Methods = nil }},
		{"negative request limit", func(c *HTTPConfig) { c.MaxRequestBytes = -1 }},
		{"negative response limit", func(c *HTTPConfig) { c.MaxResponseBytes = -1 }},
		{"bad runner config", func(c *HTTPConfig) { c.Runner.Retention = 0 }},
	}
	store, _ := NewMemoryStore(DefaultMemoryConfig())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultHTTPConfig()
			tt.tweak(&cfg)
			if _, err := NewMiddleware(store, cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("NewMiddleware(%s) = %v; want ErrInvalidConfig", tt.name, err)
			}
		})
	}
}

// TestMiddlewareReplayAfterRestart checks that a FileStore-backed middleware
// replays a response recorded before a restart.
func TestMiddlewareReplayAfterRestart(t *testing.T) {
	path := t.TempDir() + "/idem.log"
	h := &payments{}
	var bodies []string
	for range 2 {
		store, err := OpenFileStore(path, DefaultFileConfig())
		if err != nil {
			t.Fatal(err)
		}
		m, err := NewMiddleware(store, DefaultHTTPConfig())
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(m.Wrap(h))
		got := send(t, srv, "POST", "/pay", []string{"restart-1"}, `{"amount":1}`)
		bodies = append(bodies, got.body)
		srv.Close()
		m.Close()
		store.Close()
	}
	if bodies[0] != bodies[1] || h.charges.Load() != 1 {
		t.Errorf("after restart: bodies %q, %d charges; want the same body and 1 charge", bodies, h.charges.Load())
	}
}

// TestMiddlewareResponseAtTheLimit: a response body of exactly
// MaxResponseBytes is stored and replayed in full.
func TestMiddlewareResponseAtTheLimit(t *testing.T) {
	const pad = 50
	body := fmt.Sprintf(`{"charge":%d,"request":%q,"pad":%q}`, 1, []byte("{}"), strings.Repeat("x", pad))
	_, h, srv := newTestMiddleware(t, func(c *HTTPConfig) { c.MaxResponseBytes = len(body) })
	h.bigBody = pad
	if first := send(t, srv, "POST", "/pay", []string{"k"}, "{}"); first.body != body {
		t.Fatalf("first response = %q; want %q", first.body, body)
	}
	again := send(t, srv, "POST", "/pay", []string{"k"}, "{}")
	if again.body != body || again.header.Get(BodyOmittedHeader) != "" || again.header.Get(ReplayedHeader) != "true" {
		t.Errorf("replay = %q (%s %q); want the full %d-byte body replayed", again.body, BodyOmittedHeader,
			again.header.Get(BodyOmittedHeader), len(body))
	}
}

// TestMiddlewareKeepsFirstStatus: the stored status is the one the client
// received, the handler's first WriteHeader; net/http ignores later ones.
func TestMiddlewareKeepsFirstStatus(t *testing.T) {
	store, err := NewMemoryStore(DefaultMemoryConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultHTTPConfig()
	cfg.Runner.Clock = clock.NewManual(epoch)
	m, err := NewMiddleware(store, cfg)
	if err != nil {
		t.Fatalf("NewMiddleware: %v", err)
	}
	var calls atomic.Int64
	srv := httptest.NewUnstartedServer(m.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusCreated)
		w.WriteHeader(http.StatusInternalServerError) // superfluous: ignored
		io.WriteString(w, "created")
	})))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the superfluous WriteHeader warning
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		m.Close()
	})
	first := send(t, srv, "POST", "/pay", []string{"k"}, "{}")
	again := send(t, srv, "POST", "/pay", []string{"k"}, "{}")
	if first.status != http.StatusCreated || again.status != http.StatusCreated || again.header.Get(ReplayedHeader) != "true" {
		t.Errorf("statuses %d then %d (replayed %q); want 201 then a replayed 201", first.status, again.status, again.header.Get(ReplayedHeader))
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("handler ran %d times; want 1", n)
	}
}
