package consensus

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/distkit/distkit/transport/memnet"
)

// TestDiskRecoveryRefusedNodeRejoinsEmpty is the documented recovery path,
// end to end: a node whose data directory lost its hard state refuses to
// start (ErrCorrupt), instead of starting at term 0 having forgotten its
// vote; its operator moves the directory aside and starts it empty with the
// same ID and peers; it catches up from the leader by snapshot and holds
// every acknowledged write.
func TestDiskRecoveryRefusedNodeRejoinsEmpty(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _ := newMemnetCluster(t, true, memnet.Faults{}, func(cfg *Config) {
		cfg.SnapshotThreshold, cfg.SnapshotRetainEntries = 20, 5
	})
	cl := c.client()
	acked := map[string]string{}
	writeKeys(ctx, t, cl, acked, "a", "1", 30)
	victim := c.others(cl.Leader())[0]
	c.stop(victim)

	// The disk loses the hard state: the node must refuse to start.
	if err := os.Remove(filepath.Join(c.dirs[victim], hardStateFile)); err != nil {
		t.Fatal(err)
	}
	if n, err := New(c.cfg(victim), c.trs[victim], newKV()); !errors.Is(err, ErrCorrupt) {
		if n != nil {
			n.Close()
		}
		t.Fatalf("New(%s) with its hard state gone = %v; want ErrCorrupt", victim, err)
	}

	// Recovery: move the data directory aside, start empty.
	if err := os.Rename(c.dirs[victim], c.dirs[victim]+".corrupt"); err != nil {
		t.Fatal(err)
	}
	writeKeys(ctx, t, cl, acked, "b", "2", 30) // the leader compacts past what the victim had
	c.start(victim)
	last := writeKeys(ctx, t, c.client(), acked, "c", "3", 5)
	if err := c.sms[victim].waitApplied(ctx, last); err != nil {
		t.Fatalf("%s after recovery: %v", victim, err)
	}
	for k, v := range acked {
		if got, _ := c.sms[victim].get(k); got != v {
			t.Fatalf("%s after recovery: %s = %q; want %q", victim, k, got, v)
		}
	}
	snap, err := c.nodes[victim].store.Snapshot()
	if err != nil || snap.Meta.Index == 0 {
		t.Fatalf("%s after recovery: snapshot %+v, %v; want it to have caught up by snapshot", victim, snap.Meta, err)
	}
}
