// Command interleave compares benchmarks whose figures drift with the
// machine: it runs them round by round, each run in its own process, and
// reports the median of the per-round ratios to the first one, with a sign
// test. BENCHMARKS.md's ratios (sessions against plain, one commit against
// another) come from it: on a shared 2-vCPU machine the same binary's
// BenchmarkRaftPropose/mem drifts by a third within the hour, so figures
// measured minutes apart cannot be compared, and neither can two benchmarks
// of one process (the second inherits the first's heap).
//
// Usage: build each side as a test binary, then give specs of the form
// [label=]binary:regex, the first being the reference:
//
//	go test -c -o /tmp/new.test ./consensus
//	go run ./internal/interleave -rounds 12 -benchtime 1000000x \
//		plain=/tmp/new.test:'^BenchmarkRaftPropose$/^mem$' \
//		sessions=/tmp/new.test:'^BenchmarkRaftProposeSessions$/^mem$'
//
// Each round runs every spec once, in order, as
//
//	binary -test.run '^$' -test.bench regex -test.benchtime BENCHTIME
//
// with -env settings added to the environment (GOMAXPROCS=1, say), and
// reads the first benchmark line's -metric (ops/s by default: higher is
// better) and, if reported, cpu-µs/op. It prints, per spec, the median of
// the metric, the median of its per-round ratio to the reference with the
// rounds above 1 and a two-sided sign test, the median ratio of CPU per
// operation, and a 95 % confidence interval of the median ratio (from
// order statistics: no assumption on the distribution; "-" below 6
// rounds); with -raw FILE, one line per run. The interval is what to read
// before calling a difference real: on that machine the per-round ratio
// of two fixed binaries spreads over ±0.1, so 16 rounds place the median
// only within about ±0.06, and it takes about 100 to narrow that to
// ±0.03. A run that fails or prints no figure stops the comparison
// (exit 1); bad flags exit 2.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// spec is one benchmark to run: a regex of a test binary.
type spec struct {
	label, binary, regex string
}

// sample is what one run reported: the compared metric and, if reported,
// CPU per operation (0 when not).
type sample struct {
	metric, cpu float64
}

// envList collects repeated -env flags.
type envList []string

func (e *envList) String() string { return strings.Join(*e, " ") }
func (e *envList) Set(v string) error {
	if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	*e = append(*e, v)
	return nil
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("interleave", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var env envList
	var (
		rounds    = fs.Int("rounds", 12, "rounds: every spec runs once per round")
		benchtime = fs.String("benchtime", "1000000x", "-test.benchtime of every run")
		metric    = fs.String("metric", "ops/s", "the unit of the figure compared (higher is better)")
		raw       = fs.String("raw", "", "also write one line per run to this file: label, metric, cpu-µs/op")
	)
	fs.Var(&env, "env", "KEY=VALUE added to every run's environment (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: interleave [flags] [label=]binary:regex ...  (the first spec is the reference)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	specs, err := parseSpecs(fs.Args())
	if err == nil && *rounds < 1 {
		err = fmt.Errorf("-rounds %d; want at least 1", *rounds)
	}
	if err != nil {
		fmt.Fprintf(stderr, "interleave: %v\n", err)
		fs.Usage()
		return 2
	}
	var raww io.Writer = io.Discard
	if *raw != "" {
		f, err := os.Create(*raw)
		if err != nil {
			fmt.Fprintf(stderr, "interleave: %v\n", err)
			return 1
		}
		defer f.Close()
		raww = f
	}
	results := make([][]sample, len(specs)) // results[spec][round]
	for r := range *rounds {
		for i, s := range specs {
			out, err := runOnce(s, *benchtime, env)
			if err != nil {
				fmt.Fprintf(stderr, "interleave: round %d, %s: %v\n%s", r+1, s.label, err, out)
				return 1
			}
			smp, err := parseSample(out, *metric)
			if err != nil {
				fmt.Fprintf(stderr, "interleave: round %d, %s: %v\n%s", r+1, s.label, err, out)
				return 1
			}
			results[i] = append(results[i], smp)
			fmt.Fprintf(raww, "%s %g %g\n", s.label, smp.metric, smp.cpu)
		}
		fmt.Fprintf(stderr, "round %d of %d done\n", r+1, *rounds)
	}
	report(stdout, specs, results, *metric)
	return 0
}

// parseSpecs reads [label=]binary:regex specs; a missing label is the
// binary's base name and the regex.
func parseSpecs(args []string) ([]spec, error) {
	if len(args) == 0 {
		return nil, errors.New("no specs")
	}
	var specs []spec
	for _, a := range args {
		label, rest, named := strings.Cut(a, "=")
		if !named || strings.Contains(label, ":") {
			label, rest = "", a
		}
		bin, regex, ok := strings.Cut(rest, ":")
		if !ok || bin == "" || regex == "" {
			return nil, fmt.Errorf("spec %q: want [label=]binary:regex", a)
		}
		if label == "" {
			label = bin[strings.LastIndexByte(bin, '/')+1:] + ":" + regex
		}
		specs = append(specs, spec{label: label, binary: bin, regex: regex})
	}
	return specs, nil
}

// runOnce runs s once and returns its output.
func runOnce(s spec, benchtime string, env []string) ([]byte, error) {
	cmd := exec.Command(s.binary, "-test.run", "^$", "-test.bench", s.regex, "-test.benchtime", benchtime)
	cmd.Env = append(os.Environ(), env...)
	return cmd.CombinedOutput()
}

// parseSample finds the first benchmark line of out and reads the value
// reported in unit metric, and cpu-µs/op if there.
func parseSample(out []byte, metric string) (sample, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		var s sample
		found := false
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case metric:
				s.metric, found = v, true
			case "cpu-µs/op":
				s.cpu = v
			}
		}
		if !found {
			return sample{}, fmt.Errorf("benchmark line %q reports no %s", sc.Text(), metric)
		}
		return s, nil
	}
	return sample{}, errors.New("no benchmark line in the output (does the regex match a benchmark?)")
}

// report prints the comparison of every spec with the first.
func report(w io.Writer, specs []spec, results [][]sample, metric string) {
	ref := results[0]
	fmt.Fprintf(w, "%-40s %14s %36s %10s %16s\n", "spec", "median "+metric, "ratio to "+specs[0].label, "cpu ratio", "ratio 95% CI")
	for i, s := range specs {
		var vals, ratios, cpus []float64
		above := 0
		for r, smp := range results[i] {
			vals = append(vals, smp.metric)
			ratio := smp.metric / ref[r].metric
			ratios = append(ratios, ratio)
			if ratio > 1 {
				above++
			}
			if smp.cpu > 0 && ref[r].cpu > 0 {
				cpus = append(cpus, smp.cpu/ref[r].cpu)
			}
		}
		cpu := "-"
		if len(cpus) > 0 {
			cpu = fmt.Sprintf("%.3f", median(cpus))
		}
		cmp, ci := "(reference)", ""
		if i > 0 {
			cmp = fmt.Sprintf("%.3f (%d of %d above, p=%.3f)", median(ratios), above, len(ratios), signTest(above, len(ratios)))
			ci = "-"
			if lo, hi, ok := medianCI(ratios); ok {
				ci = fmt.Sprintf("%.3f-%.3f", lo, hi)
			}
		}
		fmt.Fprintf(w, "%-40s %14s %36s %10s %16s\n", s.label, figure(median(vals)), cmp, cpu, ci)
	}
}

// figure formats a benchmark figure: whole above 100, else 4 digits.
func figure(v float64) string {
	if math.Abs(v) >= 100 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// median returns the median of xs (not modified); NaN if empty.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// medianCI returns a confidence interval of at least 95 % for the median of
// the distribution xs are drawn from: the k-th smallest and k-th largest
// of xs, k the largest with P(Binomial(n, 1/2) < k) <= 2.5 %. ok is false
// below 6 values, where no such k exists.
func medianCI(xs []float64) (lo, hi float64, ok bool) {
	n := len(xs)
	k, tail := 0, 0.0 // tail: P(X < k), X ~ Binomial(n, 1/2)
	for {
		next := tail + binom(n, k)/math.Pow(2, float64(n))
		if next > 0.025 {
			break
		}
		k, tail = k+1, next
	}
	if k == 0 {
		return 0, 0, false
	}
	s := slices.Sorted(slices.Values(xs))
	return s[k-1], s[n-k], true
}

// signTest returns the two-sided p-value of k successes in n fair coin
// tosses: the probability of a split at least as uneven.
func signTest(k, n int) float64 {
	if n == 0 {
		return 1
	}
	lo := min(k, n-k)
	p := 0.0
	for i := 0; i <= lo; i++ {
		p += binom(n, i)
	}
	return min(1, 2*p/math.Pow(2, float64(n)))
}

// binom returns n choose k.
func binom(n, k int) float64 {
	r := 1.0
	for i := 1; i <= k; i++ {
		r = r * float64(n-k+i) / float64(i)
	}
	return r
}
