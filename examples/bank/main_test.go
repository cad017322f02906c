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
	if err := run(&out, 1); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"balances: A@bank1 = 100, B@bank2 = 0, C@bank3 = 0",
		"balances: A@bank1 = 0, B@bank2 = 100",
		"voted NO: ",
		"insufficient funds",
		"2 banks in doubt, holding 2 locks",
		"outcome: committed by the restarted coordinator; 0 banks in doubt",
		"✗ lost (partition)",
		"bank3 is in doubt (1 in doubt)",
		"balances: A@bank1 = 0, B@bank2 = 170, C@bank3 = 30",
		"nobody waited for the crashed replica",
		"balances: A@bank1 = 0, B@bank2 = 100\n",
		"cancel car    -> nothing to undo",
		"cancel flight -> cancelled",
		"outcome: compensated",
		"late, retried 'book car' request arrives: refused",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	// Every line of a scene names its transaction or saga.
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "    ") || (strings.HasPrefix(line, "  ") && !strings.Contains(line, "[txn ") && !strings.Contains(line, "[saga ") && !strings.Contains(line, "balances:")) {
			t.Errorf("line without a transaction ID: %q", line)
		}
	}
}

// TestSameSeedSameStory: one seed, one story, line for line.
func TestSameSeedSameStory(t *testing.T) {
	var a, b bytes.Buffer
	if err := run(&a, 7); err != nil {
		t.Fatal(err)
	}
	if err := run(&b, 7); err != nil {
		t.Fatal(err)
	}
	if a.String() != b.String() {
		t.Fatalf("two runs with seed 7 differ:\n%s\n----\n%s", a.String(), b.String())
	}
}

func TestFlags(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string // in stderr
	}{
		{[]string{"-h"}, 0, "usage: bank"},
		{[]string{"-bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"extra"}, 2, "unexpected argument"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		if code := cli(tt.args, &stdout, &stderr); code != tt.code || !strings.Contains(stderr.String(), tt.want) || stdout.Len() != 0 {
			t.Errorf("cli(%q) = %d, stderr %q, stdout %d bytes; want %d and %q, no story", tt.args, code, stderr.String(), stdout.Len(), tt.code, tt.want)
		}
	}
}
