// Command detector shows failure detection on a simulated five-node
// cluster: a node stops and its φ climbs until every other node declares it
// Failed; the network is then cut in two and each side gives up on the
// other; the cut heals and everyone recovers. Last, the textbook's
// fixed-timeout detectors (§6.3: 1 s heartbeats with a 3 s timeout, 2 s with
// 6 s, 3 confirmations before "failed", 2-3 heartbeats to recover) run next
// to φ-accrual on one trace with loss, a GC-like pause and a real crash,
// counting false suspicions and detection times.
//
//	go run ./examples/detector            # seed 1
//	go run ./examples/detector -seed 7    # another reproducible run
//
// φ is printed every quarter second rather than every second: the
// heartbeats come every 1 s ± 20 %, so their spread σ is about 0.12 s and φ
// passes the threshold 8 less than a second into the silence; a
// once-a-second sample would show a single step to the verdict.
//
// It runs on the sim package's virtual time, so the minutes it narrates take
// a fraction of a second and every run with the same seed is identical.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/distkit/distkit/detector"
	"github.com/distkit/distkit/detector/detectorsim"
	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
)

func main() {
	seed := flag.Int64("seed", 1, "seed for the simulated network and the nodes")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "detector: unexpected argument %q\n", flag.Arg(0))
		flag.Usage()
		os.Exit(2)
	}
	if err := run(os.Stdout, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "detector:", err)
		os.Exit(1)
	}
}

// seen is an event and the node that reported it.
type seen struct {
	by transport.NodeID
	detector.Event
}

// cluster is the simulated cluster and what it reported.
type cluster struct {
	s      *sim.Sim
	ids    []transport.NodeID
	events []seen
}

// core returns id's running core, or nil while it is crashed.
func (c *cluster) core(id transport.NodeID) *detector.Membership {
	if n, ok := c.s.Node(id).(*detectorsim.Node); ok {
		return n.Core()
	}
	return nil
}

// view returns what observer thinks of member.
func (c *cluster) view(observer, member transport.NodeID) detector.MemberState {
	st, _ := c.core(observer).Member(member, c.s.Now())
	return st
}

// allAlive reports whether every running node sees every other one Alive.
func (c *cluster) allAlive() bool {
	for _, a := range c.ids {
		for _, b := range c.ids {
			if a != b && c.core(a) != nil && c.core(b) != nil && c.view(a, b).Status != detector.Alive {
				return false
			}
		}
	}
	return true
}

// matrix prints who sees whom as what.
func (c *cluster) matrix(out io.Writer) {
	fmt.Fprintf(out, "      %s\n", strings.Join(idsStrings(c.ids), "  "))
	for _, a := range c.ids {
		row := make([]string, len(c.ids))
		for i, b := range c.ids {
			switch {
			case a == b:
				row[i] = " ·"
			case c.core(a) == nil:
				row[i] = " ?"
			default:
				row[i] = fmt.Sprintf("%2.1s", c.view(a, b).Status.String())
			}
		}
		fmt.Fprintf(out, "  %s  %s\n", a, strings.Join(row, "  "))
	}
	fmt.Fprintln(out, "  (a = alive, s = suspect, f = failed; row = observer)")
}

func idsStrings(ids []transport.NodeID) []string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = string(id)
	}
	return s
}

func run(out io.Writer, seed int64) error {
	cfg := detector.DefaultConfig()
	cfg.Jitter = 0.2
	faults := sim.Faults{Drop: 0.01, MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond}
	s, err := sim.New(sim.Config{Seed: seed, Faults: faults})
	if err != nil {
		return err
	}
	c := &cluster{s: s, ids: []transport.NodeID{"n1", "n2", "n3", "n4", "n5"}}
	for _, id := range c.ids {
		err := s.AddNode(id, func() sim.Node {
			n := detectorsim.New(cfg, c.ids)
			n.OnEvent = func(by transport.NodeID, e detector.Event) { c.events = append(c.events, seen{by, e}) }
			return n
		})
		if err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "5 nodes, heartbeats every 1s ±20%%, 1%% message loss, φ threshold %g, %d indirect probes (seed %d)\n",
		cfg.Phi.Threshold, cfg.IndirectProbes, seed)
	s.Run(60 * time.Second)
	fmt.Fprintf(out, "after 60s of warm-up every node sees every other alive: %v\n", c.allAlive())

	// 1. A node stops.
	fmt.Fprintln(out, "\n== n5 stops; n1's view of it every quarter second ==")
	fmt.Fprintln(out, "  (heartbeat gaps vary by σ ≈ 0.12 s, so φ passes 8 within a second of silence)")
	crash := s.Now()
	s.Crash("n5")
	c.events = nil
	for i := 1; i <= 40; i++ {
		s.Run(time.Second / 4)
		v := c.view("n1", "n5")
		note := ""
		if v.Status == detector.Alive && v.Phi >= cfg.Phi.Threshold {
			// The status is n1's verdict at its latest check; φ is
			// computed now. The next check, within one tick, suspects.
			note = fmt.Sprintf("  (φ is over %g; n1's verdict changes at its next check)", cfg.Phi.Threshold)
		}
		fmt.Fprintf(out, "  +%.2fs  φ = %7.2f  %v%s\n", float64(i)/4, v.Phi, v.Status, note)
		if v.Status == detector.Failed {
			break
		}
	}
	if !s.RunUntil(func() bool { return failedBy(c.events, "n5") == len(c.ids)-1 }, 10*time.Second) {
		return fmt.Errorf("not every node declared n5 failed")
	}
	fmt.Fprintf(out, "  every live node declared n5 failed:")
	for _, e := range c.events {
		if e.Member == "n5" && e.Kind == detector.EventFailed {
			fmt.Fprintf(out, " %s after %.1fs", e.by, e.At.Sub(crash).Seconds())
		}
	}
	fmt.Fprintln(out)

	// 2. It comes back.
	fmt.Fprintln(out, "\n== n5 restarts ==")
	s.Restart("n5")
	back := s.Now()
	c.events = nil
	if !s.RunUntil(c.allAlive, 10*time.Second) {
		return fmt.Errorf("n5 did not recover")
	}
	fmt.Fprintf(out, "  every node reports n5 recovered within %.1fs, with a new incarnation\n", s.Now().Sub(back).Seconds())

	// 3. A partition.
	left, right := c.ids[:3], c.ids[3:]
	fmt.Fprintf(out, "\n== the network splits: %v | %v ==\n", left, right)
	s.Partition(left, right)
	c.events = nil
	s.Run(10 * time.Second)
	fmt.Fprintln(out, "  10s later each side has given up on the other:")
	c.matrix(out)

	// 4. It heals.
	fmt.Fprintln(out, "\n== the network heals ==")
	healed := s.Now()
	s.Heal()
	c.events = nil
	if !s.RunUntil(c.allAlive, 10*time.Second) {
		return fmt.Errorf("the cluster did not recover from the partition")
	}
	recovered := 0
	for _, e := range c.events {
		if e.Kind == detector.EventRecovered {
			recovered++
		}
	}
	fmt.Fprintf(out, "  %d recovered events; everyone sees everyone alive again after %.1fs:\n",
		recovered, s.Now().Sub(healed).Seconds())
	c.matrix(out)
	if err := s.Err(); err != nil {
		return err
	}
	return compareDetectors(out, seed)
}

// failedBy counts the nodes that declared member Failed.
func failedBy(events []seen, member transport.NodeID) int {
	by := map[transport.NodeID]bool{}
	for _, e := range events {
		if e.Member == member && e.Kind == detector.EventFailed {
			by[e.by] = true
		}
	}
	return len(by)
}
