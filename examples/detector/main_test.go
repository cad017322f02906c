package main

import (
	"bytes"
	"strings"
	"testing"

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
		} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("seed %d: output lacks %q:\n%s", seed, want, out.String())
			}
		}
	}
}
