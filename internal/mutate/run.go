package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Outcome is what running one mutation gave.
type Outcome int

// The outcomes. Only Caught is a success.
const (
	Caught      Outcome = iota // the named test failed by an assertion
	NotCaught                  // the named test passed with the rule broken
	NoCompile                  // the mutated package (or its test) did not build
	TimedOut                   // the test hit its -timeout (a hang is not a failure message)
	OldNotFound                // old: is not in the file exactly once: update the block
	NoTestRan                  // go test ran no test: the names match nothing
	Crashed                    // the test binary died without a test failure (out of memory, fatal error)
)

func (o Outcome) String() string {
	switch o {
	case Caught:
		return "caught"
	case NotCaught:
		return "NOT CAUGHT"
	case NoCompile:
		return "did not compile"
	case TimedOut:
		return "timed out"
	case OldNotFound:
		return "old text not found"
	case NoTestRan:
		return "no test ran"
	case Crashed:
		return "crashed"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Result is the outcome of one mutation, with the test output.
type Result struct {
	Mutation Mutation
	Outcome  Outcome
	Elapsed  time.Duration
	Output   string // go test's combined output
}

// Runner applies mutations one at a time through go test -overlay.
type Runner struct {
	Root    string        // repository root (holds go.mod)
	Timeout time.Duration // go test -timeout; the runner kills go test a minute later
	Race    bool          // add -race
	Stdout  io.Writer     // progress lines; nil discards
	Verbose bool          // print go test's output for every mutation, not only failures
}

// Run runs one mutation and classifies the result.
func (r *Runner) Run(ctx context.Context, m Mutation) Result {
	start := time.Now()
	res := Result{Mutation: m}
	src, err := m.apply(r.Root)
	if err != nil {
		res.Outcome, res.Output = OldNotFound, err.Error()
		return res
	}
	tmp, err := os.MkdirTemp("", "distkit-mutate-")
	if err != nil {
		res.Outcome, res.Output = Crashed, err.Error()
		return res
	}
	defer os.RemoveAll(tmp)
	mutated := filepath.Join(tmp, filepath.Base(m.File))
	overlay := filepath.Join(tmp, "overlay.json")
	ov, _ := json.Marshal(struct{ Replace map[string]string }{
		Replace: map[string]string{filepath.Join(r.Root, m.File): mutated},
	})
	if err := errors.Join(os.WriteFile(mutated, src, 0o644), os.WriteFile(overlay, ov, 0o644)); err != nil {
		res.Outcome, res.Output = Crashed, err.Error()
		return res
	}

	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	args := []string{"test", "-count=1", "-vet=off", "-overlay", overlay,
		"-timeout", timeout.String(), "-run", m.RunPattern()}
	if r.Race {
		args = append(args, "-race")
	}
	dir, pkg := moduleOf(r.Root, m.Pkg)
	args = append(args, pkg)
	cctx, cancel := context.WithTimeout(ctx, timeout+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, "go", args...)
	cmd.Dir = dir
	// The mutation runs with the default test budget; a soak environment
	// would multiply the runs of the named tests and is not wanted here.
	cmd.Env = append(os.Environ(), "DISTKIT_SOAK=", "DISTKIT_SEED=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	testdata := filepath.Join(r.Root, m.Pkg, "testdata")
	_, statErr := os.Stat(testdata)
	failDir := filepath.Join(testdata, "rapid")
	before := listFiles(failDir)
	runErr := cmd.Run()
	removeNewFiles(failDir, before)
	if statErr != nil {
		os.Remove(testdata) // made by rapid just now; fails, harmlessly, if not empty
	}
	res.Elapsed = time.Since(start)
	res.Output = out.String()
	res.Outcome = classify(res.Output, runErr, cctx.Err() != nil)
	return res
}

// moduleOf returns the directory of the module that holds package pkg
// (a path relative to root, like ./contrib/redis) and the package's path
// relative to that module: a contrib adapter is its own module, and go
// test must run inside it. Its tests also need their server (the
// environment its .ci/contrib script sets); without one they skip, and
// the mutation is reported NOT CAUGHT.
func moduleOf(root, pkg string) (dir, rel string) {
	abs := filepath.Join(root, pkg)
	for d := abs; d != root && strings.HasPrefix(d, root); d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			r, err := filepath.Rel(d, abs)
			if err != nil {
				break
			}
			return d, "./" + filepath.ToSlash(r)
		}
	}
	return root, pkg
}

// classify turns go test's output and exit status into an Outcome.
func classify(out string, runErr error, killed bool) Outcome {
	switch {
	case killed || strings.Contains(out, "panic: test timed out after"):
		return TimedOut
	case strings.Contains(out, "[build failed]") || strings.Contains(out, "[setup failed]"):
		return NoCompile
	case runErr == nil && strings.Contains(out, "[no tests to run]"):
		return NoTestRan
	case runErr == nil:
		return NotCaught
	case strings.Contains(out, "--- FAIL:"):
		return Caught
	}
	// Failed without a test failing: the compiler or linker (no "[build
	// failed]" for a single package with a compile error on some versions)
	// or a fatal runtime error such as running out of memory.
	if strings.Contains(out, "fatal error:") || strings.Contains(out, "signal: killed") {
		return Crashed
	}
	if strings.Contains(out, ".go:") && !strings.Contains(out, "=== RUN") && !strings.Contains(out, "FAIL\t") {
		return NoCompile
	}
	return Crashed
}

// RunAll runs the mutations in order, printing one line each, and returns
// the results.
func (r *Runner) RunAll(ctx context.Context, ms []Mutation) []Result {
	var results []Result
	for i, m := range ms {
		if ctx.Err() != nil {
			break
		}
		res := r.Run(ctx, m)
		results = append(results, res)
		if r.Stdout != nil {
			fmt.Fprintf(r.Stdout, "[%d/%d] %-18s %s  (%s; %s %s) %.1fs\n", i+1, len(ms),
				res.Outcome, m.Name, m.File, m.Pkg, strings.Join(m.Tests, "|"), res.Elapsed.Seconds())
			if r.Verbose || res.Outcome != Caught {
				fmt.Fprintf(r.Stdout, "%s\n", indent(tail(res.Output, 40)))
			}
		}
	}
	return results
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

func indent(s string) string {
	return "    | " + strings.ReplaceAll(s, "\n", "\n    | ")
}

// listFiles returns the set of files under dir (none if it does not exist).
func listFiles(dir string) map[string]bool {
	files := map[string]bool{}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files[path] = true
		}
		return nil
	})
	return files
}

// removeNewFiles removes the files under dir that are not in before: the
// .fail files rapid writes into a package's testdata/rapid when a property
// fails, which a mutation is meant to make happen. They record a failure
// of mutated code, not a bug, and would otherwise be left in the working
// tree. Directories left empty are removed too.
func removeNewFiles(dir string, before map[string]bool) {
	for path := range listFiles(dir) {
		if !before[path] {
			os.Remove(path)
		}
	}
	var dirs []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- { // deepest first
		os.Remove(dirs[i]) // fails, harmlessly, on a directory not empty
	}
}
