package main

import (
	"context"
	"os"
	"strings"
	"testing"
)

// TestBank runs the three scenes against the databases of
// DISTKIT_POSTGRES_URL_A and _B.
func TestBank(t *testing.T) {
	a, b := os.Getenv("DISTKIT_POSTGRES_URL_A"), os.Getenv("DISTKIT_POSTGRES_URL_B")
	if a == "" || b == "" {
		msg := "no PostgreSQL: set DISTKIT_POSTGRES_URL_A and _B, or run `bash .ci/contrib/postgres.sh`"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	var out strings.Builder
	if err := run(context.Background(), &out, a, b); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"outcome: committed (COMMIT PREPARED in both)\n  balances: A@bank_a = 0, B@bank_b = 100",
		"outcome: aborted, [bank_a] voted NO",
		"prepared transactions in pg_prepared_xacts: bank_a 1, bank_b 1",
		"prepared transactions left: bank_a 0, bank_b 0\n  balances: A@bank_a = 0, B@bank_b = 200",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
