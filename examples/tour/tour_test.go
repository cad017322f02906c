package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestTourRuns runs the whole tour quietly, as `go run ./examples/tour -quiet`
// would, and checks that every registered chapter printed its heading.
func TestTourRuns(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out, 1, true, ""); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, c := range chapters {
		if !strings.Contains(out.String(), c.title) {
			t.Errorf("output lacks chapter %q:\n%s", c.title, out.String())
		}
	}
	if !strings.Contains(out.String(), "tour finished") {
		t.Errorf("output lacks the closing line:\n%s", out.String())
	}
}

// TestUnknownChapter checks that -only with a name that does not exist is an
// error rather than a silent empty tour.
func TestUnknownChapter(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out, 1, true, "no-such-chapter"); err == nil {
		t.Fatalf("run with -only no-such-chapter succeeded; want an error")
	}
}
