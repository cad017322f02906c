package dkpostgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/distkit/distkit/internal/benchload"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
	"github.com/distkit/distkit/txn"
)

// BenchmarkPostgresTwoPhaseCommit: two databases as the participants
// (PREPARE TRANSACTION / COMMIT PREPARED in each), a coordinator on
// memnet with in-memory logs, 16 concurrent transfers on disjoint
// accounts.
func BenchmarkPostgresTwoPhaseCommit(b *testing.B) {
	ctx := context.Background()
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { net.Close() })
	cfg := txn.DefaultConfig()
	table := unique("accounts")
	banks := []transport.NodeID{"bank_a", "bank_b"}
	const workers = 16
	for i, bank := range banks {
		pool := newPool(b, []string{"DISTKIT_POSTGRES_URL_A", "DISTKIT_POSTGRES_URL_B"}[i])
		rm := newRM(b, pool, table, unique(string(bank))+"-")
		for w := range workers {
			id := uuid.New()
			in, err := rm.Prepare(ctx, id, encode(b, txn.Op{Kind: txn.OpPut, Key: fmt.Sprintf("acct-%d", w), Amount: 1 << 40}))
			if err != nil {
				b.Fatal(err)
			}
			if err := rm.Commit(id, in); err != nil {
				b.Fatal(err)
			}
		}
		tr, err := net.Join(bank)
		if err != nil {
			b.Fatal(err)
		}
		p, err := txn.NewParticipant(tr, txn.NewMemoryLog(), rm, cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { p.Close() })
	}
	tr, err := net.Join("coordinator")
	if err != nil {
		b.Fatal(err)
	}
	c, err := txn.NewCoordinator(tr, txn.NewMemoryLog(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	works := make([][]txn.Work, workers)
	for w := range works {
		key := fmt.Sprintf("acct-%d", w)
		works[w] = []txn.Work{
			{Participant: "bank_a", Ops: encode(b, txn.Op{Kind: txn.OpAdd, Key: key, Amount: -1})},
			{Participant: "bank_b", Ops: encode(b, txn.Op{Kind: txn.OpAdd, Key: key, Amount: 1})},
		}
	}
	benchload.Run(b, workers, "txn/s", func(ctx context.Context, w int) error {
		if _, err := c.Run(ctx, works[w]...); err != nil {
			return fmt.Errorf("Run() = %w", err)
		}
		return nil
	})
}
