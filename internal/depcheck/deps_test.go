package depcheck

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// allowedModules are the modules the README lists for production code.
var allowedModules = []string{
	"github.com/distkit/distkit",
	"github.com/cespare/xxhash/v2",
	"github.com/google/uuid",
	"golang.org/x/sync",
}

// testHelpers may import "testing" (and goleak): the README names them.
var testHelpers = []string{
	"github.com/distkit/distkit/transport/transporttest",
	"github.com/distkit/distkit/sim",
	"github.com/distkit/distkit/detector/detectorsim",
	"github.com/distkit/distkit/election/electionsim",
	"github.com/distkit/distkit/idempotency/storetest",
	"github.com/distkit/distkit/lock/locktest",
	"github.com/distkit/distkit/txn/rmtest",
	"github.com/distkit/distkit/consensus/consensustest",
}

// TestProductionDependencies lists every non-test dependency of every
// library package (examples and internal packages excluded) and checks it
// against the README.
func TestProductionDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list over the module")
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	// Every package's transitive imports, and the module of every package
	// involved: two runs of go list, not one per package.
	modOf := map[string]string{}
	for _, line := range goList(t, root, "-deps", "-f", "{{.ImportPath}} {{if .Module}}{{.Module.Path}}{{else}}std{{end}}", "./...") {
		path, mod, _ := strings.Cut(line, " ")
		modOf[path] = mod
	}
	for _, line := range goList(t, root, "-f", "{{.ImportPath}} {{join .Deps \" \"}}", "./...") {
		fields := strings.Fields(line)
		pkg, deps := fields[0], fields[1:]
		if strings.Contains(pkg, "/examples/") || strings.Contains(pkg, "/internal/") {
			continue
		}
		helper := slices.Contains(testHelpers, pkg)
		for _, path := range deps {
			mod := modOf[path]
			switch {
			case mod == "std" && path == "testing" && !helper:
				t.Errorf("%s imports testing; only the README's test helpers may", pkg)
			case mod == "std":
			case mod == "go.uber.org/goleak" && pkg == "github.com/distkit/distkit/transport/transporttest":
			case !slices.Contains(allowedModules, mod):
				t.Errorf("%s depends on %s (module %q), which the README does not list", pkg, path, mod)
			}
		}
	}
}

func goList(t *testing.T, dir string, args ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}
