package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/distkit/distkit/examples/internal/clitest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFlags(t *testing.T) { clitest.Check(t, parseFlags) }

// TestRun runs the example end to end: every fault scenario must end with
// each card charged exactly once.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"response lost (injected)",
		"client timeout (injected)",
		"409 Conflict",
		"request duplicated (injected)",
		"replayed from the idempotency store",
		"422",
		`Idempotency-Key = DeriveKey("alice", "charge", {"card":"4242-4242","amount":1000,"order":"order-17"})`,
		// The textbook's rule: a failure is not cached, so the retry runs.
		"attempt 1: 503 card network unavailable -> retry\n  attempt 2: 201 {\"id\":\"ch_4\",\"card\":\"4242-4242\",\"amount\":400}, processed",
		// CacheFailures: the 503 is replayed to the retry.
		"attempt 2: 503 card network unavailable, replayed from the idempotency store -> give up",
		"every card charged exactly once per payment",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
