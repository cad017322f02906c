package memnet_test

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// Example builds a three-node network, cuts node c off with a partition,
// and reads the counters: the messages to c are dropped until the
// partition heals.
func Example() {
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer net.Close()

	var mu sync.Mutex // guards got
	got := map[transport.NodeID]int{}
	for _, id := range []transport.NodeID{"a", "b", "c"} {
		tr, err := net.Join(id)
		if err != nil {
			fmt.Println(err)
			return
		}
		tr.Handle("hello", func(msg transport.Message) {
			mu.Lock()
			got[msg.To]++
			mu.Unlock()
		})
	}
	a, _ := net.Join("sender")
	ctx := context.Background()
	broadcast := func() {
		for _, to := range []transport.NodeID{"a", "b", "c"} {
			_ = a.Send(ctx, to, "hello", []byte("hi"))
		}
		_ = net.Flush(ctx) // wait until every message is delivered or dropped
	}

	broadcast()
	net.Partition([]transport.NodeID{"c"}) // c alone; everyone else together
	broadcast()
	net.Heal()
	broadcast()

	ids := make([]string, 0, len(got))
	for id, n := range got {
		ids = append(ids, fmt.Sprintf("%s=%d", id, n))
	}
	sort.Strings(ids)
	st := net.LinkStats("sender", "c")
	fmt.Println("received:", ids)
	fmt.Printf("sender->c: sent %d, delivered %d, dropped %d\n", st.Sent, st.Delivered, st.Dropped)
	// Output:
	// received: [a=3 b=3 c=2]
	// sender->c: sent 3, delivered 2, dropped 1
}
