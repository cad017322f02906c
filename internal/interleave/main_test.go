package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// fakeBenchEnv makes this test binary act as a benchmark binary: it prints
// a benchmark line whose ops/s is the variable's value, or fails.
const fakeBenchEnv = "INTERLEAVE_FAKE_OPS"

func TestMain(m *testing.M) {
	if v, ok := os.LookupEnv(fakeBenchEnv); ok {
		if v == "fail" {
			fmt.Println("--- FAIL: BenchmarkFake")
			os.Exit(1)
		}
		fmt.Printf("goos: linux\nBenchmarkFake-2   1000   5 ns/op   %s ops/s   2.5 cpu-µs/op\nPASS\n", v)
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

func TestParseSpecs(t *testing.T) {
	tests := []struct {
		args    []string
		want    []spec
		wantErr bool
	}{
		{[]string{"plain=/tmp/a.test:^B$/^mem$"}, []spec{{"plain", "/tmp/a.test", "^B$/^mem$"}}, false},
		{[]string{"/tmp/a.test:^B$"}, []spec{{"a.test:^B$", "/tmp/a.test", "^B$"}}, false},
		// An "=" inside the regex is not a label.
		{[]string{"/tmp/a.test:x=y"}, []spec{{"a.test:x=y", "/tmp/a.test", "x=y"}}, false},
		{nil, nil, true},
		{[]string{"nobinary"}, nil, true},
		{[]string{"l=:regex"}, nil, true},
		{[]string{"l=bin:"}, nil, true},
	}
	for _, tt := range tests {
		got, err := parseSpecs(tt.args)
		if (err != nil) != tt.wantErr || fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("parseSpecs(%q) = %v, %v; want %v, error %v", tt.args, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseSample(t *testing.T) {
	line := "BenchmarkRaftPropose/mem-2   1000000   1631 ns/op   2.498 cpu-µs/op   613296 ops/s   74.66 p50-µs   1445 B/op   1 allocs/op\n"
	tests := []struct {
		name, out, metric string
		want              sample
		wantErr           bool
	}{
		{"ops and cpu", "goos: linux\n" + line + "PASS\n", "ops/s", sample{613296, 2.498}, false},
		{"another metric", line, "p50-µs", sample{74.66, 2.498}, false},
		{"first line only", line + strings.Replace(line, "613296", "1", 1), "ops/s", sample{613296, 2.498}, false},
		{"metric missing", line, "txn/s", sample{}, true},
		{"no benchmark ran", "testing: warning: no tests to run\nPASS\n", "ops/s", sample{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSample([]byte(tt.out), tt.metric)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("parseSample = %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestSignTest(t *testing.T) {
	tests := []struct {
		k, n int
		want float64
	}{
		{6, 12, 1},
		{10, 12, 0.0386},  // 2 * (1+12+66)/4096
		{2, 12, 0.0386},   // symmetric
		{12, 12, 0.00049}, // 2/4096
		{0, 0, 1},
		{1, 1, 1},
	}
	for _, tt := range tests {
		if got := signTest(tt.k, tt.n); math.Abs(got-tt.want) > 0.0001 {
			t.Errorf("signTest(%d, %d) = %.5f; want %.5f", tt.k, tt.n, got, tt.want)
		}
	}
}

func TestMedian(t *testing.T) {
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median(3,1,2) = %v; want 2", got)
	}
	xs := []float64{4, 1, 3, 2}
	if got := median(xs); got != 2.5 {
		t.Errorf("median(4,1,3,2) = %v; want 2.5", got)
	}
	if xs[0] != 4 {
		t.Errorf("median reordered its argument: %v", xs)
	}
	if !math.IsNaN(median(nil)) {
		t.Errorf("median() is not NaN")
	}
}

// TestMedianCI: the interval's order statistics for a few sizes (the k of
// a 95 % interval for the median: none below 6 values, 1 at 6, 2 at 9, 38
// at 96), and its coverage checked against the binomial tail.
func TestMedianCI(t *testing.T) {
	tests := []struct {
		n, k int // k: the interval is the k-th smallest to the k-th largest
	}{{5, 0}, {6, 1}, {8, 1}, {9, 2}, {16, 4}, {32, 10}, {96, 38}}
	for _, tt := range tests {
		xs := make([]float64, tt.n)
		for i := range xs {
			xs[i] = float64(tt.n - i) // descending: medianCI sorts
		}
		lo, hi, ok := medianCI(xs)
		if tt.k == 0 {
			if ok {
				t.Errorf("n %d: interval %v-%v; want none", tt.n, lo, hi)
			}
			continue
		}
		if !ok || lo != float64(tt.k) || hi != float64(tt.n-tt.k+1) {
			t.Errorf("n %d: interval %v-%v (%v); want %d-%d", tt.n, lo, hi, ok, tt.k, tt.n-tt.k+1)
		}
		tail := func(k int) float64 { // P(X < k)
			p := 0.0
			for i := range k {
				p += binom(tt.n, i)
			}
			return p / math.Pow(2, float64(tt.n))
		}
		if tail(tt.k) > 0.025 || tail(tt.k+1) <= 0.025 {
			t.Errorf("n %d: k %d is not the largest with P(X < k) <= 2.5 %% (%.4f, next %.4f)", tt.n, tt.k, tail(tt.k), tail(tt.k+1))
		}
	}
}

// TestRunInterleaves runs this test binary as two fake benchmarks, one at
// twice the other's ops/s, and checks the report and the raw lines (one
// per run, in round order).
func TestRunInterleaves(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Both specs run the same binary; -env sets the figure for both, so
	// give the second its own through a wrapper script instead.
	dir := t.TempDir()
	wrapper := filepath.Join(dir, "double")
	script := fmt.Sprintf("#!/bin/sh\n%s=2000 exec %q \"$@\"\n", fakeBenchEnv, self)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(dir, "raw.txt")
	var stdout, stderr bytes.Buffer
	code := run([]string{"-rounds", "3", "-env", fakeBenchEnv + "=1000", "-raw", raw,
		"ref=" + self + ":Fake", "twice=" + wrapper + ":Fake"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("run = %d; stderr:\n%s", code, stderr.String())
	}
	if out := stdout.String(); !strings.Contains(out, "2.000 (3 of 3 above, p=0.250)") || !strings.Contains(out, "(reference)") {
		t.Errorf("report does not give the ratio 2 in 3 of 3 rounds:\n%s", out)
	}
	b, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Repeat("ref 1000 2.5\ntwice 2000 2.5\n", 3)
	if string(b) != want {
		t.Errorf("raw lines:\n%s\nwant:\n%s", b, want)
	}
}

func TestRunRefuses(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"no specs", nil, 2},
		{"bad spec", []string{"nocolon"}, 2},
		{"zero rounds", []string{"-rounds", "0", self + ":Fake"}, 2},
		{"bad env", []string{"-env", "novalue", self + ":Fake"}, 2},
		{"failing run", []string{"-rounds", "1", "-env", fakeBenchEnv + "=fail", self + ":Fake"}, 1},
		{"no figure", []string{"-rounds", "1", "-env", fakeBenchEnv + "=1", "-metric", "txn/s", self + ":Fake"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, &stdout, &stderr); code != tt.code {
				t.Fatalf("run(%q) = %d; want %d; stderr:\n%s", tt.args, code, tt.code, stderr.String())
			}
		})
	}
}
