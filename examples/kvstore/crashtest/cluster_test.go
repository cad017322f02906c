//go:build unix

package crashtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// kvstorePkg is the package the harness builds and runs.
const kvstorePkg = "github.com/distkit/distkit/examples/kvstore"

// buildKVStore builds the kvstore binary into a temporary directory and
// returns its path. It is built, not run with `go run`: SIGKILL of `go run`
// kills the go command and leaves the real server running.
func buildKVStore(t testing.TB) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("crashtest: no go command to build kvstore with: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "kvstore")
	cmd := exec.Command(goBin, "build", "-o", bin, kvstorePkg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("crashtest: go build %s: %v\n%s", kvstorePkg, err, out)
	}
	return bin
}

// freePorts returns n distinct free loopback addresses. They are free when
// checked; a process started right after takes them.
func freePorts(t testing.TB, n int) []string {
	t.Helper()
	var addrs []string
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("crashtest: no free port: %v", err)
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	return addrs
}

// node is one kvstore process slot: its addresses, data directory and log
// survive restarts; the process does not.
type node struct {
	id       string
	raftAddr string
	httpAddr string
	dataDir  string
	logPath  string
	args     []string // extra flags, on every start (-cluster, -join)

	mu      sync.Mutex // guards cmd, done, paused, started, exits
	cmd     *exec.Cmd  // nil while the node is down
	done    chan struct{}
	paused  bool
	started int // how many times the process was started
	exits   int // how many times it exited before the harness killed it
}

// cluster is a set of kvstore processes started from one binary.
type cluster struct {
	t     testing.TB
	bin   string
	dir   string
	peers string // the -peers flag
	nodes []*node
	t0    time.Time // the origin of every timestamp of the run
	quiet bool      // start nodes without -v (warnings and errors only)
}

// newCluster lays out n nodes under dir and registers a cleanup that kills
// every process the cluster ever starts, whatever the test's outcome.
func newCluster(t testing.TB, bin, dir string, n int, t0 time.Time) *cluster {
	addrs := freePorts(t, 2*n)
	c := &cluster{t: t, bin: bin, dir: dir, t0: t0}
	var peers []string
	for i := range n {
		id := fmt.Sprintf("n%d", i+1)
		nd := &node{
			id:       id,
			raftAddr: addrs[2*i],
			httpAddr: addrs[2*i+1],
			dataDir:  filepath.Join(dir, id),
			logPath:  filepath.Join(dir, id+".log"),
		}
		c.nodes = append(c.nodes, nd)
		peers = append(peers, id+"="+nd.raftAddr)
	}
	c.peers = strings.Join(peers, ",")
	t.Cleanup(c.killAll)
	return c
}

// now is the time since the run began, in nanoseconds (porcupine's clock).
func (c *cluster) now() int64 { return time.Since(c.t0).Nanoseconds() }

// start starts nd's process. Output goes to nd's log, after a line marking
// the start.
func (c *cluster) start(nd *node) error {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd != nil {
		return fmt.Errorf("crashtest: %s is already running", nd.id)
	}
	logf, err := os.OpenFile(nd.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own descriptor
	nd.started++
	fmt.Fprintf(logf, "=== crashtest: start #%d at %v\n", nd.started, time.Duration(c.now()))
	args := []string{"-id", nd.id, "-data", nd.dataDir, "-http", nd.httpAddr, "-peers", c.peers}
	args = append(args, nd.args...)
	if !c.quiet {
		args = append(args, "-v")
	}
	cmd := exec.Command(c.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("crashtest: start %s: %w", nd.id, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	nd.cmd, nd.done, nd.paused = cmd, done, false
	return nil
}

// kill SIGKILLs nd's process group and waits for it to exit.
func (c *cluster) kill(nd *node) {
	nd.mu.Lock()
	cmd, done := nd.cmd, nd.done
	nd.cmd, nd.done, nd.paused = nil, nil, false
	nd.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		nd.mu.Lock()
		nd.exits++
		nd.mu.Unlock()
	default:
	}
	// The process group: anything the node started dies with it.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

// signal sends sig (SIGSTOP or SIGCONT) to nd's process group.
func (c *cluster) signal(nd *node, sig syscall.Signal) error {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd == nil {
		return fmt.Errorf("crashtest: %s is down", nd.id)
	}
	if err := syscall.Kill(-nd.cmd.Process.Pid, sig); err != nil {
		return fmt.Errorf("crashtest: %v to %s: %w", sig, nd.id, err)
	}
	nd.paused = sig == syscall.SIGSTOP
	return nil
}

func (nd *node) running() (up, paused bool) {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.cmd != nil, nd.paused
}

// exited reports whether nd's process exited on its own (it was started
// and not killed by the harness), now or earlier in the run.
func (nd *node) exited() bool {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.exits > 0 {
		return true
	}
	if nd.cmd == nil {
		return false
	}
	select {
	case <-nd.done:
		return true
	default:
		return false
	}
}

// terminate sends SIGTERM to nd (a clean stop) and waits up to timeout for
// it to exit with status 0.
func (c *cluster) terminate(nd *node, timeout time.Duration) error {
	nd.mu.Lock()
	cmd, done := nd.cmd, nd.done
	nd.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("crashtest: %s is down", nd.id)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-done:
	case <-time.After(timeout):
		return fmt.Errorf("crashtest: %s did not exit within %v of SIGTERM", nd.id, timeout)
	}
	nd.mu.Lock()
	nd.cmd, nd.done = nil, nil
	nd.mu.Unlock()
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("crashtest: %s exited with status %d after SIGTERM; see %s", nd.id, code, nd.logPath)
	}
	return nil
}

func (c *cluster) killAll() {
	for _, nd := range c.nodes {
		c.kill(nd)
	}
}

// status is the part of GET /status the harness uses.
type status struct {
	Role     string `json:"role"`
	Term     uint64 `json:"term"`
	Leader   string `json:"leader"`
	Commit   uint64 `json:"commit"`
	Applied  uint64 `json:"applied"`
	Sessions int    `json:"sessions"`
}

// status asks nd for its Raft status.
func (c *cluster) status(ctx context.Context, nd *node) (status, error) {
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+nd.httpAddr+"/status", nil)
	if err != nil {
		return status{}, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return status{}, err
	}
	defer resp.Body.Close()
	var st status
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("crashtest: %s: GET /status = %s", nd.id, resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// leader returns the running, unpaused node that says it leads in the
// highest term, or nil.
func (c *cluster) leader(ctx context.Context) *node {
	var best *node
	var bestTerm uint64
	for _, nd := range c.nodes {
		if up, paused := nd.running(); !up || paused {
			continue
		}
		st, err := c.status(ctx, nd)
		if err == nil && st.Role == "leader" && (best == nil || st.Term > bestTerm) {
			best, bestTerm = nd, st.Term
		}
	}
	return best
}

// waitLeader waits until some node leads.
func (c *cluster) waitLeader(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if c.leader(ctx) != nil {
			return nil
		}
		for _, nd := range c.nodes {
			if nd.exited() {
				return fmt.Errorf("crashtest: %s exited on its own; see %s", nd.id, nd.logPath)
			}
		}
		select {
		case <-ctx.Done():
			return errors.New("crashtest: no leader elected within " + timeout.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// httpClient opens a connection per request: a refused connection then
// proves that the request was never sent, and no idle connection to a
// killed process is reused.
var httpClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
