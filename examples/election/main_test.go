package main

import (
	"bytes"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRun(t *testing.T) {
	for _, seed := range []int64{1, 2, 3} {
		var out bytes.Buffer
		if err := run(&out, seed); err != nil {
			t.Fatalf("seed %d: run() = %v\n%s", seed, err, out.String())
		}
		for _, want := range []string{"bully      ", "ring       ", "raft       ", "COORDINATOR n4@", "RING-ELECTED n4@", "restart n5 (boots at epoch 1 from its disk): n5 leads"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("seed %d: output lacks %q:\n%s", seed, want, out.String())
			}
		}
	}
}

func TestRunIsDeterministic(t *testing.T) {
	var a, b bytes.Buffer
	if err := run(&a, 5); err != nil {
		t.Fatal(err)
	}
	if err := run(&b, 5); err != nil {
		t.Fatal(err)
	}
	if a.String() != b.String() {
		t.Errorf("two runs with seed 5 differ")
	}
}
