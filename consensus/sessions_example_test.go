package consensus_test

import (
	"context"
	"fmt"
	"time"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// ExampleWithSessions wraps the state machine with client sessions, so
// that the Client's retries (after a timeout, a leader crash) can never
// apply a command twice.
func ExampleWithSessions() {
	net, _ := memnet.New(memnet.DefaultConfig())
	defer net.Close()
	ids := []transport.NodeID{"n1", "n2", "n3"}
	members := map[transport.NodeID]consensus.Proposer{}
	for _, id := range ids {
		tr, _ := net.Join(id)
		cfg := consensus.DefaultConfig()
		cfg.ID, cfg.Peers = id, ids
		// Every node wraps its state machine, with the same settings.
		sm, err := consensus.WithSessions(&counter{}, consensus.DefaultSessionConfig())
		if err != nil {
			fmt.Println(err)
			return
		}
		node, err := consensus.New(cfg, tr, sm)
		if err != nil {
			fmt.Println(err)
			return
		}
		defer node.Close()
		members[id] = node
	}

	// The nodes keep sessions, so the client uses one: it registers it on
	// the first Propose and stamps every command.
	client, _ := consensus.NewClient(members, consensus.DefaultClientConfig())
	fmt.Println("sessions:", client.Sessions())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, amount := range []string{"5", "10", "-3"} {
		total, err := client.Propose(ctx, []byte(amount))
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("total:", total)
	}
	// Output:
	// sessions: true
	// total: 5
	// total: 15
	// total: 12
}
