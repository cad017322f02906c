package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/distkit/distkit/examples/internal/clitest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFlags(t *testing.T) { clitest.Check(t, parseFlags) }

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
