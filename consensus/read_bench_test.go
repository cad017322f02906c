package consensus

import (
	"context"
	"testing"
	"time"

	"github.com/distkit/distkit/internal/benchload"
	"github.com/distkit/distkit/transport"
)

// BenchmarkRaftRead compares linearizable reads on the leader of a
// three-node in-memory cluster (memnet, no disk) from 64 readers:
// readindex (Read: one heartbeat round per batch of the reads that arrive
// while the previous batch is being asked), lease (Read with
// Config.LeaseReads: while the lease holds, served outside the node's loop
// off the published commit index) and log (a read through the log: an
// empty command proposed and applied). Compare the variants of one run:
// on a loaded machine the absolute figures move a lot.
func BenchmarkRaftRead(b *testing.B) {
	const readers = 64
	for _, mode := range []string{"readindex", "lease", "log"} {
		b.Run(mode, func(b *testing.B) {
			trs := memnetTransports(b)(three)
			nodes := map[transport.NodeID]*Node{}
			defer func() {
				for _, n := range nodes {
					n.Close()
				}
				for _, tr := range trs {
					tr.Close()
				}
			}()
			for i, id := range three {
				cfg := DefaultConfig()
				cfg.ID, cfg.Peers = id, three
				cfg.LeaseReads, cfg.LeaseDriftTicks = mode == "lease", 2
				n, err := New(cfg, trs[i], &countSM{})
				if err != nil {
					b.Fatal(err)
				}
				nodes[id] = n
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			id, err := nodes[three[0]].WaitLeader(ctx)
			if err != nil {
				b.Fatal(err)
			}
			leader := nodes[id]
			if _, err := leader.Propose(ctx, []byte("warm-up")); err != nil {
				b.Fatal(err)
			}
			empty := []byte{}
			benchload.Run(b, readers, "reads/s", func(ctx context.Context, _ int) error {
				if mode == "log" {
					_, err := leader.Propose(ctx, empty)
					return err
				}
				return leader.Read(ctx)
			})
		})
	}
}
