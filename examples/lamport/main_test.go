package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/distkit/distkit/examples/internal/clitest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestScenarioNumbers checks the timestamps the issue and the textbook
// scenario call for, event by event.
func TestScenarioNumbers(t *testing.T) {
	events, err := replay()
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	want := map[string]uint64{
		"P1.1": 1, "P1.2": 2, "P1.3": 3, "P1.4": 4,
		"P2.1": 1, "P2.2": 3, "P2.3": 4,
		"P3.1": 1, "P3.2": 2, "P3.3": 5, "P3.4": 6,
	}
	wantVector := map[string]string{
		"P1.4": "[4 0 0]", "P2.3": "[2 3 0]", "P3.3": "[2 3 3]", "P3.4": "[4 3 4]",
	}
	if len(events) != len(want) {
		t.Fatalf("replay produced %d events; want %d", len(events), len(want))
	}
	for _, e := range events {
		if e.lamport != want[e.name] {
			t.Errorf("%s Lamport = %d; want %d", e.name, e.lamport, want[e.name])
		}
		if w, ok := wantVector[e.name]; ok && tuple(e.vector) != w {
			t.Errorf("%s vector = %s; want %s", e.name, tuple(e.vector), w)
		}
	}
}

// TestTextbookColumn checks the textbook's table against the rules it
// states: the cells that differ are exactly the two slips the example
// names and the cells they carry into (P3's receive of m2, P1's send of m3).
func TestTextbookColumn(t *testing.T) {
	events, err := replay()
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	var differ []string
	for _, e := range events {
		if _, ok := textbook[e.name]; !ok {
			t.Fatalf("textbook has no cell for %s", e.name)
		}
		if textbook[e.name] != e.lamport {
			differ = append(differ, e.name)
		}
	}
	if got, want := strings.Join(differ, " "), "P2.3 P1.3 P3.3 P1.4"; got != want {
		t.Errorf("cells that differ = %q; want %q", got, want)
	}
	// The textbook's sends tick: each send is one above the event before it.
	for _, pair := range [][2]string{{"P1.1", "P1.2"}, {"P1.3", "P1.4"}} {
		if textbook[pair[1]] != textbook[pair[0]]+1 {
			t.Errorf("textbook %s = %d; want %s+1 = %d (its sends tick)", pair[1], textbook[pair[1]], pair[0], textbook[pair[0]]+1)
		}
	}
}

func TestFlags(t *testing.T) { clitest.Check(t, parseFlags) }

func TestOutput(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatalf("run: %v", err)
	}
	for _, want := range []string{
		"P1 gets 1, 2, 3, 4",
		"P2 gets 1, 3, 4",
		"P3 gets 1, 2, 5, 6",
		"31 happens-before pairs; Lamport clock condition (a → b ⇒ L(a) < L(b)) holds for all: true",
		"P1.3 → P1.4 P3.4",
		"P1.1 ∥ P2.1  [1 0 0] [0 1 0]  equal Lamport timestamps 1, yet concurrent",
		"P2.3 ∥ P1.4  [2 3 0] [4 0 0]  equal Lamport timestamps 4, yet concurrent",
		"P2.3 ∥ P1.3  [2 3 0] [3 0 0]  Lamport 4 vs 3 looks ordered, yet concurrent",
		"24 concurrent pairs: 6 with equal Lamport timestamps, 18 whose Lamport timestamps differ as if ordered.",
		"P2.3     send m2 to P3                 3     4 *",
		"P3.3     receive m2 (L=4)              4     5 *",
		"P1.3     local event                   4     3 *",
		"P1.4     send m3 to P3                 5     4 *",
		"4 cells differ. The textbook's sends do tick (P1: 1→2, 4→5)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
