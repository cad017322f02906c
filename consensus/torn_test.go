package consensus

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/distkit/distkit/transport/memnet"
)

// TestRestartAfterTornWrite simulates a crash in the middle of a WAL write:
// a stopped node's last segment gets half a record of garbage appended. The
// node must reopen (cutting the torn tail off), rejoin and catch up, and no
// acknowledged write may be lost.
func TestRestartAfterTornWrite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _ := newMemnetCluster(t, true, memnet.Faults{}, nil)
	cl := c.client()
	for i := range 10 {
		write(ctx, t, cl, fmt.Sprintf("a%d", i), "1")
	}
	victim := c.others(cl.Leader())[0]
	c.stop(victim)
	segs, err := filepath.Glob(filepath.Join(c.dirs[victim], walDirName, "*.wal"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no WAL segments in %s: %v", c.dirs[victim], err)
	}
	slices.Sort(segs)
	f, err := os.OpenFile(segs[len(segs)-1], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A record header promising 100 bytes, followed by only 7 of them.
	torn := []byte{0xde, 0xad, 0xbe, 0xef, 100, 0, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7}
	if _, err := f.Write(torn); err != nil {
		t.Fatal(err)
	}
	f.Close()

	c.start(victim)
	last := write(ctx, t, c.client(), "after", "torn")
	if err := c.sms[victim].waitApplied(ctx, last); err != nil {
		t.Fatalf("%s after a torn write: %v", victim, err)
	}
	for i := range 10 {
		if v, _ := c.sms[victim].get(fmt.Sprintf("a%d", i)); v != "1" {
			t.Fatalf("%s after a torn write: a%d = %q; want 1", victim, i, v)
		}
	}
}
