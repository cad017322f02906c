//go:build unix

package crashtest

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestTornWALTailIsLoggedWithoutVerbose kills a one-node cluster, tears the
// last byte off its newest WAL segment and restarts it without -v: the cut
// must show in the node's log (kvstore logs at WARN by default).
func TestTornWALTailIsLoggedWithoutVerbose(t *testing.T) {
	if testing.Short() {
		t.Skip("crashtest: builds and runs the kvstore binary; skipped with -short")
	}
	bin := buildKVStore(t)
	dir := t.TempDir()
	c := newCluster(t, bin, dir, 1, time.Now())
	c.quiet = true
	nd := c.nodes[0]
	ctx := context.Background()
	if err := c.start(nd); err != nil {
		t.Fatal(err)
	}
	if err := c.waitLeader(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	cl := &client{c: c, h: &history{}, t: t}
	for _, k := range []string{"a", "b", "c"} {
		if o := cl.do(ctx, nd, kvInput{Op: "put", Key: k, Value: "v"}); o != answered {
			t.Fatalf("PUT %s was not answered", k)
		}
	}
	c.kill(nd)

	segs, err := filepath.Glob(filepath.Join(nd.dataDir, "wal", "*.wal"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no WAL segments in %s (%v)", nd.dataDir, err)
	}
	last := slices.Max(segs)
	fi, err := os.Stat(last)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(last, fi.Size()-1); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(nd.logPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.start(nd); err != nil {
		t.Fatal(err)
	}
	if err := c.waitLeader(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	c.kill(nd) // the log is complete once the process is gone
	all, err := os.ReadFile(nd.logPath)
	if err != nil {
		t.Fatal(err)
	}
	restart := string(all[len(before):])
	if !strings.Contains(restart, "level=WARN") || !strings.Contains(restart, "wal:") {
		t.Fatalf("restart after a torn WAL tail logged no WAL warning without -v:\n%s", restart)
	}
	if strings.Contains(restart, "level=INFO") {
		t.Fatalf("a node without -v logged at INFO:\n%s", restart)
	}
}
