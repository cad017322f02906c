//go:build unix

package crashtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// members is the part of an admin API answer the test reads (the
// README's walkthrough shows the same fields).
type members struct {
	ID        string   `json:"id"`
	Leader    string   `json:"leader"`
	Voters    []string `json:"voters"`
	Learners  []string `json:"learners"`
	Committed bool     `json:"committed"`
}

// admin sends an admin request to nd, as the README's curl lines do, and
// returns the status and the decoded answer (zero unless 200).
func (c *cluster) admin(ctx context.Context, nd *node, method, path string) (int, members, string) {
	c.t.Helper()
	code, m, body, err := c.tryAdmin(ctx, nd, method, path)
	if err != nil {
		c.t.Fatalf("crashtest: %s %s on %s: %v", method, path, nd.id, err)
	}
	return code, m, body
}

// tryAdmin is admin that returns a failure to connect.
func (c *cluster) tryAdmin(ctx context.Context, nd *node, method, path string) (int, members, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+nd.httpAddr+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, members{}, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m members
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &m); err != nil {
			c.t.Fatalf("crashtest: %s %s on %s = %s %q: not a members answer", method, path, nd.id, resp.Status, b)
		}
	}
	return resp.StatusCode, m, strings.TrimSpace(string(b)), nil
}

// mustAdmin requires 200 and the voters and learners given.
func (c *cluster) mustAdmin(ctx context.Context, nd *node, method, path string, voters, learners []string) members {
	c.t.Helper()
	code, m, body := c.admin(ctx, nd, method, path)
	if code != http.StatusOK || !slices.Equal(m.Voters, voters) || !slices.Equal(m.Learners, learners) || !m.Committed {
		c.t.Fatalf("crashtest: %s %s on %s = %d %s; want 200 with voters %v, learners %v, committed", method, path, nd.id, code, body, voters, learners)
	}
	return m
}

// waitMembers waits until GET /members on nd (its own view, which
// follows the leader's by a heartbeat) shows voters, committed.
func (c *cluster) waitMembers(ctx context.Context, nd *node, voters []string) members {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		code, m, body, err := c.tryAdmin(ctx, nd, http.MethodGet, "/members")
		if err != nil {
			body = err.Error() // not listening yet
		}
		if code == http.StatusOK && slices.Equal(m.Voters, voters) && m.Committed && m.ID == nd.id {
			return m
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("crashtest: GET /members on %s = %d %s; want voters %v, committed", nd.id, code, body, voters)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// maxTerm is the highest term a running node reports.
func (c *cluster) maxTerm(ctx context.Context) uint64 {
	var term uint64
	for _, nd := range c.nodes {
		if up, _ := nd.running(); up {
			if st, err := c.status(ctx, nd); err == nil {
				term = max(term, st.Term)
			}
		}
	}
	return term
}

// waitCaughtUp waits until nd knows a leader and has applied at least
// index.
func (c *cluster) waitCaughtUp(ctx context.Context, nd *node, index uint64) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		st, err := c.status(ctx, nd)
		if err == nil && st.Leader != "" && st.Applied >= index {
			return
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("crashtest: %s did not catch up to index %d: %+v, %v", nd.id, index, st, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestMembershipWalkthrough runs the README's kvstore walkthrough with
// real processes, under a light write load through every node: grow three
// founders to five (each new node added as a learner, started with -join,
// then promoted), shrink back to three, and restart every node one after
// the other with SIGTERM. It checks that
//
//   - every admin answer is the one the README shows (200, the voters);
//   - no acknowledged write is lost: the whole history, the final reads
//     included, is linearizable (porcupine);
//   - each restart grows the term by at most one, and a leader's SIGTERM
//     hands leadership over before the process exits (a node already
//     leads the next term when it is gone): no election timeout.
//
// It takes about 10 s. DISTKIT_SOAK=1 repeats the grow-shrink cycle and the
// rolling restart five times.
func TestMembershipWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("crashtest: builds and runs the kvstore binary; skipped with -short")
	}
	rounds := 1
	if soak() {
		rounds = 5
	}
	bin := buildKVStore(t)
	dir := keptDir(t)
	c := newCluster(t, bin, dir, 5, time.Now())
	for _, nd := range c.nodes {
		nd.args = []string{"-cluster", "n1,n2,n3"}
	}
	n := func(id string) *node { return c.nodes[id[1]-'1'] }
	n("n4").args = append(n("n4").args, "-join")
	n("n5").args = append(n("n5").args, "-join")
	founders := c.nodes[:3]

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, nd := range founders {
		if err := c.start(nd); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.waitLeader(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}

	// A light write load through every node (the down ones refuse the
	// connection, which the history leaves out).
	h := &history{}
	seed := uint64(time.Now().UnixNano())
	t.Logf("crashtest: client seed %d", seed)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	keys := []string{"x", "y"}
	for i := range 2 {
		cl := &client{id: i, c: c, h: h, t: t, keys: keys, rng: rand.New(rand.NewPCG(seed, uint64(i+1)))}
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				cl.n++
				nd := c.nodes[cl.rng.IntN(len(c.nodes))]
				in := kvInput{Op: "put", Key: keys[cl.rng.IntN(len(keys))], Value: fmt.Sprintf("c%d.%d", cl.id, cl.n)}
				if cl.rng.IntN(3) == 0 {
					in = kvInput{Op: "get", Key: in.Key}
				}
				cl.do(ctx, nd, in)
			}
		})
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	three := []string{"n1", "n2", "n3"}
	for round := range rounds {
		// Grow 3 -> 5: add as a learner (through any member: a follower
		// forwards to the leader), start with -join, promote.
		voters := slices.Clone(three)
		for _, id := range []string{"n4", "n5"} {
			c.mustAdmin(ctx, n("n1"), http.MethodPost, "/members?id="+id+"&learner=1", voters, []string{id})
			if err := c.start(n(id)); err != nil {
				t.Fatal(err)
			}
			voters = append(voters, id)
			c.mustAdmin(ctx, n("n2"), http.MethodPost, "/members/"+id+"/promote", voters, []string{})
		}
		got := c.waitMembers(ctx, n("n5"), voters)
		t.Logf("crashtest: round %d: grown to %v, leader %s", round, got.Voters, got.Leader)

		// Shrink 5 -> 3: remove, then stop with SIGTERM.
		for i, id := range []string{"n5", "n4"} {
			c.mustAdmin(ctx, n("n3"), http.MethodDelete, "/members/"+id, voters[:len(voters)-1-i], []string{})
			if err := c.terminate(n(id), 20*time.Second); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.waitLeader(ctx, 30*time.Second); err != nil {
			t.Fatal(err)
		}

		// Rolling restart: SIGTERM, start again, wait until caught up.
		for _, nd := range founders {
			rollingRestart(ctx, t, c, nd)
		}
		// The removed nodes' data directories go: they join afresh next round.
		for _, id := range []string{"n4", "n5"} {
			if err := os.RemoveAll(n(id).dataDir); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()

	final := &client{id: 2, c: c, h: h, t: t}
	for _, nd := range founders {
		for _, k := range keys {
			if !final.readUntilAnswered(ctx, nd, k, 30*time.Second) {
				t.Errorf("crashtest: GET /kv/%s through %s found no answer", k, nd.id)
			}
		}
	}
	ok, unknown, okWrites, dropped := h.counts()
	t.Logf("crashtest: %d operations answered (%d writes acknowledged), %d writes of unknown outcome, %d left out", ok, okWrites, unknown, dropped)
	if okWrites == 0 {
		t.Fatal("crashtest: no write was acknowledged: the run proves nothing")
	}
	res, err := h.check(dir, 2*time.Minute)
	if err != nil {
		t.Errorf("crashtest: writing the history: %v", err)
	}
	if res.Result != porcupine.Ok {
		t.Errorf("crashtest: the history is %s: see %s and %s\n%s", res.Result, res.Text, res.HTML, res.Summary)
	}
}

// rollingRestart stops nd with SIGTERM and starts it again, and checks
// that no election timeout happened: the term grew by at most one, and if
// nd led, another node led the next term by the time nd had exited.
func rollingRestart(ctx context.Context, t *testing.T, c *cluster, nd *node) {
	t.Helper()
	before := c.maxTerm(ctx)
	st, err := c.status(ctx, nd)
	if err != nil {
		t.Fatalf("crashtest: status of %s: %v", nd.id, err)
	}
	led := st.Role == "leader"
	if err := c.terminate(nd, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if led {
		// Node.Shutdown returned after the hand-over: the new leader was
		// elected before nd exited, whatever the time the checks take.
		l := c.leader(ctx)
		if l == nil {
			t.Fatalf("crashtest: leader %s exited on SIGTERM and no node leads: no hand-over", nd.id)
		}
		if lst, err := c.status(ctx, l); err != nil || lst.Term != before+1 {
			t.Fatalf("crashtest: after leader %s's SIGTERM, %s leads in term %d (%v); want term %d (a hand-over)", nd.id, l.id, lst.Term, err, before+1)
		}
	}
	if err := c.start(nd); err != nil {
		t.Fatal(err)
	}
	l := c.leader(ctx)
	var commit uint64
	if l != nil {
		if lst, err := c.status(ctx, l); err == nil {
			commit = lst.Commit
		}
	}
	c.waitCaughtUp(ctx, nd, commit)
	if after := c.maxTerm(ctx); after > before+1 {
		t.Fatalf("crashtest: restarting %s (leader: %v) moved the term from %d to %d; want at most one more (no election timeout)", nd.id, led, before, after)
	}
	t.Logf("crashtest: %s restarted (was leader: %v), term %d -> %d", nd.id, led, before, c.maxTerm(ctx))
}
