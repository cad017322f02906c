// Command idempotency serves a small payment API on 127.0.0.1 behind the
// idempotency middleware and runs a client that retries through injected
// failures: a lost response, a timeout while the server is still charging,
// and a request the network delivers twice. Each attempt is printed; the
// run ends by showing that every card was charged exactly once per payment.
//
// Keys follow the textbook's rule (§6.5): the key is derived from the user,
// the operation and its parameters (idempotency.DeriveKey), so a retry
// carries the same key without the client storing one. A request that
// fails (a 5xx answer) is not cached, so a retry runs it again; the last
// scene shows the CacheFailures alternative, which replays the failure.
//
//	go run ./examples/idempotency
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/distkit/distkit/examples/internal/cli"
	"github.com/distkit/distkit/idempotency"
)

func main() {
	if err := parseFlags(os.Args[1:], os.Stderr); err != nil {
		os.Exit(cli.ExitCode(err))
	}
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "idempotency example:", err)
		os.Exit(1)
	}
}

// parseFlags accepts only -h: the scenario is fixed. It reports
// flag.ErrHelp for -h and an error for anything else, after printing the
// usage to stderr.
func parseFlags(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("idempotency", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: go run ./examples/idempotency")
		fmt.Fprintln(stderr, "Serves a payment API behind the idempotency middleware on 127.0.0.1 and retries through injected faults.")
		fs.PrintDefaults()
	}
	return cli.Parse(fs, args)
}

// chargeRequest is the body of POST /charges. Order names what is paid
// for, so two payments of the same amount on the same card are two
// operations (and get two keys).
type chargeRequest struct {
	Card   string `json:"card"`
	Amount int    `json:"amount"`
	Order  string `json:"order"`
}

// user is the client on whose behalf the example pays: the first part of
// the textbook's key "user + operation + parameters".
const user = "alice"

// bank is the side effect we must not repeat: it records every charge.
type bank struct {
	mu      sync.Mutex // guards charges
	charges []string   // "card amount" per charge made
}

func (b *bank) charge(card string, amount int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.charges = append(b.charges, fmt.Sprintf("%s %d", card, amount))
	return len(b.charges)
}

// paymentAPI is the handler behind the middleware. The X-Inject-Delay
// header makes it slow, to provoke a client timeout; it is not part of the
// fingerprint, so a retry without it still matches.
func paymentAPI(b *bank) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req chargeRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Card == "" || req.Amount <= 0 {
			http.Error(w, "bad charge request", http.StatusBadRequest)
			return
		}
		if d, err := time.ParseDuration(r.Header.Get("X-Inject-Delay")); err == nil {
			time.Sleep(d) // the charge completes even if the client gives up
		}
		if r.Header.Get("X-Inject-Outage") != "" {
			// The card network is down: nothing is charged, and the
			// failure is worth retrying.
			http.Error(w, "card network unavailable", http.StatusServiceUnavailable)
			return
		}
		id := b.charge(req.Card, req.Amount)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Location", fmt.Sprintf("/charges/ch_%d", id))
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":"ch_%d","card":%q,"amount":%d}`, id, req.Card, req.Amount)
	})
}

// fault is what the client's network does to one attempt.
type fault int

const (
	deliver      fault = iota // the request and response get through
	loseResponse              // the server processes it; the response is lost
	timeout                   // the server is slow; the client gives up first
	duplicate                 // the network delivers the request twice
	outage                    // the server fails the request with 503
)

func (f fault) String() string {
	return [...]string{"", "response lost (injected)", "client timeout (injected)", "request duplicated (injected)", "card network down (injected)"}[f]
}

// client sends one payment until it gets an answer, through faults.
type client struct {
	url  string
	http *http.Client
	out  io.Writer
}

// errFailureReplayed says the server replayed a cached failure: retrying
// under the same key can never succeed.
var errFailureReplayed = errors.New("the failure was replayed from the idempotency store")

// pay charges req under the key derived from (user, "charge", req) and
// retries through faults until it gets an answer.
func (c *client) pay(ctx context.Context, name, path string, req chargeRequest, faults []fault) error {
	key, err := idempotency.DeriveKey(user, "charge", req)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(req)
	fmt.Fprintf(c.out, "\n%s: charge card %s %d cents for %s\n", name, req.Card, req.Amount, req.Order)
	fmt.Fprintf(c.out, "  Idempotency-Key = DeriveKey(%q, \"charge\", %s) = %s…\n", user, body, key[:16])
	backoff := 50 * time.Millisecond
	for attempt := 1; attempt <= 10; attempt++ {
		f := deliver
		if attempt <= len(faults) {
			f = faults[attempt-1]
		}
		status, replayed, text, err := c.attempt(ctx, path, key, body, f)
		switch {
		case err != nil:
			fmt.Fprintf(c.out, "  attempt %d: %v -> retry\n", attempt, err)
		case status == http.StatusServiceUnavailable && replayed:
			fmt.Fprintf(c.out, "  attempt %d: %d %s, replayed from the idempotency store -> give up: this key can never succeed\n", attempt, status, text)
			return errFailureReplayed
		case status == http.StatusServiceUnavailable:
			fmt.Fprintf(c.out, "  attempt %d: %d %s -> retry\n", attempt, status, text)
		case status == http.StatusConflict:
			fmt.Fprintf(c.out, "  attempt %d: 409 Conflict, first request still in flight -> retry in %v\n", attempt, backoff)
			time.Sleep(backoff)
			backoff *= 2
		case status >= 200 && status < 300:
			how := "processed"
			if replayed {
				how = "replayed from the idempotency store"
			}
			fmt.Fprintf(c.out, "  attempt %d: %d %s, %s\n", attempt, status, text, how)
			return nil
		default:
			return fmt.Errorf("%s: attempt %d: unexpected %d %s", name, attempt, status, text)
		}
	}
	return fmt.Errorf("%s: no answer after 10 attempts", name)
}

// attempt performs one try of the request under fault f.
func (c *client) attempt(ctx context.Context, path, key string, body []byte, f fault) (status int, replayed bool, text string, err error) {
	send := func(ctx context.Context, delay string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+path, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(idempotency.KeyHeader, `"`+key+`"`)
		if delay != "" {
			req.Header.Set("X-Inject-Delay", delay)
		}
		if f == outage {
			req.Header.Set("X-Inject-Outage", "1")
		}
		return c.http.Do(req)
	}
	read := func(resp *http.Response) (int, bool, string) {
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get(idempotency.ReplayedHeader) == "true", strings.TrimSpace(string(b))
	}
	switch f {
	case loseResponse:
		resp, err := send(ctx, "")
		if err != nil {
			return 0, false, "", err
		}
		read(resp) // the server answered, but the answer never arrives
		return 0, false, "", errors.New(f.String())
	case timeout:
		tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		resp, err := send(tctx, "300ms")
		if err == nil {
			read(resp)
			return 0, false, "", errors.New("expected a timeout, got an answer")
		}
		return 0, false, "", errors.New(f.String())
	case duplicate:
		var wg sync.WaitGroup
		answers := make([]string, 2)
		for i := range answers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := send(ctx, "50ms")
				if err != nil {
					answers[i] = err.Error()
					return
				}
				st, rep, txt := read(resp)
				answers[i] = fmt.Sprintf("%d replayed=%v %s", st, rep, txt)
				if st >= 200 && st < 300 {
					status, replayed, text = st, rep, txt
				}
			}()
		}
		wg.Wait()
		fmt.Fprintf(c.out, "  %s: copy A got %s\n", f, answers[0])
		fmt.Fprintf(c.out, "  %s: copy B got %s\n", f, answers[1])
		if status == 0 {
			return 0, false, "", errors.New("neither copy succeeded")
		}
		return status, replayed, text, nil
	default:
		resp, err := send(ctx, "")
		if err != nil {
			return 0, false, "", err
		}
		st, rep, txt := read(resp)
		return st, rep, txt, nil
	}
}

func run(ctx context.Context, out io.Writer) error {
	store, err := idempotency.NewMemoryStore(idempotency.DefaultMemoryConfig())
	if err != nil {
		return err
	}
	mw, err := idempotency.NewMiddleware(store, idempotency.DefaultHTTPConfig())
	if err != nil {
		return err
	}
	// The same API behind a middleware that caches failures too.
	cacheCfg := idempotency.DefaultHTTPConfig()
	cacheCfg.CacheFailures = true
	mwCache, err := idempotency.NewMiddleware(store, cacheCfg)
	if err != nil {
		return err
	}
	b := &bank{}
	mux := http.NewServeMux()
	mux.Handle("/charges", mw.Wrap(paymentAPI(b)))
	mux.Handle("/charges-cache-failures", mwCache.Wrap(paymentAPI(b)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1) // Serve's result, read after Shutdown
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(out, "payment API on http://%s (POST /charges, Idempotency-Key required)\n", ln.Addr())

	transport := &http.Transport{}
	c := &client{url: "http://" + ln.Addr().String(), http: &http.Client{Transport: transport}, out: out}
	payments := []struct {
		name   string
		req    chargeRequest
		faults []fault
	}{
		{"payment 1", chargeRequest{"4242-4242", 1000, "order-17"}, []fault{loseResponse, loseResponse}},
		{"payment 2", chargeRequest{"5555-4444", 2500, "order-18"}, []fault{timeout}},
		{"payment 3", chargeRequest{"4242-4242", 700, "order-19"}, []fault{duplicate}},
		{"payment 4", chargeRequest{"4242-4242", 400, "order-20"}, []fault{outage}},
	}
	var payErr error
	for _, p := range payments {
		if payErr = c.pay(ctx, p.name, "/charges", p.req, p.faults); payErr != nil {
			break
		}
	}

	// The CacheFailures alternative: the first answer is final, even a 503.
	if payErr == nil {
		fmt.Fprintf(out, "\nwith CacheFailures (POST /charges-cache-failures) a failure is stored like a success:")
		err := c.pay(ctx, "payment 5", "/charges-cache-failures", chargeRequest{"5555-4444", 900, "order-21"}, []fault{outage, outage})
		if !errors.Is(err, errFailureReplayed) {
			payErr = fmt.Errorf("payment 5: got %v; want the cached 503 replayed", err)
		}
	}

	// A client bug: the same key for a different charge is refused.
	if payErr == nil {
		payErr = c.reuseKey(ctx)
	}

	transport.CloseIdleConnections()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	mw.Close()
	mwCache.Close()
	if payErr != nil {
		return payErr
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	counts := map[string]int{}
	for _, c := range b.charges {
		counts[c]++
	}
	fmt.Fprintf(out, "\nthe bank's ledger:\n")
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	once := true
	for _, k := range keys {
		fmt.Fprintf(out, "  card %s cents: charged %d time(s)\n", strings.Replace(k, " ", ", ", 1), counts[k])
		once = once && counts[k] == 1
	}
	st := mw.Stats()
	fmt.Fprintf(out, "middleware: %d executed, %d replayed, %d rejected in flight, %d key reuses\n",
		st.Executed, st.Replayed, st.InProgress, st.KeyReuse)
	if !once || len(keys) != len(payments)+1 { // +1: the first charge of reuseKey; payment 5 never charged
		return fmt.Errorf("a card was charged more than once or not at all: %v", counts)
	}
	fmt.Fprintf(out, "every card charged exactly once per payment, despite %d attempts\n", st.Executed+st.Replayed+st.InProgress)
	return nil
}

// reuseKey sends two different charges under one key. A derived key cannot
// do this (different parameters give a different key); a random key
// (idempotency.RandomKey) stored and reused by a buggy client can.
func (c *client) reuseKey(ctx context.Context) error {
	key, _ := idempotency.RandomKey()
	fmt.Fprintf(c.out, "\nclient bug: a random key (RandomKey) reused for a different amount, %s\n", key)
	for i, amount := range []int{300, 30000} { // same key, different body
		body, _ := json.Marshal(chargeRequest{"4242-4242", amount, "order-22"})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.url+"/charges", bytes.NewReader(body))
		req.Header.Set(idempotency.KeyHeader, key)
		resp, err := c.http.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Fprintf(c.out, "  amount %d: %d %s\n", amount, resp.StatusCode, strings.TrimSpace(string(b)))
		if i == 1 && resp.StatusCode != http.StatusUnprocessableEntity {
			return fmt.Errorf("key reuse got %d; want 422", resp.StatusCode)
		}
	}
	return nil
}
