package txn_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
	"github.com/distkit/distkit/txn"
)

// Transfer 100 from account A at bank1 to account B at bank2, then try to
// transfer more than A holds.
func Example() {
	net, _ := memnet.New(memnet.DefaultConfig())
	defer net.Close()
	cfg := txn.DefaultConfig()

	stores := map[string]*txn.Store{}
	for _, bank := range []string{"bank1", "bank2"} {
		tr, _ := net.Join(transport.NodeID(bank))
		store := txn.NewStore()
		p, err := txn.NewParticipant(tr, txn.NewMemoryLog(), store, cfg)
		if err != nil {
			fmt.Println(err)
			return
		}
		defer p.Close()
		stores[bank] = store
	}
	stores["bank1"].Set("A", 150)

	tr, _ := net.Join("coordinator")
	c, err := txn.NewCoordinator(tr, txn.NewMemoryLog(), cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	transfer := func(amount int64) error {
		debit, _ := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: "A", Amount: -amount})
		credit, _ := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: "B", Amount: amount})
		_, err := c.Run(context.Background(),
			txn.Work{Participant: "bank1", Ops: debit},
			txn.Work{Participant: "bank2", Ops: credit})
		return err
	}

	fmt.Println("transfer 100:", transfer(100) == nil)
	err = transfer(100)
	var abort *txn.AbortError
	if errors.As(err, &abort) {
		fmt.Println("transfer 100 again: aborted,", abort.Participants[0], "voted NO:", errors.Is(err, txn.ErrVotedNo))
	}
	_ = c.Quiesce(context.Background()) // wait until both banks applied everything
	a, _ := stores["bank1"].Get("A")
	b, _ := stores["bank2"].Get("B")
	fmt.Println("A =", a, "B =", b)
	// Output:
	// transfer 100: true
	// transfer 100 again: aborted, bank1 voted NO: true
	// A = 50 B = 100
}
