//go:build unix

package crashtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"go.uber.org/goleak"
)

// knownFailure, when not empty, says why the short run is skipped in the
// default test suite: the kvstore it tests is known not to be
// linearizable under crashes. DISTKIT_CRASHTEST=1 runs it anyway; the soak
// (DISTKIT_SOAK=1) always runs. It was set until kvstore's writes went
// through client sessions (issue 13: a follower's forwarded PUT that timed
// out was proposed again as a fresh command and could land after a later
// acknowledged write); 13 of 15 short runs failed then.
const knownFailure = ""

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// runConfig shapes one run.
type runConfig struct {
	Seed         uint64
	Duration     time.Duration // of the fault phase
	Clients      int
	Keys         []string
	CheckTimeout time.Duration // porcupine's budget
}

func defaultRunConfig(t testing.TB, d time.Duration) runConfig {
	cfg := runConfig{
		Seed:         uint64(time.Now().UnixNano()),
		Duration:     d,
		Clients:      6,
		Keys:         []string{"x", "y", "z"},
		CheckTimeout: 2 * time.Minute,
	}
	if s := os.Getenv("DISTKIT_CRASHTEST_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("crashtest: DISTKIT_CRASHTEST_SEED=%q: %v", s, err)
		}
		cfg.Seed = seed
	}
	if s := os.Getenv("DISTKIT_CRASHTEST_DURATION"); s != "" {
		dur, err := time.ParseDuration(s)
		if err != nil || dur <= 0 {
			t.Fatalf("crashtest: DISTKIT_CRASHTEST_DURATION=%q: want a positive Go duration such as 60s", s)
		}
		cfg.Duration = dur
	}
	return cfg
}

// TestCrashShort is the short run of the default suite: about 25 s of
// faults (a SIGKILL-and-restart or a leader SIGSTOP every 1–3 s) under six
// concurrent clients, then a linearizability check of the whole history.
func TestCrashShort(t *testing.T) {
	if testing.Short() {
		t.Skip("crashtest: a 30 s run of real processes; skipped with -short")
	}
	if knownFailure != "" && os.Getenv("DISTKIT_CRASHTEST") != "1" {
		t.Skip("crashtest: " + knownFailure + " (DISTKIT_CRASHTEST=1 runs it anyway)")
	}
	bin := buildKVStore(t)
	runCrash(t, bin, defaultRunConfig(t, 25*time.Second))
}

// TestCrashSoak repeats the run DISTKIT_CRASHTEST_RUNS times (default 20)
// with a 60 s fault phase each, behind DISTKIT_SOAK=1. It reports how many
// runs failed; each failed run keeps its directory.
func TestCrashSoak(t *testing.T) {
	if !soak() {
		t.Skip("crashtest: the soak runs with DISTKIT_SOAK=1")
	}
	runs := 20
	if s := os.Getenv("DISTKIT_CRASHTEST_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("crashtest: DISTKIT_CRASHTEST_RUNS=%q: want a positive integer", s)
		}
		runs = n
	}
	cfg := defaultRunConfig(t, 60*time.Second)
	if dl, ok := t.Deadline(); ok {
		need := time.Duration(runs) * (cfg.Duration + 30*time.Second)
		if left := time.Until(dl); left < need {
			t.Fatalf("crashtest: %d runs need about %v; the test deadline leaves %v (use -timeout 0)", runs, need, left.Round(time.Second))
		}
	}
	bin := buildKVStore(t)
	failed := 0
	for i := range runs {
		rc := cfg
		rc.Seed = cfg.Seed + uint64(i)
		if !t.Run(fmt.Sprintf("run%02d", i+1), func(t *testing.T) { runCrash(t, bin, rc) }) {
			failed++
		}
	}
	t.Logf("crashtest: %d of %d soak runs failed", failed, runs)
}

// soak reports whether the long runs are asked for.
func soak() bool { return os.Getenv("DISTKIT_SOAK") == "1" }

// keptDir returns a directory for a run that is removed when the test
// passes and kept (its path printed) when it fails or
// DISTKIT_CRASHTEST_KEEP=1. Call it before newCluster: cleanups run last
// first, so the processes are dead before the directory goes.
func keptDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "kvstore-crashtest-")
	if err != nil {
		t.Fatal(err)
	}
	keep := os.Getenv("DISTKIT_CRASHTEST_KEEP") == "1"
	t.Cleanup(func() {
		if t.Failed() || keep {
			t.Logf("crashtest: kept the run directory %s (node logs, faults.log; history.txt and linearizability.html if the check failed)", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}

// runCrash runs one cluster through one fault schedule and checks it.
func runCrash(t *testing.T, bin string, cfg runConfig) {
	t.Logf("crashtest: seed %d (DISTKIT_CRASHTEST_SEED=%d replays the schedule), %v of faults, %d clients",
		cfg.Seed, cfg.Seed, cfg.Duration, cfg.Clients)
	dir := keptDir(t)
	c := newCluster(t, bin, dir, 3, time.Now())
	flog, err := os.Create(dir + "/faults.log")
	if err != nil {
		t.Fatal(err)
	}
	defer flog.Close()
	logFault := func(format string, args ...any) {
		msg := fmt.Sprintf("%10v  ", time.Duration(c.now()).Round(time.Millisecond)) + fmt.Sprintf(format, args...)
		fmt.Fprintln(flog, msg)
		t.Log("crashtest: " + msg)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, nd := range c.nodes {
		if err := c.start(nd); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.waitLeader(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}

	h := &history{}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range cfg.Clients {
		cl := &client{id: i, c: c, h: h, t: t, keys: cfg.Keys, rng: rand.New(rand.NewPCG(cfg.Seed, uint64(i+1)))}
		wg.Go(func() { cl.run(ctx, stop) })
	}
	injectFaults(ctx, c, h, rng, cfg.Duration, logFault)
	close(stop)
	wg.Wait()

	// Heal: every node running, none paused; then every node must answer a
	// linearizable read of every key (the reads join the history).
	for _, nd := range c.nodes {
		if nd.exited() {
			t.Errorf("crashtest: %s exited on its own during the run; see %s", nd.id, nd.logPath)
			c.kill(nd)
		}
		up, paused := nd.running()
		switch {
		case !up:
			if err := c.start(nd); err != nil {
				t.Error(err)
			}
		case paused:
			if err := c.signal(nd, syscall.SIGCONT); err != nil {
				t.Error(err)
			}
		}
	}
	logFault("healed: all nodes running")
	final := &client{id: cfg.Clients, c: c, h: h, t: t}
	for _, nd := range c.nodes {
		for _, k := range cfg.Keys {
			if !final.readUntilAnswered(ctx, nd, k, 30*time.Second) {
				t.Errorf("crashtest: no progress: GET /kv/%s through %s found no answer within 30 s of healing", k, nd.id)
			}
		}
	}

	ok, unknown, okWrites, dropped := h.counts()
	t.Logf("crashtest: %d operations answered (%d writes acknowledged), %d writes of unknown outcome; %d requests left out (connection refused, or a read without an answer)",
		ok, okWrites, unknown, dropped)
	if okWrites == 0 {
		t.Errorf("crashtest: no write was acknowledged: the run proves nothing")
	}
	start := time.Now()
	res, err := h.check(dir, cfg.CheckTimeout)
	t.Logf("crashtest: porcupine: %s in %v", res.Result, time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Errorf("crashtest: writing the failed history: %v", err)
	}
	switch res.Result {
	case porcupine.Illegal:
		t.Errorf("crashtest: the history is NOT linearizable (seed %d): see %s and %s\n%s", cfg.Seed, res.Text, res.HTML, res.Summary)
	case porcupine.Unknown:
		t.Errorf("crashtest: porcupine could not decide within %v (seed %d): see %s and %s", cfg.CheckTimeout, cfg.Seed, res.Text, res.HTML)
	}
}

// injectFaults runs the fault schedule for d: every 1–3 s it either
// SIGKILLs a random node and restarts it 0.5–2.5 s later, or SIGSTOPs the
// leader for 1–3 s. At most one node is faulty at a time, so a majority can
// always make progress.
func injectFaults(ctx context.Context, c *cluster, h *history, rng *rand.Rand, d time.Duration, logf func(string, ...any)) {
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo)+1)) }
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		time.Sleep(between(time.Second, 3*time.Second))
		if rng.Float64() < 0.65 {
			nd := c.nodes[rng.IntN(len(c.nodes))]
			down := between(500*time.Millisecond, 2500*time.Millisecond)
			start := c.now()
			c.kill(nd)
			logf("kill -9 %s; restart in %v", nd.id, down)
			time.Sleep(down)
			if err := c.start(nd); err != nil {
				logf("restart %s failed: %v", nd.id, err)
			}
			h.fault(start, c.now(), fmt.Sprintf("kill -9 %s, restarted after %v", nd.id, down))
			continue
		}
		pause := between(time.Second, 3*time.Second)
		ld := c.leader(ctx)
		if ld == nil {
			logf("no leader to pause")
			continue
		}
		start := c.now()
		if err := c.signal(ld, syscall.SIGSTOP); err != nil {
			logf("%v", err)
			continue
		}
		logf("SIGSTOP leader %s for %v", ld.id, pause)
		time.Sleep(pause)
		if err := c.signal(ld, syscall.SIGCONT); err != nil {
			logf("%v", err)
		}
		h.fault(start, c.now(), fmt.Sprintf("SIGSTOP leader %s for %v", ld.id, pause))
	}
}

// client issues random operations on a few keys through random nodes and
// records each in the history.
type client struct {
	id   int
	c    *cluster
	h    *history
	t    testing.TB
	keys []string
	rng  *rand.Rand
	n    int // writes issued, for unique values
}

// requestTimeout bounds one HTTP request: kvstore's own 5 s budget, plus
// slack for a node paused with the request in hand.
const requestTimeout = 8 * time.Second

func (cl *client) run(ctx context.Context, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		nd := cl.c.nodes[cl.rng.IntN(len(cl.c.nodes))]
		in := kvInput{Key: cl.keys[cl.rng.IntN(len(cl.keys))]}
		switch p := cl.rng.Float64(); {
		case p < 0.45:
			cl.n++
			in.Op, in.Value = "put", fmt.Sprintf("c%d.%d", cl.id, cl.n)
		case p < 0.85:
			in.Op = "get"
		default:
			in.Op = "delete"
		}
		if cl.do(ctx, nd, in) == notSent {
			time.Sleep(50 * time.Millisecond) // that node is down
		}
		time.Sleep(time.Duration(cl.rng.IntN(10)) * time.Millisecond)
	}
}

// readUntilAnswered reads key through nd until a read is answered or
// timeout passes.
func (cl *client) readUntilAnswered(ctx context.Context, nd *node, key string, timeout time.Duration) bool {
	end := time.Now().Add(timeout)
	for time.Now().Before(end) {
		if cl.do(ctx, nd, kvInput{Op: "get", Key: key}) == answered {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// Outcomes of client.do, seen from the request's side.
type outcome int

const (
	notSent  outcome = iota // the connection was refused: no effect
	unknown                 // sent, no definite answer
	answered                // a definite answer
)

// do sends one request to nd and records it, unless it certainly had no
// effect (a refused connection, or a read without an answer).
func (cl *client) do(ctx context.Context, nd *node, in kvInput) (o outcome) {
	call := cl.c.now()
	out, meta, o := cl.send(ctx, nd, in)
	ret := cl.c.now()
	if o == notSent || (o == unknown && in.Op == "get") {
		cl.h.drop()
		return o
	}
	out.Unknown = o == unknown
	cl.h.add(cl.id, in, call, out, ret, meta)
	return o
}

func (cl *client) send(ctx context.Context, nd *node, in kvInput) (kvOutput, opMeta, outcome) {
	meta := opMeta{Node: nd.id}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	method := map[string]string{"put": http.MethodPut, "get": http.MethodGet, "delete": http.MethodDelete}[in.Op]
	var body io.Reader
	if in.Op == "put" {
		body = strings.NewReader(in.Value)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+nd.httpAddr+"/kv/"+in.Key, body)
	if err != nil {
		cl.t.Errorf("crashtest: %v", err)
		return kvOutput{}, meta, unknown
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		meta.Status = err.Error()
		if errors.Is(err, syscall.ECONNREFUSED) {
			return kvOutput{}, meta, notSent
		}
		return kvOutput{}, meta, unknown
	}
	defer resp.Body.Close()
	meta.Status = resp.Status
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return kvOutput{}, meta, unknown
	}
	switch {
	case resp.StatusCode >= 500:
		meta.Status += ": " + string(bytes.TrimSpace(b))
		return kvOutput{}, meta, unknown
	case resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound:
		cl.t.Errorf("crashtest: %s %s via %s = %s %s; want 200, 404 or 5xx", method, in.Key, nd.id, resp.Status, b)
		return kvOutput{}, meta, unknown
	}
	var r struct {
		Value string `json:"value"`
		Found bool   `json:"found"`
		Err   string `json:"error"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.Err != "" || (resp.StatusCode == http.StatusNotFound) == r.Found {
		cl.t.Errorf("crashtest: %s %s via %s = %s %q: not a kvstore answer", method, in.Key, nd.id, resp.Status, b)
		return kvOutput{}, meta, unknown
	}
	return kvOutput{Value: r.Value, Found: r.Found}, meta, answered
}
