package main

import (
	"bufio"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Mutation is one block of a .mut file: a deliberate breakage of a safety
// rule and the test that must fail under it.
type Mutation struct {
	Name  string   // unique across all files
	Rule  string   // the rule, one sentence
	File  string   // the mutated file, relative to the repository root
	Pkg   string   // the package pattern to test, e.g. ./internal/wal
	Tests []string // the test functions, run as ^(A|B)$
	Old   string   // whole lines to replace, each ending in "\n"
	New   string   // replacement lines, each ending in "\n" (may be empty)

	Source string // the .mut file, for messages
	Line   int    // the line of "mutation:", for messages
}

// Where names the block for messages: "raft-rules.mut:12 (name)".
func (m Mutation) Where() string {
	return fmt.Sprintf("%s:%d (%s)", filepath.Base(m.Source), m.Line, m.Name)
}

// RunPattern returns the -run argument: the tests, anchored.
func (m Mutation) RunPattern() string {
	return "^(" + strings.Join(m.Tests, "|") + ")$"
}

// errFormat is wrapped by every syntax error in a .mut file.
var errFormat = errors.New("mutate: bad mutation file")

// parseFile reads one .mut file (format: testdata/README.md).
func parseFile(path string) ([]Mutation, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mutate: %w", err)
	}
	defer f.Close()
	return parse(path, f)
}

// parse reads the blocks of one .mut file from r; name is used in messages.
func parse(name string, r io.Reader) ([]Mutation, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	var (
		out    []Mutation
		cur    *Mutation
		state  = "outside" // outside, header, old, new
		lineNo int
	)
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s:%d: %s", errFormat, filepath.Base(name), lineNo, fmt.Sprintf(format, args...))
	}
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		switch state {
		case "outside":
			trimmed := strings.TrimSpace(line)
			switch {
			case trimmed == "" || strings.HasPrefix(trimmed, "#"):
			case strings.HasPrefix(line, "mutation:"):
				cur = &Mutation{Name: strings.TrimSpace(strings.TrimPrefix(line, "mutation:")), Source: name, Line: lineNo}
				if cur.Name == "" {
					return nil, bad("empty mutation name")
				}
				state = "header"
			default:
				return nil, bad("expected \"mutation:\", a comment or a blank line, got %q", line)
			}
		case "header":
			key, val, ok := strings.Cut(line, ":")
			val = strings.TrimSpace(val)
			switch {
			case strings.TrimSpace(line) == "":
				// blank lines between header keys are allowed
			case !ok:
				return nil, bad("expected \"key: value\" in the header of %s, got %q", cur.Name, line)
			case key == "rule":
				cur.Rule = val
			case key == "file":
				cur.File = val
			case key == "test":
				fields := strings.Fields(val)
				if len(fields) != 2 {
					return nil, bad("test: want \"PKG TestA|TestB\", got %q", val)
				}
				cur.Pkg = fields[0]
				cur.Tests = strings.Split(fields[1], "|")
			case key == "old" && val == "":
				state = "old"
			default:
				return nil, bad("unknown header key %q in %s", key, cur.Name)
			}
		case "old", "new":
			// Source lines are indented or blank; a header line here is a
			// block whose "new:" or "end" went missing (a bad merge of two
			// files' appended blocks).
			if strings.HasPrefix(line, "mutation:") {
				return nil, bad("block %s: a new block starts before this one ended", cur.Name)
			}
			if state == "old" {
				if line == "new:" {
					state = "new"
					continue
				}
				cur.Old += line + "\n"
				continue
			}
			if line == "end" {
				if err := cur.check(); err != nil {
					return nil, bad("%v", err)
				}
				out = append(out, *cur)
				cur, state = nil, "outside"
				continue
			}
			cur.New += line + "\n"
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("mutate: %s: %w", name, err)
	}
	if state != "outside" {
		return nil, bad("block %s not closed by \"end\"", cur.Name)
	}
	return out, nil
}

var testName = regexp.MustCompile(`^(Test|Example|Fuzz)[A-Za-z0-9_]*$`)

// check validates one block on its own (not against the tree).
func (m *Mutation) check() error {
	switch {
	case m.Rule == "":
		return fmt.Errorf("%s: missing \"rule:\"", m.Name)
	case m.File == "":
		return fmt.Errorf("%s: missing \"file:\"", m.Name)
	case filepath.IsAbs(m.File) || strings.HasPrefix(filepath.Clean(m.File), ".."):
		return fmt.Errorf("%s: file %q must be relative to the repository root", m.Name, m.File)
	case m.Pkg == "":
		return fmt.Errorf("%s: missing \"test:\"", m.Name)
	case !strings.HasPrefix(m.Pkg, "./") || strings.Contains(m.Pkg, "..."):
		return fmt.Errorf("%s: package %q must be one ./relative package", m.Name, m.Pkg)
	case strings.TrimSpace(m.Old) == "":
		return fmt.Errorf("%s: empty \"old:\" text", m.Name)
	case m.Old == m.New:
		return fmt.Errorf("%s: the \"new:\" text is the same as \"old:\"", m.Name)
	}
	for _, t := range m.Tests {
		if !testName.MatchString(t) {
			return fmt.Errorf("%s: %q is not a top-level test function name", m.Name, t)
		}
	}
	return nil
}

// loadAll parses every *.mut file in dir, sorted by file name, and checks
// that mutation names are unique across files.
func loadAll(dir string) ([]Mutation, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.mut"))
	if err != nil {
		return nil, fmt.Errorf("mutate: %w", err)
	}
	sort.Strings(paths)
	var all []Mutation
	seen := make(map[string]string)
	for _, p := range paths {
		ms, err := parseFile(p)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			if prev, ok := seen[m.Name]; ok {
				return nil, fmt.Errorf("%w: %s: name %q already used at %s", errFormat, m.Where(), m.Name, prev)
			}
			seen[m.Name] = m.Where()
		}
		all = append(all, ms...)
	}
	return all, nil
}

// apply returns the file's contents with the mutation applied, or an error
// wrapping errOldNotFound when old: does not occur exactly once.
func (m Mutation) apply(root string) ([]byte, error) {
	src, err := os.ReadFile(filepath.Join(root, m.File))
	if err != nil {
		return nil, fmt.Errorf("mutate: %s: %w", m.Where(), err)
	}
	s := string(src)
	at := lineMatches(s, m.Old)
	switch n := len(at); n {
	case 1:
	case 0:
		return nil, fmt.Errorf("%w: %s: old text does not occur in %s", errOldNotFound, m.Where(), m.File)
	default:
		return nil, fmt.Errorf("%w: %s: old text occurs %d times in %s", errOldNotFound, m.Where(), n, m.File)
	}
	i := at[0]
	return []byte(s[:i] + m.New + s[i+len(m.Old):]), nil
}

// errOldNotFound is wrapped when a block's old: text is not in its file
// exactly once (the code moved on and the block must be updated).
var errOldNotFound = errors.New("mutate: old text not found")

// lineMatches returns the offsets at which old occurs in s starting at a
// line boundary.
func lineMatches(s, old string) []int {
	var at []int
	for off := 0; off < len(s); {
		i := strings.Index(s[off:], old)
		if i < 0 {
			break
		}
		i += off
		if i == 0 || s[i-1] == '\n' {
			at = append(at, i)
		}
		off = i + 1
	}
	return at
}

// testFuncs returns the names of the top-level Test/Example/Fuzz functions
// declared in the _test.go files of dir.
func testFuncs(dir string) (map[string]bool, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil {
		return nil, err
	}
	names := make(map[string]bool)
	fset := token.NewFileSet()
	for _, p := range paths {
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, fmt.Errorf("mutate: %w", err)
		}
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && testName.MatchString(fd.Name.Name) {
				names[fd.Name.Name] = true
			}
		}
	}
	return names, nil
}

// validate checks a block against the tree at root: the file exists, old:
// occurs in it exactly once, the package exists and declares every named
// test.
func (m Mutation) validate(root string) error {
	if _, err := m.apply(root); err != nil {
		return err
	}
	dir := filepath.Join(root, filepath.FromSlash(m.Pkg))
	funcs, err := testFuncs(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", m.Where(), err)
	}
	for _, t := range m.Tests {
		if !funcs[t] {
			return fmt.Errorf("mutate: %s: no func %s in %s/*_test.go", m.Where(), t, m.Pkg)
		}
	}
	return nil
}

// repoRoot walks up from dir to the directory holding go.mod.
func repoRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("mutate: no go.mod above the working directory")
		}
		dir = parent
	}
}
