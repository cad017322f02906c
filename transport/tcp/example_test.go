package tcp_test

import (
	"context"
	"fmt"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/tcp"
)

// Two nodes on loopback: a sends a one-way message to b.
func Example() {
	start := func(id transport.NodeID) *tcp.Transport {
		cfg := tcp.DefaultConfig()
		cfg.ID = id
		cfg.ListenAddr = "127.0.0.1:0" // any free port
		t, err := tcp.Listen(cfg)
		if err != nil {
			panic(err)
		}
		return t
	}
	a, b := start("a"), start("b")
	defer a.Close()
	defer b.Close()
	if err := a.AddPeer("b", b.Addr().String()); err != nil {
		panic(err)
	}

	got := make(chan transport.Message, 1) // one message; the handler never blocks
	b.Handle("greet", func(msg transport.Message) { got <- msg })
	if err := a.Send(context.Background(), "b", "greet", []byte("hello")); err != nil {
		panic(err)
	}
	msg := <-got
	fmt.Printf("%s -> %s [%s]: %s\n", msg.From, msg.To, msg.Service, msg.Payload)
	// Output: a -> b [greet]: hello
}
