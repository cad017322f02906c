package txn_test

import (
	"os"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/txn"
)

// TestCooperativeTermination crashes the coordinator for good at chosen
// steps and checks how the in-doubt participants end up, with no help from
// it: they ask each other (cooperative termination). The coordinator's
// effects are its lazy BEGIN record, 3 PREPAREs, the COMMIT record, then
// 3 COMMITs.
func TestCooperativeTermination(t *testing.T) {
	tests := []struct {
		name        string
		after       int         // coordinator effects before it dies
		wantOutcome txn.Outcome // Unknown: blocked, all in doubt
	}{
		{name: "PREPARE reached p1,p2 only: p3 aborts, tells them", after: 3, wantOutcome: txn.Aborted},
		{name: "all voted YES, no decision logged: blocked", after: 4, wantOutcome: txn.Unknown},
		{name: "decision logged, no COMMIT sent: blocked", after: 5, wantOutcome: txn.Unknown},
		{name: "COMMIT reached p1 only: p1 tells the others", after: 6, wantOutcome: txn.Committed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newSimCluster(t, 1, sim.Faults{MinDelay: time.Millisecond, MaxDelay: time.Millisecond})
			w.plan.node, w.plan.after, w.plan.down, w.plan.delay = coordID, tt.after, time.Hour, 10*time.Millisecond
			id := uuid.New()
			work := addToX(t, 1, 1, 1)
			// Let the nodes run a while first: a peer vouches for having
			// no record of a transaction only as far back as its uptime.
			w.s.Run(time.Second)
			w.begin(coordID, id, work)
			w.s.Run(10 * time.Second)
			if os.Getenv("TXN_TRACE") == "1" {
				for _, l := range w.s.Trace() {
					t.Log(l)
				}
			}
			checkWorld(t, w)
			for _, p := range partIDs {
				n := w.s.Node(p).(*partNode)
				if got := n.core.Outcome(id); got != tt.wantOutcome {
					t.Errorf("%s: outcome = %v; want %v", p, got, tt.wantOutcome)
				}
			}
			wantInDoubt := 0
			if tt.wantOutcome == txn.Unknown {
				wantInDoubt = len(partIDs)
			}
			if got := w.inDoubt(partIDs); got != wantInDoubt {
				t.Errorf("in doubt = %d; want %d", got, wantInDoubt)
			}
			// When the coordinator returns, everyone learns the outcome.
			w.s.Restart(coordID)
			w.s.Run(2 * time.Second)
			if got := w.inDoubt(partIDs); got != 0 {
				t.Errorf("after the coordinator's return: in doubt = %d; want 0", got)
			}
		})
	}
}
