package consensus_test

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// counter is a replicated integer; commands are amounts to add.
type counter struct{ value int }

func (c *counter) Apply(e consensus.Entry) any {
	n, err := strconv.Atoi(string(e.Command))
	if err != nil {
		return err
	}
	c.value += n
	return c.value
}

func (c *counter) Snapshot(w io.Writer) error { _, err := fmt.Fprint(w, c.value); return err }
func (c *counter) Restore(r io.Reader) error  { _, err := fmt.Fscan(r, &c.value); return err }

func Example() {
	net, _ := memnet.New(memnet.DefaultConfig())
	defer net.Close()
	ids := []transport.NodeID{"n1", "n2", "n3"}
	members := map[transport.NodeID]consensus.Proposer{}
	for _, id := range ids {
		tr, _ := net.Join(id)
		cfg := consensus.DefaultConfig()
		cfg.ID, cfg.Peers = id, ids
		node, err := consensus.New(cfg, tr, &counter{})
		if err != nil {
			fmt.Println(err)
			return
		}
		defer node.Close()
		members[id] = node
	}

	// The client finds the leader (after the first election) and retries.
	client, _ := consensus.NewClient(members, consensus.DefaultClientConfig())
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
	// total: 5
	// total: 15
	// total: 12
}
