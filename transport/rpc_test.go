package transport_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/internal/loopback"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair returns two connected loopback transports with an RPC each.
func pair(t testing.TB, maxPayload int, cfg transport.RPCConfig) (a, b *transport.RPC) {
	t.Helper()
	net := loopback.New(maxPayload, 1024)
	ta, err := net.Join("a")
	if err != nil {
		t.Fatal(err)
	}
	tb, err := net.Join("b")
	if err != nil {
		t.Fatal(err)
	}
	if a, err = transport.NewRPC(ta, cfg); err != nil {
		t.Fatal(err)
	}
	if b, err = transport.NewRPC(tb, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.Close()
		b.Close()
		ta.Close()
		tb.Close()
	})
	return a, b
}

func TestRPCConfigValidate(t *testing.T) {
	valid := transport.DefaultRPCConfig()
	tests := []struct {
		name   string
		mutate func(*transport.RPCConfig)
		ok     bool
	}{
		{"default", func(*transport.RPCConfig) {}, true},
		{"no timeout", func(c *transport.RPCConfig) { c.Timeout = 0 }, true},
		{"empty service", func(c *transport.RPCConfig) { c.Service = "" }, false},
		{"negative timeout", func(c *transport.RPCConfig) { c.Timeout = -time.Second }, false},
		{"zero MaxPending", func(c *transport.RPCConfig) { c.MaxPending = 0 }, false},
		{"zero MaxConcurrent", func(c *transport.RPCConfig) { c.MaxConcurrent = 0 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.mutate(&cfg)
			err := cfg.Validate()
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, transport.ErrInvalidConfig)) {
				t.Errorf("Validate() = %v; want ok=%v (ErrInvalidConfig otherwise)", err, tt.ok)
			}
		})
	}
}

func TestNewRPCRejectsBadInput(t *testing.T) {
	net := loopback.New(1024, 16)
	n, err := net.Join("a")
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	tests := []struct {
		name string
		t    transport.Transport
		cfg  transport.RPCConfig
	}{
		{"nil transport", nil, transport.DefaultRPCConfig()},
		{"zero config", n, transport.RPCConfig{}},
	}
	for _, tt := range tests {
		if _, err := transport.NewRPC(tt.t, tt.cfg); !errors.Is(err, transport.ErrInvalidConfig) {
			t.Errorf("%s: NewRPC = %v; want ErrInvalidConfig", tt.name, err)
		}
	}
}

// TestZeroRPC: an RPC not made by NewRPC gives errors, never a panic.
func TestZeroRPC(t *testing.T) {
	var r transport.RPC
	r.Handle("s", func(context.Context, transport.NodeID, []byte) ([]byte, error) { return nil, nil })
	if _, err := r.Call(context.Background(), "b", "s", nil); !errors.Is(err, transport.ErrInvalidConfig) {
		t.Errorf("zero RPC Call = %v; want ErrInvalidConfig", err)
	}
	if err := r.Close(); !errors.Is(err, transport.ErrInvalidConfig) {
		t.Errorf("zero RPC Close = %v; want ErrInvalidConfig", err)
	}
	if got := r.Stats(); got != (transport.RPCStats{}) {
		t.Errorf("zero RPC Stats() = %+v; want zero", got)
	}
}

// blockUntilDone registers a handler that signals its start and blocks
// until its context ends.
func blockUntilDone(r *transport.RPC, service string) <-chan struct{} {
	started := make(chan struct{}, 16) // more than any test starts
	r.Handle(service, func(ctx context.Context, _ transport.NodeID, _ []byte) ([]byte, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	})
	return started
}

// callBlocked starts a call from a to a handler on b that blocks until the
// call is cancelled, and returns once the handler runs. Cancel the call with
// cancel; done then yields its error.
func callBlocked(a, b *transport.RPC) (cancel context.CancelFunc, done <-chan error) {
	started := blockUntilDone(b, "block")
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1) // reported once
	go func() {
		_, err := a.Call(ctx, "b", "block", nil)
		errc <- err
	}()
	<-started
	return cancel, errc
}

func TestCallFailsFastWhenTooManyPending(t *testing.T) {
	cfg := transport.DefaultRPCConfig()
	cfg.MaxPending = 1
	a, b := pair(t, 1024, cfg)
	cancel, done := callBlocked(a, b)
	if _, err := a.Call(context.Background(), "b", "block", nil); !errors.Is(err, transport.ErrQueueFull) {
		t.Errorf("second Call with MaxPending 1 = %v; want ErrQueueFull", err)
	}
	cancel()
	<-done
	// The cancelled call freed its slot at once.
	b.Handle("echo", func(_ context.Context, _ transport.NodeID, req []byte) ([]byte, error) { return req, nil })
	if got, err := a.Call(context.Background(), "b", "echo", []byte("x")); err != nil || string(got) != "x" {
		t.Errorf("Call after the cancel = %q, %v; want %q, nil", got, err, "x")
	}
}

func TestCallOverloaded(t *testing.T) {
	cfg := transport.DefaultRPCConfig()
	cfg.MaxConcurrent = 1
	a, b := pair(t, 1024, cfg)
	cancel, done := callBlocked(a, b)
	_, err := a.Call(context.Background(), "b", "block", nil)
	var re *transport.RemoteError
	if !errors.As(err, &re) || re.Code != transport.CodeOverloaded || !errors.Is(err, transport.ErrOverloaded) {
		t.Errorf("Call beyond MaxConcurrent = %v; want a RemoteError with CodeOverloaded", err)
	}
	cancel()
	<-done
	if s := b.Stats(); s.Rejected != 1 || s.Served != 1 {
		t.Errorf("callee Stats() = %+v; want 1 served, 1 rejected", s)
	}
}

func TestCallResponseTooLarge(t *testing.T) {
	a, b := pair(t, 1024, transport.DefaultRPCConfig())
	b.Handle("big", func(context.Context, transport.NodeID, []byte) ([]byte, error) {
		return make([]byte, 4096), nil
	})
	_, err := a.Call(context.Background(), "b", "big", nil)
	var re *transport.RemoteError
	if !errors.As(err, &re) || re.Code != transport.CodeResponseTooLarge || !errors.Is(err, transport.ErrMessageTooLarge) {
		t.Errorf("Call with an oversized response = %v; want a RemoteError with CodeResponseTooLarge", err)
	}
	if _, err := a.Call(context.Background(), "b", "big", make([]byte, 4096)); !errors.Is(err, transport.ErrMessageTooLarge) {
		t.Errorf("Call with an oversized request = %v; want ErrMessageTooLarge", err)
	}
}

func TestCallDefaultTimeout(t *testing.T) {
	cfg := transport.DefaultRPCConfig()
	cfg.Timeout = 50 * time.Millisecond
	a, b := pair(t, 1024, cfg)
	blockUntilDone(b, "block")
	if _, err := a.Call(context.Background(), "b", "block", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Call without a deadline past RPCConfig.Timeout = %v; want context.DeadlineExceeded", err)
	}
}

func TestCallRejectsLongServiceName(t *testing.T) {
	a, _ := pair(t, 1024, transport.DefaultRPCConfig())
	if _, err := a.Call(context.Background(), "b", string(bytes.Repeat([]byte("s"), 256)), nil); err == nil {
		t.Error("Call with a 256-byte service name = nil error; want an error")
	}
}

func TestCallWithExpiredContext(t *testing.T) {
	a, _ := pair(t, 1024, transport.DefaultRPCConfig())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := a.Call(ctx, "b", "x", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Call with a cancelled context = %v; want context.Canceled", err)
	}
	ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if _, err := a.Call(ctx, "b", "x", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Call past its deadline = %v; want context.DeadlineExceeded", err)
	}
}

func TestRemoteErrorMessage(t *testing.T) {
	err := &transport.RemoteError{From: "n2", Service: "kv.get", Code: transport.CodeHandler, Message: "no such key"}
	want := "transport: kv.get on n2: handler error: no such key"
	if got := err.Error(); got != want {
		t.Errorf("Error() = %q; want %q", got, want)
	}
}

// TestRemoteErrorUnwrap checks which sentinel each error code matches
// with errors.Is, as Call documents.
func TestRemoteErrorUnwrap(t *testing.T) {
	sentinels := []error{transport.ErrNoHandler, transport.ErrOverloaded, transport.ErrMessageTooLarge, context.DeadlineExceeded}
	tests := []struct {
		code transport.ErrorCode
		want error // nil: none of the sentinels
	}{
		{transport.CodeHandler, nil},
		{transport.CodeNoHandler, transport.ErrNoHandler},
		{transport.CodeOverloaded, transport.ErrOverloaded},
		{transport.CodePanic, nil},
		{transport.CodeResponseTooLarge, transport.ErrMessageTooLarge},
		{transport.CodeDeadlineExceeded, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		err := error(&transport.RemoteError{From: "n2", Service: "s", Code: tt.code})
		for _, s := range sentinels {
			if got := errors.Is(err, s); got != (s == tt.want) {
				t.Errorf("errors.Is(RemoteError{Code: %v}, %v) = %v; want %v", tt.code, s, got, s == tt.want)
			}
		}
	}
}

// TestCallSendFailureFreesSlot checks that a call whose request the
// transport refuses returns the transport's error and leaves no call
// pending, so it does not use up MaxPending.
func TestCallSendFailureFreesSlot(t *testing.T) {
	cfg := transport.DefaultRPCConfig()
	cfg.MaxPending = 1
	a, _ := pair(t, 1024, cfg)
	tests := []struct {
		name string
		to   transport.NodeID
		req  []byte
		want error
	}{
		{"unknown peer", "nobody", nil, transport.ErrUnknownPeer},
		{"too large", "b", make([]byte, 4096), transport.ErrMessageTooLarge},
		{"unknown peer again", "nobody", nil, transport.ErrUnknownPeer},
	}
	for _, tt := range tests {
		if _, err := a.Call(context.Background(), tt.to, "echo", tt.req); !errors.Is(err, tt.want) {
			t.Errorf("%s: Call = %v; want %v", tt.name, err, tt.want)
		}
	}
	if p := a.Stats().Pending; p != 0 {
		t.Errorf("Stats().Pending = %d after calls that could not be sent; want 0", p)
	}
}

// BenchmarkRPCCall measures a call round trip over the in-process loopback
// transport: the cost of the RPC layer itself, without sockets.
func BenchmarkRPCCall(b *testing.B) {
	for _, size := range []int{16, 1024} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			a, srv := pair(b, 1<<20, transport.DefaultRPCConfig())
			srv.Handle("echo", func(_ context.Context, _ transport.NodeID, req []byte) ([]byte, error) { return req, nil })
			req := make([]byte, size)
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := a.Call(ctx, "b", "echo", req); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
		})
	}
}

// TestTwoRPCsShareATransport checks that protocols with their own RPC
// (each on its own RPCConfig.Service) coexist on one Transport.
func TestTwoRPCsShareATransport(t *testing.T) {
	net := loopback.New(1024, 64)
	ta, err := net.Join("a")
	if err != nil {
		t.Fatal(err)
	}
	defer ta.Close()
	tb, err := net.Join("b")
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	rpcs := map[string][2]*transport.RPC{}
	for _, proto := range []string{"raft", "txn"} {
		cfg := transport.DefaultRPCConfig()
		cfg.Service = proto + ".rpc"
		a, err := transport.NewRPC(ta, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		b, err := transport.NewRPC(tb, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		b.Handle("whoami", func(context.Context, transport.NodeID, []byte) ([]byte, error) { return []byte(proto), nil })
		rpcs[proto] = [2]*transport.RPC{a, b}
	}
	for proto, r := range rpcs {
		if got, err := r[0].Call(context.Background(), "b", "whoami", nil); err != nil || string(got) != proto {
			t.Errorf("%s RPC: Call(whoami) = %q, %v; want %q, nil", proto, got, err, proto)
		}
	}
}
