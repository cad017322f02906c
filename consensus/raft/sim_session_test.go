package raft

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/distkit/distkit/consensus/session"
	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
)

// recordingTB is a testing.TB whose failures are recorded instead of
// failing the test: the run of a workload that is expected to break.
type recordingTB struct {
	testing.TB
	failures []string
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

func (r *recordingTB) Fatalf(format string, args ...any) {
	r.TB.Fatalf(format, args...) // setup failures are real
}

// runLeaderChurn runs the clients of the chaos tests against a three-node
// cluster whose leader is crashed or cut off every few hundred
// milliseconds, so that requests time out after being committed and are
// retried on the next leader; then the faults stop and the run settles.
// With plain set, the clients use no sessions and retry a timed-out
// request as a new command. It returns the cluster (its history) and the
// failures the checker recorded.
func runLeaderChurn(t testing.TB, seed int64, plain bool) (*simCluster, []string) {
	rec := &recordingTB{TB: t}
	c := newSimCluster(rec, seed, 3, 3, chaosFaults, nil, false)
	for _, k := range c.clients {
		k.plain = plain
	}
	s := c.s
	rng := rand.New(rand.NewPCG(uint64(seed), 0xc1e7))
	var down []transport.NodeID
	for s.Elapsed() < chaosDuration && !c.failed {
		s.Run(time.Duration(100+rng.IntN(300)) * time.Millisecond)
		switch rng.IntN(4) {
		case 0:
			if l := c.leader(); l != nil {
				s.Crash(l.id)
				down = append(down, l.id)
			}
		case 1:
			if l := c.leader(); l != nil {
				s.Isolate(l.id)
			}
		default:
			s.Heal()
			for _, id := range down {
				s.Restart(id)
			}
			down = nil
		}
	}
	s.Heal()
	for _, id := range down {
		s.Restart(id)
	}
	s.SetFaults(sim.Faults{MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond})
	s.Run(livenessBound)
	for _, k := range c.clients {
		k.stopped = true
	}
	s.Run(time.Second)
	if err := s.Err(); err != nil {
		rec.Errorf("sim: %v", err)
	}
	return c, rec.failures
}

// linearizable checks the cluster's client history with porcupine, as
// checkLinearizable does, and returns the verdict instead of failing.
func (c *simCluster) linearizable() porcupine.CheckResult {
	var ops []porcupine.Operation
	for _, op := range c.history {
		if op.Return == math.MaxInt64 && op.Input.(kvInput).Op == 'g' {
			continue
		}
		ops = append(ops, op)
	}
	res, _ := porcupine.CheckOperationsVerbose(kvModel, ops, 30*time.Second)
	return res
}

// withoutSessionsSeed is a seed on which clients without sessions, which
// retry a timed-out put as a new command, produce a non-linearizable
// history (found by TestSimFindNonLinearizableSeed).
const withoutSessionsSeed = 2

// committedTwice counts, among the entries committed during the run, the
// puts committed more than once (plain commands, by value: each put has
// its own value) and the session commands whose (session, seq) stamp was
// committed more than once (retries that reached the log again).
func (c *simCluster) committedTwice() (plainPuts, stamped int) {
	puts := map[string]int{}
	stamps := map[[2]uint64]int{}
	for _, e := range c.committed {
		if e.Type != EntryNormal || len(e.Data) == 0 {
			continue
		}
		if !session.IsEnvelope(e.Data) {
			if cmd, err := decodeKVCommand(e.Data); err == nil && cmd.Op == 'p' {
				puts[cmd.Value]++
			}
			continue
		}
		if env, err := session.Parse(e.Data); err == nil && env.Kind == session.KindCommand {
			stamps[[2]uint64{uint64(env.Session), env.Seq}]++
		}
	}
	for _, n := range puts {
		if n > 1 {
			plainPuts++
		}
	}
	for _, n := range stamps {
		if n > 1 {
			stamped++
		}
	}
	return plainPuts, stamped
}

// TestSimWithoutSessionsIsNotLinearizable shows the failure sessions
// prevent: a put whose first copy was committed but whose answer was lost
// (the leader crashed or was cut off) is proposed again as a new command
// and lands after a later put, so the key goes back to the older value.
// Porcupine must reject the history; the same seed with sessions passes.
func TestSimWithoutSessionsIsNotLinearizable(t *testing.T) {
	c, failures := runLeaderChurn(t, withoutSessionsSeed, true)
	if len(failures) > 0 {
		t.Fatalf("seed %d without sessions: the run itself failed: %v", withoutSessionsSeed, failures)
	}
	if twice, _ := c.committedTwice(); twice == 0 {
		t.Fatalf("seed %d without sessions: no put was committed twice; the workload does not retry as it should", withoutSessionsSeed)
	}
	if res := c.linearizable(); res != porcupine.Illegal {
		t.Fatalf("seed %d without sessions: porcupine says %v on %d operations; want Illegal (not linearizable)", withoutSessionsSeed, res, len(c.history))
	}
	c, failures = runLeaderChurn(t, withoutSessionsSeed, false)
	if res := c.linearizable(); len(failures) > 0 || res != porcupine.Ok {
		t.Fatalf("seed %d with sessions: porcupine says %v, failures %v; want Ok", withoutSessionsSeed, res, failures)
	}
}

// TestSimWithSessionsIsLinearizable runs the leader churn with sessions:
// clients time out and retry with the same stamp while leaders change,
// retried commands reach the log more than once, and every history is
// linearizable (each stamp took effect once).
func TestSimWithSessionsIsLinearizable(t *testing.T) {
	retried := 0
	sim.Seeds(t, seedsFor(60), func(t *testing.T, seed int64) {
		c, failures := runLeaderChurn(t, seed, false)
		if len(failures) > 0 {
			t.Fatalf("seed %d: %v", seed, failures)
		}
		if res := c.linearizable(); res != porcupine.Ok {
			t.Fatalf("seed %d with sessions: porcupine says %v on %d operations; want Ok", seed, res, len(c.history))
		}
		_, stamped := c.committedTwice()
		retried += stamped
	})
	t.Logf("%d session commands were committed more than once (retries answered from the session cache)", retried)
	if retried == 0 && !t.Failed() {
		t.Fatalf("no session command was committed twice: the runs do not exercise retries through sessions")
	}
}

// TestSimFindNonLinearizableSeed searches seeds for withoutSessionsSeed.
// It runs only with DISTKIT_FIND_SEEDS=N (the number of seeds to try).
func TestSimFindNonLinearizableSeed(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("DISTKIT_FIND_SEEDS"))
	if n == 0 {
		t.Skip("set DISTKIT_FIND_SEEDS=N to search N seeds")
	}
	for seed := int64(1); seed <= int64(n); seed++ {
		c, failures := runLeaderChurn(t, seed, true)
		res := c.linearizable()
		t.Logf("seed %d: %v (%d operations, run failures %d)", seed, res, len(c.history), len(failures))
	}
}

// TestSimSessionsExpire runs the leader churn with a session TTL shorter
// than the clients' retries (50 ms of leader-stamped virtual time): sessions
// expire in the middle of requests. A request refused for an expired
// session is sent again in a new session when no earlier attempt can have
// been applied, and is otherwise left with an unknown outcome; either way
// the history stays linearizable.
func TestSimSessionsExpire(t *testing.T) {
	saved := simSessions
	simSessions.TTL = 50 * time.Millisecond
	defer func() { simSessions = saved }()
	registrations := 0
	sim.Seeds(t, seedsFor(20), func(t *testing.T, seed int64) {
		c, failures := runLeaderChurn(t, seed, false)
		if len(failures) > 0 {
			t.Fatalf("seed %d: %v", seed, failures)
		}
		if res := c.linearizable(); res != porcupine.Ok {
			t.Fatalf("seed %d with expiring sessions: porcupine says %v on %d operations; want Ok", seed, res, len(c.history))
		}
		for _, e := range c.committed {
			if env, err := session.Parse(e.Data); err == nil && env.Kind == session.KindRegister {
				registrations++
			}
		}
	})
	t.Logf("%d sessions registered by 3 clients per seed", registrations)
	if registrations <= 3*seedsFor(20) && !t.Failed() {
		t.Fatalf("%d registrations over %d seeds of 3 clients: no session expired and was reopened", registrations, seedsFor(20))
	}
}
