package memnet_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

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

// ExampleNetwork_Crash crashes a node: what is in flight to it is lost, and
// after Restart its Transport, with its handlers, works again.
func ExampleNetwork_Crash() {
	cfg := memnet.DefaultConfig()
	cfg.Faults = memnet.Faults{MinDelay: 10 * time.Millisecond, MaxDelay: 10 * time.Millisecond}
	net, _ := memnet.New(cfg)
	defer net.Close()
	a, _ := net.Join("a")
	b, _ := net.Join("b")
	var mu sync.Mutex // guards got
	var got []string
	b.Handle("note", func(msg transport.Message) {
		mu.Lock()
		got = append(got, string(msg.Payload))
		mu.Unlock()
	})
	ctx := context.Background()

	_ = a.Send(ctx, "b", "note", []byte("in flight at the crash"))
	_ = net.Crash("b")
	_ = a.Send(ctx, "b", "note", []byte("sent while b is down"))
	_ = net.Restart("b")
	_ = a.Send(ctx, "b", "note", []byte("after the restart"))
	_ = net.Flush(ctx)

	st := net.LinkStats("a", "b")
	fmt.Println(got)
	fmt.Printf("sent %d, delivered %d, dropped %d\n", st.Sent, st.Delivered, st.Dropped)
	// Output:
	// [after the restart]
	// sent 3, delivered 1, dropped 2
}
