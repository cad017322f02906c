package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMutationFilesAreValid keeps the mutation list in step with the code:
// every block of every testdata/*.mut file parses, has a unique name, names
// a file whose text contains old: exactly once, and names test functions
// that exist in the package. It runs no mutation (see TestMutationsCaught).
func TestMutationFilesAreValid(t *testing.T) {
	root, err := repoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	ms, err := loadAll("testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if err := m.validate(root); err != nil {
			t.Error(err)
		}
	}
	t.Logf("%d mutations checked", len(ms))
}

// TestMutationsCaught runs every mutation (slow: one go test per block), and
// only under DISTKIT_SOAK=1. It is what `go run ./internal/mutate` does.
func TestMutationsCaught(t *testing.T) {
	if os.Getenv("DISTKIT_SOAK") == "" {
		t.Skip("runs every mutation; set DISTKIT_SOAK=1 (and a long -timeout)")
	}
	root, err := repoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	ms, err := loadAll("testdata")
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	r := &Runner{Root: root, Stdout: &log}
	for _, res := range r.RunAll(context.Background(), ms) {
		if res.Outcome != Caught {
			t.Errorf("%s: %s\n%s", res.Mutation.Where(), res.Outcome, tail(res.Output, 30))
		}
	}
	t.Log(log.String())
}

func TestParse(t *testing.T) {
	const src = "# comment\n\nmutation: a\nrule: r\nfile: x/y.go\ntest: ./x TestA|TestB\nold:\n\tfoo()\n\tbar()\nnew:\nend\n" +
		"mutation: b\nrule: r2\nfile: x/y.go\ntest: ./x TestC\nold:\n\tfoo()\nnew:\n\tbaz()\nend\n"
	ms, err := parse("t.mut", strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 {
		t.Fatalf("parsed %d blocks; want 2", len(ms))
	}
	a := ms[0]
	if a.Name != "a" || a.Rule != "r" || a.File != "x/y.go" || a.Pkg != "./x" || a.RunPattern() != "^(TestA|TestB)$" ||
		a.Old != "\tfoo()\n\tbar()\n" || a.New != "" || a.Line != 3 {
		t.Errorf("block a = %+v", a)
	}
	if b := ms[1]; b.Old != "\tfoo()\n" || b.New != "\tbaz()\n" {
		t.Errorf("block b = %+v", b)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, src string }{
		{"stray line", "hello\n"},
		{"unclosed", "mutation: a\nrule: r\nfile: f.go\ntest: ./x TestA\nold:\n\tx\nnew:\n\ty\n"},
		{"no rule", "mutation: a\nfile: f.go\ntest: ./x TestA\nold:\n\tx\nnew:\n\ty\nend\n"},
		{"no file", "mutation: a\nrule: r\ntest: ./x TestA\nold:\n\tx\nnew:\n\ty\nend\n"},
		{"bad test", "mutation: a\nrule: r\nfile: f.go\ntest: ./x\nold:\n\tx\nnew:\n\ty\nend\n"},
		{"subtest", "mutation: a\nrule: r\nfile: f.go\ntest: ./x TestA/b\nold:\n\tx\nnew:\n\ty\nend\n"},
		{"empty old", "mutation: a\nrule: r\nfile: f.go\ntest: ./x TestA\nold:\nnew:\n\ty\nend\n"},
		{"same", "mutation: a\nrule: r\nfile: f.go\ntest: ./x TestA\nold:\n\tx\nnew:\n\tx\nend\n"},
		{"unknown key", "mutation: a\nrules: r\n"},
		{"absolute file", "mutation: a\nrule: r\nfile: /f.go\ntest: ./x TestA\nold:\n\tx\nnew:\n\ty\nend\n"},
		{"pattern", "mutation: a\nrule: r\nfile: f.go\ntest: ./... TestA\nold:\n\tx\nnew:\n\ty\nend\n"},
		{"end lost in a merge", "mutation: a\nrule: r\nfile: f.go\ntest: ./x TestA\nold:\n\tx\nnew:\n\ty\nmutation: b\nrule: r\nfile: f.go\ntest: ./x TestA\nold:\n\tx\nnew:\n\ty\nend\n"},
		{"new lost in a merge", "mutation: a\nrule: r\nfile: f.go\ntest: ./x TestA\nold:\n\tx\nmutation: b\nrule: r\nfile: f.go\ntest: ./x TestA\nold:\n\tx\nnew:\n\ty\nend\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parse("t.mut", strings.NewReader(tt.src)); !errors.Is(err, errFormat) {
				t.Errorf("parse = %v; want errFormat", err)
			}
		})
	}
}

func TestDuplicateNamesAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	block := "mutation: same\nrule: r\nfile: f.go\ntest: ./x TestA\nold:\n\tx\nnew:\n\ty\nend\n"
	for _, f := range []string{"a.mut", "b.mut"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(block), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := loadAll(dir); !errors.Is(err, errFormat) {
		t.Errorf("loadAll = %v; want errFormat for a name used twice", err)
	}
}

func TestApply(t *testing.T) {
	root := t.TempDir()
	src := "package x\n\nfunc f() {\n\tfoo()\n\tfoo()\n\tbar()\n}\n\t\tbar()\n"
	if err := os.WriteFile(filepath.Join(root, "x.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, old, new, want string
		err                  error
	}{
		{"once", "\tfoo()\n\tbar()\n", "\tbaz()\n", "package x\n\nfunc f() {\n\tfoo()\n\tbaz()\n}\n\t\tbar()\n", nil},
		{"twice", "\tfoo()\n", "\tbaz()\n", "", errOldNotFound},
		{"absent", "\tqux()\n", "\tbaz()\n", "", errOldNotFound},
		// "\tbar()\n" also occurs inside "\t\tbar()\n", but not at a line start.
		{"line boundary", "\tbar()\n", "", "package x\n\nfunc f() {\n\tfoo()\n\tfoo()\n}\n\t\tbar()\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Mutation{Name: tt.name, File: "x.go", Old: tt.old, New: tt.new}
			got, err := m.apply(root)
			if !errors.Is(err, tt.err) || (err == nil && string(got) != tt.want) {
				t.Errorf("apply = %q, %v; want %q, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	runFailed := errors.New("exit status 1")
	tests := []struct {
		name   string
		out    string
		err    error
		killed bool
		want   Outcome
	}{
		{"caught", "--- FAIL: TestA (0.01s)\n    a_test.go:3: boom\nFAIL\nFAIL\tx\t0.1s\n", runFailed, false, Caught},
		{"passed", "ok  \tx\t0.1s\n", nil, false, NotCaught},
		{"no tests", "ok  \tx\t0.1s [no tests to run]\n", nil, false, NoTestRan},
		{"build", "# x\n./a.go:3:1: undefined: y\nFAIL\tx [build failed]\n", runFailed, false, NoCompile},
		{"timeout", "panic: test timed out after 5m0s\n--- FAIL: TestA\n", runFailed, false, TimedOut},
		{"killed", "", runFailed, true, TimedOut},
		{"oom", "fatal error: runtime: out of memory\n", runFailed, false, Crashed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classify(tt.out, tt.err, tt.killed); got != tt.want {
				t.Errorf("classify = %v; want %v", got, tt.want)
			}
		})
	}
}

// TestRunnerEndToEnd runs the runner on a throwaway module: a mutation its
// test catches, one it misses, one that does not compile and one whose old
// text is gone, and checks the overlay left the tree untouched.
func TestRunnerEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a throwaway module")
	}
	root := t.TempDir()
	files := map[string]string{
		"go.mod":      "module example.com/m\n\ngo 1.26\n",
		"x/x.go":      "package x\n\nfunc Add(a, b int) int {\n\treturn a + b\n}\n\nfunc Unused() int {\n\treturn 1\n}\n",
		"x/x_test.go": "package x\n\nimport \"testing\"\n\nfunc TestAdd(t *testing.T) {\n\tif Add(1, 2) != 3 {\n\t\tt.Fatal(\"Add(1, 2) != 3\")\n\t}\n}\n",
	}
	for name, src := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mut := func(name, old, new string) Mutation {
		return Mutation{Name: name, Rule: "r", File: "x/x.go", Pkg: "./x", Tests: []string{"TestAdd"}, Old: old, New: new}
	}
	tests := []struct {
		m    Mutation
		want Outcome
	}{
		{mut("caught", "\treturn a + b\n", "\treturn a - b\n"), Caught},
		{mut("missed", "\treturn 1\n", "\treturn 2\n"), NotCaught},
		{mut("broken", "\treturn a + b\n", "\treturn a +\n"), NoCompile},
		{mut("gone", "\treturn a * b\n", "\treturn a\n"), OldNotFound},
	}
	r := &Runner{Root: root}
	for _, tt := range tests {
		if got := r.Run(context.Background(), tt.m); got.Outcome != tt.want {
			t.Errorf("%s: %v; want %v\n%s", tt.m.Name, got.Outcome, tt.want, got.Output)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(root, "x/x.go")); string(got) != files["x/x.go"] {
		t.Errorf("the runner changed the tree: x/x.go = %q", got)
	}
}

// TestRemoveNewFiles: the runner removes the rapid .fail files a mutated
// run wrote (and the directories they alone filled), and keeps those that
// were there before.
func TestRemoveNewFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "testdata", "rapid")
	write := func(rel string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("v0.4.8#\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("TestA/kept.fail")
	before := listFiles(dir)
	write("TestA/new.fail")
	write("TestB/new.fail")
	removeNewFiles(dir, before)
	got := listFiles(dir)
	if len(got) != 1 || !got[filepath.Join(dir, "TestA", "kept.fail")] {
		t.Fatalf("files left: %v; want only TestA/kept.fail", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "TestB")); !os.IsNotExist(err) {
		t.Fatalf("TestB, emptied, still exists (stat: %v)", err)
	}
}
