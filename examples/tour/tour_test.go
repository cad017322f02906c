package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"testing/synctest"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestTourRuns runs the whole tour quietly, as `go run ./examples/tour -quiet`
// would, and checks that every registered chapter printed its heading. It
// runs in virtual time (synctest): the real-time chapters (leases of
// 200 ms, election timeouts) then behave the same on a loaded machine as
// on an idle one, where `go run` shows them.
func TestTourRuns(t *testing.T) {
	synctest.Test(t, testTourRuns)
}

func testTourRuns(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out, 1, true, ""); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, c := range chapters {
		if !strings.Contains(out.String(), c.title) {
			t.Errorf("output lacks chapter %q:\n%s", c.title, out.String())
		}
	}
	if !strings.Contains(out.String(), "tour finished\n") {
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

// TestSameSeedSameText runs every chapter not marked real-time twice with
// one seed and requires the same text, as the README promises.
func TestSameSeedSameText(t *testing.T) {
	var names []string
	for _, c := range chapters {
		if _, ok := realTime[c.name]; !ok {
			names = append(names, c.name)
		}
	}
	only := strings.Join(names, ",")
	var a, b bytes.Buffer
	if err := run(context.Background(), &a, 3, false, only); err != nil {
		t.Fatalf("run: %v\n%s", err, a.String())
	}
	if err := run(context.Background(), &b, 3, false, only); err != nil {
		t.Fatalf("run: %v\n%s", err, b.String())
	}
	if a.String() != b.String() {
		al, bl := strings.Split(a.String(), "\n"), strings.Split(b.String(), "\n")
		for i := 0; i < min(len(al), len(bl)); i++ {
			if al[i] != bl[i] {
				t.Fatalf("two runs with seed 3 differ at line %d:\n%s\n%s", i+1, al[i], bl[i])
			}
		}
		t.Fatalf("two runs with seed 3 differ in length: %d and %d lines", len(al), len(bl))
	}
}
