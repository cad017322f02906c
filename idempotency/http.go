package idempotency

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Header names used by the middleware.
const (
	// KeyHeader is the request header carrying the idempotency key
	// (IETF draft-ietf-httpapi-idempotency-key-header).
	KeyHeader = "Idempotency-Key"
	// ReplayedHeader is set to "true" on a response replayed from the store
	// rather than produced by the handler.
	ReplayedHeader = "Idempotent-Replayed"
	// BodyOmittedHeader is set to "true" on a replayed response whose body
	// was larger than HTTPConfig.MaxResponseBytes and so was not stored.
	BodyOmittedHeader = "Idempotent-Body-Omitted"
)

// HTTPConfig configures the Middleware.
type HTTPConfig struct {
	// Methods are the request methods the middleware applies to (default
	// POST and PATCH); other requests pass straight through.
	Methods []string
	// RequireKey answers 400 Bad Request to a request without a key
	// (default true). When false such requests pass straight through.
	RequireKey bool
	// MaxRequestBytes bounds the request body read to fingerprint the
	// request (default 1 MiB); a larger body gets 413.
	MaxRequestBytes int64
	// MaxResponseBytes bounds the response body stored for replay (default
	// 1 MiB). A larger response reaches the client in full, but only its
	// status and headers are stored: a retry gets them with an empty body
	// and BodyOmittedHeader set, and the handler does not run again.
	MaxResponseBytes int
	// Scope returns the namespace of a request's key, typically the
	// authenticated client, so that two clients choosing the same key do
	// not collide. Nil means one namespace for everyone.
	Scope func(*http.Request) string
	// CacheFailures stores 5xx responses like any other. By default a 5xx
	// response releases the key, so a retry runs the handler again.
	CacheFailures bool
	// Runner configures the underlying Runner (clock, retention,
	// in-progress timeout, logger). Its OnInProgress, CacheFailures and
	// MaxResultBytes are set by the middleware.
	Runner Config
}

// DefaultHTTPConfig returns the defaults described on HTTPConfig.
func DefaultHTTPConfig() HTTPConfig {
	return HTTPConfig{
		Methods:          []string{http.MethodPost, http.MethodPatch},
		RequireKey:       true,
		MaxRequestBytes:  1 << 20,
		MaxResponseBytes: 1 << 20,
		Runner:           DefaultConfig(),
	}
}

// Validate reports whether c is usable.
func (c HTTPConfig) Validate() error {
	switch {
	case len(c.Methods) == 0:
		return fmt.Errorf("%w: HTTPConfig.Methods is empty", ErrInvalidConfig)
	case c.MaxRequestBytes < 0:
		return fmt.Errorf("%w: HTTPConfig.MaxRequestBytes = %d; want ≥ 0", ErrInvalidConfig, c.MaxRequestBytes)
	case c.MaxResponseBytes < 0:
		return fmt.Errorf("%w: HTTPConfig.MaxResponseBytes = %d; want ≥ 0", ErrInvalidConfig, c.MaxResponseBytes)
	}
	return c.Runner.Validate()
}

// storedResponse is what the middleware keeps per key.
type storedResponse struct {
	Status      int         `json:"s"`
	Header      http.Header `json:"h,omitempty"`
	Body        []byte      `json:"b,omitempty"`
	BodyOmitted bool        `json:"o,omitempty"`
}

// Middleware makes unsafe HTTP methods safe to retry, following the IETF
// Idempotency-Key header draft:
//
//   - a request without a key gets 400 (when the key is required), one with
//     more than one key or a malformed key gets 400;
//   - the first request with a key runs the handler; its status, headers
//     and body are stored;
//   - a retry with the same key and the same request (method, path, query
//     and body) gets the stored response, with ReplayedHeader: true;
//   - the same key with a different request gets 422 Unprocessable Content;
//   - a request whose key is still being processed gets 409 Conflict.
//
// Error responses are application/problem+json (RFC 9457). A 5xx response
// releases the key unless HTTPConfig.CacheFailures. If the handler panics,
// its key stays in progress (409) until Runner.InProgressTimeout, because
// the effect may have happened. It is safe for concurrent use.
type Middleware struct {
	cfg    HTTPConfig
	runner *Runner[storedResponse]
}

// NewMiddleware returns a Middleware keeping responses in store.
func NewMiddleware(store Store, cfg HTTPConfig) (*Middleware, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rc := cfg.Runner
	rc.OnInProgress = RejectInProgress // the draft answers 409, not a wait
	rc.CacheFailures = false           // 5xx handling is done here
	// Headers and JSON framing come on top of the body; the body limit is
	// enforced before encoding.
	rc.MaxResultBytes = 4*cfg.MaxResponseBytes/3 + 64<<10
	r, err := NewRunner[storedResponse](store, JSONCodec[storedResponse]{}, rc)
	if err != nil {
		return nil, err
	}
	return &Middleware{cfg: cfg, runner: r}, nil
}

// Close waits for requests still running their handler and makes new ones
// fail with 503. It does not close the Store.
func (m *Middleware) Close() error {
	if m == nil || m.runner == nil {
		return notConstructed("Middleware")
	}
	return m.runner.Close()
}

// Stats returns the counters of the underlying Runner.
func (m *Middleware) Stats() Stats {
	if m == nil || m.runner == nil {
		return Stats{}
	}
	return m.runner.Stats()
}

// errServerFailure carries a 5xx response that must not be stored.
var errServerFailure = errors.New("idempotency: handler answered 5xx")

// Wrap returns next guarded by the middleware. A Middleware not made by
// NewMiddleware, or a nil next, answers every request with 500 and a
// problem detail naming the mistake.
func (m *Middleware) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if m == nil || m.runner == nil {
			writeProblem(w, http.StatusInternalServerError, "Misconfigured idempotency middleware", notConstructed("Middleware").Error())
			return
		}
		if next == nil {
			writeProblem(w, http.StatusInternalServerError, "Misconfigured idempotency middleware", "idempotency: Middleware.Wrap called with a nil handler")
			return
		}
		if !slices.Contains(m.cfg.Methods, req.Method) {
			next.ServeHTTP(w, req)
			return
		}
		values := req.Header.Values(KeyHeader)
		switch {
		case len(values) == 0 && !m.cfg.RequireKey:
			next.ServeHTTP(w, req)
			return
		case len(values) == 0:
			writeProblem(w, http.StatusBadRequest, "Idempotency-Key is missing",
				"This operation is idempotent and requires an Idempotency-Key request header.")
			return
		case len(values) > 1:
			writeProblem(w, http.StatusBadRequest, "More than one Idempotency-Key",
				"Send exactly one Idempotency-Key header.")
			return
		}
		key, err := ParseKeyHeader(values[0])
		if err != nil {
			writeProblem(w, http.StatusBadRequest, "Invalid Idempotency-Key", err.Error())
			return
		}
		body, err := io.ReadAll(io.LimitReader(req.Body, m.cfg.MaxRequestBytes+1))
		if err != nil {
			writeProblem(w, http.StatusBadRequest, "Unreadable request body", err.Error())
			return
		}
		if int64(len(body)) > m.cfg.MaxRequestBytes {
			writeProblem(w, http.StatusRequestEntityTooLarge, "Request body too large",
				fmt.Sprintf("The body exceeds %d bytes.", m.cfg.MaxRequestBytes))
			return
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		storeKey := key
		if m.cfg.Scope != nil {
			// Hash so that any scope keeps the key short and valid.
			storeKey = Fingerprint([]byte(m.cfg.Scope(req)), []byte(key))
		}
		fp := Fingerprint([]byte(req.Method), []byte(req.URL.Path), []byte(req.URL.RawQuery), body)

		rec := &capture{w: w, limit: m.cfg.MaxResponseBytes}
		resp, outcome, err := m.runner.DoOutcome(req.Context(), storeKey, fp, func(ctx context.Context) (storedResponse, error) {
			next.ServeHTTP(rec, req)
			sr := rec.stored()
			if sr.Status >= 500 && !m.cfg.CacheFailures {
				return sr, errServerFailure
			}
			return sr, nil
		})
		switch {
		case outcome == Executed:
			// The handler has written its response to the client already.
		case outcome == Replayed:
			replay(w, resp)
		case errors.Is(err, ErrKeyReuse):
			writeProblem(w, http.StatusUnprocessableEntity, "Idempotency-Key reused",
				"This Idempotency-Key was already used for a different request.")
		case errors.Is(err, ErrInProgress):
			w.Header().Set("Retry-After", "1")
			writeProblem(w, http.StatusConflict, "Request in progress",
				"A request with this Idempotency-Key is still being processed; retry later.")
		case errors.Is(err, ErrResultNotStored):
			writeProblem(w, http.StatusInternalServerError, "Response not replayable",
				"The request completed, but its response could not be stored for replay.")
		case errors.Is(err, ErrClosed):
			writeProblem(w, http.StatusServiceUnavailable, "Shutting down", "Retry later.")
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			// The client has gone; nobody reads the answer.
		default:
			writeProblem(w, http.StatusInternalServerError, "Idempotency store error", "Retry later.")
		}
	})
}

// ParseKeyHeader extracts the key from an Idempotency-Key header value. The
// draft defines the value as a Structured Field string ("…" with \" and \\
// escapes); a bare token is accepted too, since many clients send one. The
// key must then pass ValidateKey.
func ParseKeyHeader(value string) (string, error) {
	v := strings.TrimSpace(value)
	if strings.HasPrefix(v, `"`) {
		var b strings.Builder
		closed := false
		for i := 1; i < len(v); i++ {
			c := v[i]
			if c == '\\' {
				if i+1 >= len(v) || (v[i+1] != '"' && v[i+1] != '\\') {
					return "", &KeyError{Key: truncateKey(v), Reason: "bad escape in quoted key"}
				}
				b.WriteByte(v[i+1])
				i++
				continue
			}
			if c == '"' {
				if i != len(v)-1 {
					return "", &KeyError{Key: truncateKey(v), Reason: "text after the closing quote"}
				}
				closed = true
				break
			}
			b.WriteByte(c)
		}
		if !closed {
			return "", &KeyError{Key: truncateKey(v), Reason: "missing closing quote"}
		}
		v = b.String()
	}
	if err := ValidateKey(v); err != nil {
		return "", err
	}
	return v, nil
}

func truncateKey(k string) string {
	if len(k) > 64 {
		return k[:64] + "…"
	}
	return k
}

// capture passes a handler's response through to the client and keeps a
// copy of up to limit body bytes.
type capture struct {
	w       http.ResponseWriter
	limit   int
	status  int
	header  http.Header
	body    bytes.Buffer
	omitted bool
}

func (c *capture) Header() http.Header { return c.w.Header() }

// Unwrap gives http.ResponseController access to the underlying writer.
func (c *capture) Unwrap() http.ResponseWriter { return c.w }

func (c *capture) WriteHeader(status int) {
	if c.status != 0 {
		return
	}
	c.status = status
	c.header = c.w.Header().Clone()
	c.w.WriteHeader(status)
}

func (c *capture) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.WriteHeader(http.StatusOK)
	}
	if !c.omitted {
		if c.body.Len()+len(p) > c.limit {
			c.omitted = true
			c.body = bytes.Buffer{}
		} else {
			c.body.Write(p)
		}
	}
	return c.w.Write(p)
}

func (c *capture) stored() storedResponse {
	if c.status == 0 { // the handler wrote nothing: net/http sends 200
		c.status = http.StatusOK
		c.header = c.w.Header().Clone()
	}
	sr := storedResponse{Status: c.status, Header: c.header, BodyOmitted: c.omitted}
	if !c.omitted {
		sr.Body = c.body.Bytes()
	}
	return sr
}

// replay writes a stored response.
func replay(w http.ResponseWriter, sr storedResponse) {
	h := w.Header()
	for k, vs := range sr.Header {
		h[k] = slices.Clone(vs)
	}
	h.Set(ReplayedHeader, "true")
	if sr.BodyOmitted {
		h.Del("Content-Length")
		h.Set(BodyOmittedHeader, "true")
	}
	w.WriteHeader(sr.Status)
	w.Write(sr.Body)
}

// writeProblem writes an RFC 9457 problem document.
func writeProblem(w http.ResponseWriter, status int, title, detail string) {
	b, _ := json.Marshal(struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}{"about:blank", title, status, detail})
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}
