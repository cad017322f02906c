// Command mutate is distkit's mutation runner: it breaks each safety rule
// listed in internal/mutate/testdata/*.mut, one at a time, and requires the
// named test to fail.
//
// Usage, from anywhere inside the repository:
//
//	go run ./internal/mutate            # every mutation
//	go run ./internal/mutate -list      # list them, run nothing
//	go run ./internal/mutate -run raft  # only mutations whose name matches
//	go run ./internal/mutate -v         # show go test's output for each
//
// Each block (format: testdata/README.md) is applied to a copy of its file
// handed to go test through -overlay, so the working tree is never touched
// and several runners can share it. For each block the runner runs
//
//	go test -count=1 -vet=off -timeout 5m -run '^(NAMES)$' PKG
//
// and reports one of: caught (a test failed by an assertion), NOT CAUGHT
// (the tests passed with the rule broken), did not compile, timed out (a
// hang is not an assertion), old text not found (the code moved on; update
// the block), no test ran, or crashed (the test binary died without a test
// failure, e.g. out of memory). It exits 1 unless every mutation was
// caught, and 2 on a usage or format error.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mutate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		filter  = fs.String("run", "", "run only mutations whose name matches this regular expression")
		list    = fs.Bool("list", false, "list the mutations and exit")
		verbose = fs.Bool("v", false, "print go test's output for every mutation")
		timeout = fs.Duration("timeout", 5*time.Minute, "go test -timeout for each mutation")
		race    = fs.Bool("race", false, "run the tests with -race")
		dir     = fs.String("dir", "", "folder of .mut files (default: internal/mutate/testdata in the repository)")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	root, err := repoRoot(wd)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if *dir == "" {
		*dir = filepath.Join(root, "internal", "mutate", "testdata")
	}
	ms, err := loadAll(*dir)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if *filter != "" {
		re, err := regexp.Compile(*filter)
		if err != nil {
			fmt.Fprintf(stderr, "mutate: -run: %v\n", err)
			return 2
		}
		var kept []Mutation
		for _, m := range ms {
			if re.MatchString(m.Name) {
				kept = append(kept, m)
			}
		}
		ms = kept
	}
	if *list {
		for _, m := range ms {
			fmt.Fprintf(stdout, "%-40s %s  %s %s\n    %s\n", m.Name, m.File, m.Pkg, strings.Join(m.Tests, "|"), m.Rule)
		}
		return 0
	}
	if len(ms) == 0 {
		fmt.Fprintln(stderr, "mutate: no mutations selected")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	r := &Runner{Root: root, Timeout: *timeout, Race: *race, Stdout: stdout, Verbose: *verbose}
	results := r.RunAll(ctx, ms)
	return summarize(stdout, results, len(ms))
}

// summarize prints the tally and returns the exit code: 0 only if every
// selected mutation ran and was caught.
func summarize(w io.Writer, results []Result, want int) int {
	counts := make(map[Outcome]int)
	var bad []string
	for _, r := range results {
		counts[r.Outcome]++
		if r.Outcome != Caught {
			bad = append(bad, fmt.Sprintf("  %-18s %s", r.Outcome, r.Mutation.Where()))
		}
	}
	fmt.Fprintf(w, "\n%d of %d mutations caught", counts[Caught], want)
	for o := NotCaught; o <= Crashed; o++ {
		if counts[o] > 0 {
			fmt.Fprintf(w, ", %d %s", counts[o], o)
		}
	}
	fmt.Fprintln(w)
	for _, b := range bad {
		fmt.Fprintln(w, b)
	}
	if counts[Caught] != want {
		return 1
	}
	return 0
}
