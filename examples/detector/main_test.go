package main

import (
	"time"

	"bytes"
	"strings"
	"testing"

	"github.com/distkit/distkit/detector"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRun runs the demo for a few seeds and checks that every act reached
// its conclusion.
func TestRun(t *testing.T) {
	for seed := int64(1); seed <= 3; seed++ {
		var out bytes.Buffer
		if err := run(&out, seed); err != nil {
			t.Fatalf("seed %d: run: %v\n%s", seed, err, out.String())
		}
		for _, want := range []string{
			"every node sees every other alive: true",
			"failed\n",
			"every live node declared n5 failed",
			"every node reports n5 recovered",
			"n1   ·   a   a   f   f",
			"everyone sees everyone alive again",
			"fixed: 1 s beats, 3 s timeout                    1               0         3.00 s        5.00 s",
			"fixed: 2 s beats, 6 s timeout                    0               0         6.00 s       10.00 s",
		} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("seed %d: output lacks %q:\n%s", seed, want, out.String())
			}
		}
	}
}

// TestCompareDetectors checks the textbook comparison against what the
// setups must do on every seed: the fixed timeouts declare the crash failed
// exactly at their rule's bound (3 s timeout + 2 more missed 1 s probes; 6 s
// + 2 × 2 s), the 6 s timeout rides out the 4 s pause that the 3 s timeout
// suspects, nothing declares the paused peer failed, and φ never says
// Failed on its own (φ suspects within 4 s of the crash).
func TestCompareDetectors(t *testing.T) {
	oneSec := detector.TimeoutConfig{Timeout: 3 * time.Second, Confirmations: 3, RecoveryConfirmations: 2}
	twoSec := detector.TimeoutConfig{Timeout: 6 * time.Second, Confirmations: 3, RecoveryConfirmations: 3}
	for seed := uint64(1); seed <= 20; seed++ {
		one, err := play(seed, setup{interval: time.Second, check: time.Second, fixed: &oneSec}, 8)
		if err != nil {
			t.Fatal(err)
		}
		two, err := play(seed, setup{interval: 2 * time.Second, check: 2 * time.Second, fixed: &twoSec}, 8)
		if err != nil {
			t.Fatal(err)
		}
		phi, err := play(seed, setup{interval: time.Second, check: time.Second / 4}, 8)
		if err != nil {
			t.Fatal(err)
		}
		if one.falseSuspicions < 1 || two.falseSuspicions != 0 {
			t.Errorf("seed %d: false suspicions 3 s = %d, 6 s = %d; want ≥ 1 (the pause) and 0", seed, one.falseSuspicions, two.falseSuspicions)
		}
		if one.falseFailures+two.falseFailures+phi.falseFailures != 0 {
			t.Errorf("seed %d: a detector declared the paused peer failed: %+v %+v %+v", seed, one, two, phi)
		}
		if one.failedAfter > 5*time.Second || two.failedAfter > 10*time.Second || one.failedAfter < 0 || two.failedAfter < 0 {
			t.Errorf("seed %d: failed after %v and %v; want within 5 s and 10 s", seed, one.failedAfter, two.failedAfter)
		}
		if phi.failedAfter != -1 || phi.suspectAfter < 0 || phi.suspectAfter > 4*time.Second { // the last beat came up to 1.2 s before the crash, or was lost
			t.Errorf("seed %d: φ suspected after %v, failed after %v; want within 4 s, never", seed, phi.suspectAfter, phi.failedAfter)
		}
	}
}
