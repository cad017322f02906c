package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/distkit/distkit/examples/internal/cli"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFlags(t *testing.T) {
	tests := []struct {
		args     []string
		wantCode int // -1: accepted
	}{
		{nil, -1},
		{[]string{"-h"}, 0},
		{[]string{"-bogus"}, 2},
		{[]string{"extra"}, 2},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		err := parseFlags(tt.args, &stderr)
		got := -1
		if err != nil {
			got = cli.ExitCode(err)
		}
		if got != tt.wantCode {
			t.Errorf("parseFlags(%q): exit code %d (%v); want %d", tt.args, got, err, tt.wantCode)
		}
	}
}

func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out strings.Builder
	res, err := run(ctx, &out, defaultSettings())
	if err != nil {
		t.Fatalf("run = %v\n%s", err, out.String())
	}
	if res.final != 0 || res.sold != defaultSettings().items || res.stale != 1 {
		t.Errorf("result = %+v; want final 0, %d sold, 1 stale write rejected\n%s", res, defaultSettings().items, out.String())
	}
	for _, want := range []string{"killed", "REJECTED", "expected 0"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
