// Command lamport replays the textbook three-process scenario with Lamport
// and vector clocks and shows what each clock can tell you.
//
//	go run ./examples/lamport
//
// Each process does a local event; P1 sends m1 to P2; P3 does a local
// event; P2 receives m1, then sends m2 to P3; P1 does a local event; P3
// receives m2; P1 sends m3 to P3; P3 receives m3. The clocks follow the
// rules exactly — a local event ticks, a send ticks and attaches the value,
// a receive takes max(local, received) + 1 — so P1 reads 1, 2, 3, 4, P2
// reads 1, 3, 4 and P3 reads 1, 2, 5, 6.
//
// The program then prints the textbook's own table next to these numbers,
// marking every cell where the two differ, and lists every happens-before
// pair and every concurrent pair the vector clocks detect, including pairs
// whose Lamport timestamps are equal, or ordered, although neither event
// could know of the other.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/distkit/distkit/clock"
	"github.com/distkit/distkit/examples/internal/cli"
)

func main() {
	if err := parseFlags(os.Args[1:], os.Stderr); err != nil {
		os.Exit(cli.ExitCode(err))
	}
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "lamport:", err)
		os.Exit(1)
	}
}

// parseFlags accepts only -h: the scenario is fixed. It reports
// flag.ErrHelp for -h and an error for anything else, after printing the
// usage to stderr.
func parseFlags(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("lamport", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: go run ./examples/lamport")
		fmt.Fprintln(stderr, "Replays the textbook's three-process scenario (§4.2.2.2) with Lamport and vector clocks.")
		fs.PrintDefaults()
	}
	return cli.Parse(fs, args)
}

// textbook is the Lamport column of the textbook's table for the same
// scenario (§4.2.2.2), keyed by event. Its sends tick like the rule says
// (P1: 1→2 and 4→5), but it slips twice: P2's send of m2 stays at 3 instead
// of ticking to 4 (so P3 receives m2 at max(2, 3)+1 = 4 instead of
// max(2, 4)+1 = 5), and P1's local event jumps from 2 to 4 instead of 3
// (so m3 carries 5 instead of 4).
var textbook = map[string]uint64{
	"P1.1": 1, "P1.2": 2, "P1.3": 4, "P1.4": 5,
	"P2.1": 1, "P2.2": 3, "P2.3": 3,
	"P3.1": 1, "P3.2": 2, "P3.3": 4, "P3.4": 6,
}

type kind int

const (
	local kind = iota
	send
	receive
)

// step is one event of the scenario.
type step struct {
	proc int    // 0, 1, 2 for P1, P2, P3
	kind kind   // local, send or receive
	msg  string // the message sent or received
	to   int    // destination of a send
}

// scenario is the textbook run, in the order the events happen.
var scenario = []step{
	{proc: 0, kind: local},
	{proc: 1, kind: local},
	{proc: 2, kind: local},
	{proc: 0, kind: send, msg: "m1", to: 1},
	{proc: 2, kind: local},
	{proc: 1, kind: receive, msg: "m1"},
	{proc: 1, kind: send, msg: "m2", to: 2},
	{proc: 0, kind: local},
	{proc: 2, kind: receive, msg: "m2"},
	{proc: 0, kind: send, msg: "m3", to: 2},
	{proc: 2, kind: receive, msg: "m3"},
}

var procs = []clock.NodeID{"P1", "P2", "P3"}

// message is what travels on the wire: both clocks' stamps.
type message struct {
	lamport uint64
	vector  []byte // the vector clock's compact binary encoding
}

// event is a step with the clock readings it got.
type event struct {
	name    string // P1.1, P1.2, …
	what    string
	lamport uint64
	vector  *clock.Vector
}

func run(w io.Writer) error {
	events, err := replay()
	if err != nil {
		return err
	}

	fmt.Fprintln(w, "Three processes; local event: +1; send: +1 and attach; receive: max(local, attached) + 1.")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-4s  %-7s  %-8s  %-21s  %7s  %s\n", "step", "event", "process", "what", "Lamport", "vector [P1 P2 P3]")
	for i, e := range events {
		fmt.Fprintf(w, "%-4d  %-7s  %-8s  %-21s  %7d  %s\n", i+1, e.name, e.name[:2], e.what, e.lamport, tuple(e.vector))
	}
	fmt.Fprintln(w)
	for _, p := range procs {
		var ts []string
		for _, e := range events {
			if e.name[:2] == string(p) {
				ts = append(ts, fmt.Sprint(e.lamport))
			}
		}
		fmt.Fprintf(w, "%s gets %s\n", p, strings.Join(ts, ", "))
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "The textbook's table next to the rule (* marks a cell where they differ):")
	fmt.Fprintf(w, "%-7s  %-21s  %8s  %4s\n", "event", "what", "textbook", "rule")
	differ := 0
	for _, e := range events {
		mark := ""
		if textbook[e.name] != e.lamport {
			mark = " *"
			differ++
		}
		fmt.Fprintf(w, "%-7s  %-21s  %8d  %4d%s\n", e.name, e.what, textbook[e.name], e.lamport, mark)
	}
	fmt.Fprintf(w, "%d cells differ. The textbook's sends do tick (P1: 1→2, 4→5); its slips are elsewhere:\n", differ)
	fmt.Fprintln(w, "  - P2's send of m2 stays at 3 instead of ticking to 4, so P3's receive of m2 reads")
	fmt.Fprintln(w, "    max(2, 3)+1 = 4 where the rule gives max(2, 4)+1 = 5;")
	fmt.Fprintln(w, "  - P1's local event after sending m1 jumps from 2 to 4 instead of 3, so m3 carries 5, not 4.")

	fmt.Fprintln(w)
	fmt.Fprintln(w, "Happens-before (a → b: VC(a) < VC(b)), with the successors of each event:")
	pairs, condition := 0, true
	for _, a := range events {
		var succ []string
		for _, b := range events {
			if a.vector.Compare(b.vector) == clock.Before {
				succ = append(succ, b.name)
				pairs++
				condition = condition && a.lamport < b.lamport
			}
		}
		if len(succ) > 0 {
			fmt.Fprintf(w, "  %s → %s\n", a.name, strings.Join(succ, " "))
		}
	}
	fmt.Fprintf(w, "%d happens-before pairs; Lamport clock condition (a → b ⇒ L(a) < L(b)) holds for all: %v\n", pairs, condition)

	fmt.Fprintln(w)
	fmt.Fprintln(w, "Concurrent (a ∥ b: neither vector clock is below the other):")
	concurrent, equal, misleading := 0, 0, 0
	for i, a := range events {
		for _, b := range events[i+1:] {
			if a.vector.Compare(b.vector) != clock.Concurrent {
				continue
			}
			concurrent++
			note := ""
			switch {
			case a.lamport == b.lamport:
				equal++
				note = fmt.Sprintf("equal Lamport timestamps %d, yet concurrent", a.lamport)
			default:
				misleading++
				note = fmt.Sprintf("Lamport %d vs %d looks ordered, yet concurrent", a.lamport, b.lamport)
			}
			fmt.Fprintf(w, "  %s ∥ %s  %s %s  %s\n", a.name, b.name, tuple(a.vector), tuple(b.vector), note)
		}
	}
	fmt.Fprintf(w, "%d concurrent pairs: %d with equal Lamport timestamps, %d whose Lamport timestamps differ as if ordered.\n",
		concurrent, equal, misleading)
	fmt.Fprintln(w, "Lamport clocks satisfy a → b ⇒ L(a) < L(b) but not the converse; vector clocks satisfy both directions.")
	return nil
}

// replay runs the scenario with one Lamport clock and one vector clock per
// process, sending both stamps with every message.
func replay() ([]event, error) {
	lamports := make([]clock.Lamport, len(procs))
	vectors := make([]*clock.Vector, len(procs))
	for i := range vectors {
		vectors[i] = clock.NewVector()
	}
	inflight := map[string]message{}
	counts := make([]int, len(procs))
	var events []event
	for _, s := range scenario {
		p, id := s.proc, procs[s.proc]
		var e event
		switch s.kind {
		case local:
			e.lamport = lamports[p].Tick()
			vectors[p].Tick(id)
			e.what = "local event"
		case send:
			e.lamport = lamports[p].Send()
			vectors[p].Tick(id)
			enc, err := vectors[p].MarshalBinary()
			if err != nil {
				return nil, err
			}
			inflight[s.msg] = message{lamport: e.lamport, vector: enc}
			e.what = fmt.Sprintf("send %s to %s", s.msg, procs[s.to])
		case receive:
			m, ok := inflight[s.msg]
			if !ok {
				return nil, fmt.Errorf("%s receives %s, which was never sent", id, s.msg)
			}
			delete(inflight, s.msg)
			var err error
			if e.lamport, err = lamports[p].Receive(m.lamport); err != nil {
				return nil, err
			}
			remote := clock.NewVector()
			if err := remote.UnmarshalBinary(m.vector); err != nil {
				return nil, err
			}
			vectors[p].Receive(id, remote)
			e.what = fmt.Sprintf("receive %s (L=%d)", s.msg, m.lamport)
		}
		counts[p]++
		e.name = fmt.Sprintf("%s.%d", id, counts[p])
		e.vector = vectors[p].Copy()
		events = append(events, e)
	}
	return events, nil
}

// tuple prints a vector clock in the textbook's fixed [P1 P2 P3] form.
func tuple(v *clock.Vector) string {
	parts := make([]string, len(procs))
	for i, p := range procs {
		parts[i] = fmt.Sprint(v.Get(p))
	}
	return "[" + strings.Join(parts, " ") + "]"
}
