// Command tour runs an in-process cluster tour of every distkit primitive on
// the in-memory network and narrates what happens.
//
//	go run ./examples/tour            # the whole tour
//	go run ./examples/tour -seed 7    # another run
//	go run ./examples/tour -quiet     # headings and outcomes only
//	go run ./examples/tour -only clock,hashring
//
// Each package contributes a chapter in its own file (chapter_*.go) that
// registers itself with register; chapters run in order.
//
// The same seed prints the same text for every chapter but those listed in
// realTime, which run a cluster on goroutines and real timers: their
// timings and interleavings (who wins an election, which transfers collide)
// vary between runs, and their heading says so. TestSameSeedSameText holds
// the others to it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// chapter is one section of the tour.
type chapter struct {
	order int    // chapters run in ascending order
	name  string // short name for -only
	title string // heading printed before the chapter
	run   func(ctx context.Context, t *tour) error
}

var chapters []chapter

// realTime names the chapters that run on goroutines and real timers, so a
// seed does not repeat them exactly, with what varies.
var realTime = map[string]string{
	"consensus": "election timing and commit latencies",
	"txn":       "which concurrent transfers collide",
}

// register adds a chapter; chapter files call it from init.
func register(c chapter) { chapters = append(chapters, c) }

// tour carries the run's settings and prints the narration.
type tour struct {
	seed  int64
	quiet bool
	out   io.Writer
}

// Say prints a line that is part of the outcome; it is shown even with -quiet.
func (t *tour) Say(format string, args ...any) {
	fmt.Fprintf(t.out, "  "+format+"\n", args...)
}

// Detail prints a line of narration that -quiet hides.
func (t *tour) Detail(format string, args ...any) {
	if t.quiet {
		return
	}
	fmt.Fprintf(t.out, "    "+format+"\n", args...)
}

func main() {
	seed := flag.Int64("seed", 1, "seed for every random choice; the same seed repeats every chapter not marked as real-time")
	quiet := flag.Bool("quiet", false, "print only headings and outcomes")
	only := flag.String("only", "", "comma-separated chapter names to run (default: all)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "tour: unexpected argument %q\n", flag.Arg(0))
		flag.Usage()
		os.Exit(2)
	}

	if err := run(context.Background(), os.Stdout, *seed, *quiet, *only); err != nil {
		fmt.Fprintln(os.Stderr, "tour:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, seed int64, quiet bool, only string) error {
	want := map[string]bool{}
	for _, n := range strings.Split(only, ",") {
		if n = strings.TrimSpace(n); n != "" {
			want[n] = true
		}
	}
	sort.SliceStable(chapters, func(i, j int) bool { return chapters[i].order < chapters[j].order })
	for n := range want {
		if !hasChapter(n) {
			return fmt.Errorf("no chapter %q (have %s)", n, chapterNames())
		}
	}

	t := &tour{seed: seed, quiet: quiet, out: out}
	fmt.Fprintf(out, "distkit tour (seed %d)\n", seed)
	for i, c := range chapters {
		if len(want) > 0 && !want[c.name] {
			continue
		}
		fmt.Fprintf(out, "\n== %d. %s ==\n", i+1, c.title)
		if what, ok := realTime[c.name]; ok && !quiet {
			fmt.Fprintf(out, "  (real goroutines and timers: %s vary from run to run, whatever the seed)\n", what)
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := c.run(cctx, t)
		cancel()
		if err != nil {
			return fmt.Errorf("chapter %s: %w", c.name, err)
		}
	}
	fmt.Fprintf(out, "\ntour finished\n")
	return nil
}

func hasChapter(name string) bool {
	for _, c := range chapters {
		if c.name == name {
			return true
		}
	}
	return false
}

func chapterNames() string {
	names := make([]string, len(chapters))
	for i, c := range chapters {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}
