package main

import (
	"bytes"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRun checks that each scene reaches its conclusion.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"balances: A@bank1 = 0, B@bank2 = 100",
		"outcome: aborted, [bank1] voted NO",
		"insufficient funds",
		"both banks voted YES and are in doubt, holding 2 locks",
		"✗ lost (node down)",
		"recovers: a COMMIT in its log awaits acknowledgements",
		"outcome: committed by the recovered coordinator; 0 locks held",
		"balances: A@bank1 = 0, B@bank2 = 200",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
