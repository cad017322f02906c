package transport_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/tcp"
)

// Request/response calls between two nodes over TCP on loopback; the same
// code runs on any Transport.
func ExampleRPC() {
	start := func(id transport.NodeID) (*tcp.Transport, *transport.RPC) {
		cfg := tcp.DefaultConfig()
		cfg.ID = id
		t, err := tcp.Listen(cfg)
		if err != nil {
			panic(err)
		}
		rpc, err := transport.NewRPC(t, transport.DefaultRPCConfig())
		if err != nil {
			panic(err)
		}
		return t, rpc
	}
	t1, client := start("n1")
	t2, server := start("n2")
	defer t1.Close()
	defer t2.Close()
	defer client.Close()
	defer server.Close()
	// n1 needs n2's address; n2 learns n1's from n1's handshake
	// (tcp.Config.LearnPeers) and sends the responses there.
	_ = t1.AddPeer("n2", t2.Addr().String())

	server.Handle("upper", func(ctx context.Context, from transport.NodeID, req []byte) ([]byte, error) {
		if len(req) == 0 {
			return nil, errors.New("empty request")
		}
		return []byte(strings.ToUpper(string(req))), nil
	})

	ctx := context.Background()
	resp, err := client.Call(ctx, "n2", "upper", []byte("hello"))
	fmt.Printf("%s %v\n", resp, err)

	_, err = client.Call(ctx, "n2", "upper", nil)
	var re *transport.RemoteError
	if errors.As(err, &re) {
		fmt.Printf("remote %s: %s\n", re.Code, re.Message)
	}

	_, err = client.Call(ctx, "n2", "lower", []byte("x"))
	fmt.Println(errors.Is(err, transport.ErrNoHandler))
	// Output:
	// HELLO <nil>
	// remote handler error: empty request
	// true
}
