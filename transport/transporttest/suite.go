package transporttest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/distkit/distkit/transport"
)

// Factory creates a connected, fault-free cluster: one Transport per id, in
// the order of ids. See the package documentation for its duties.
type Factory func(t *testing.T, ids []transport.NodeID) []transport.Transport

// Options describe what the implementation under test promises.
type Options struct {
	// FIFO says the implementation delivers the messages from one node to
	// another in the order Send accepted them (while the link stays up).
	FIFO bool
	// MaxPayload is the largest payload the factory's transports accept
	// when sent to service "large" (which matters for transports whose
	// limit covers the service name too). The suite checks that
	// MaxPayload+1 bytes fail with ErrMessageTooLarge and that payloads of
	// MaxPayload/2 and exactly MaxPayload bytes arrive intact. Keep it
	// small (say 64 KiB to 1 MiB) so the suite stays fast. 0 skips these
	// checks.
	MaxPayload int
	// Timeout bounds every wait for a delivery or a response; a wait that
	// takes longer fails the test. 0 means 10 s.
	Timeout time.Duration
}

// Run runs the conformance suite against the transports newCluster builds.
func Run(t *testing.T, newCluster Factory, opts Options) {
	t.Helper()
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	s := &suite{newCluster: newCluster, opts: opts}
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"IDs", s.testIDs},
		{"Delivery", s.testDelivery},
		{"Services", s.testServices},
		{"FIFO", s.testFIFO},
		{"ConcurrentSenders", s.testConcurrentSenders},
		{"LargeMessage", s.testLargeMessage},
		{"TooLarge", s.testTooLarge},
		{"UnknownPeer", s.testUnknownPeer},
		{"PanickingHandler", s.testPanickingHandler},
		{"Close", s.testClose},
		{"NoLeaks", s.testNoLeaks},
		{"Call", s.testCall},
		{"CallErrors", s.testCallErrors},
		{"CallConcurrent", s.testCallConcurrent},
		{"CallCancel", s.testCallCancel},
		{"CallDeadline", s.testCallDeadline},
		{"CallRPCClose", s.testCallRPCClose},
		{"CallTransportClose", s.testCallTransportClose},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

type suite struct {
	newCluster Factory
	opts       Options
}

// cluster builds n transports named n1..nN and closes them when t ends.
func (s *suite) cluster(t *testing.T, n int) []transport.Transport {
	t.Helper()
	ids := make([]transport.NodeID, n)
	for i := range ids {
		ids[i] = transport.NodeID(fmt.Sprintf("n%d", i+1))
	}
	ts := s.newCluster(t, ids)
	if len(ts) != n {
		t.Fatalf("factory returned %d transports for %d ids", len(ts), n)
	}
	t.Cleanup(func() {
		for _, tr := range ts {
			if err := tr.Close(); err != nil {
				t.Errorf("Close(%s) = %v; want nil", tr.ID(), err)
			}
		}
	})
	return ts
}

// rpcs starts an RPC on every transport and closes them when t ends.
func (s *suite) rpcs(t *testing.T, ts []transport.Transport) []*transport.RPC {
	t.Helper()
	rs := make([]*transport.RPC, len(ts))
	for i, tr := range ts {
		cfg := transport.DefaultRPCConfig()
		cfg.Timeout = s.opts.Timeout
		r, err := transport.NewRPC(tr, cfg)
		if err != nil {
			t.Fatalf("NewRPC(%s) = %v", tr.ID(), err)
		}
		rs[i] = r
		t.Cleanup(func() { _ = r.Close() })
	}
	return rs
}

func (s *suite) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// collector records the messages a handler receives.
type collector struct {
	// mu guards msgs.
	mu   sync.Mutex
	msgs []transport.Message
	// notify is signalled (without blocking) after every message; size 1
	// so that a signal sent while nobody waits is not lost.
	notify chan struct{}
}

func newCollector() *collector { return &collector{notify: make(chan struct{}, 1)} }

func (c *collector) handle(msg transport.Message) {
	c.mu.Lock()
	c.msgs = append(c.msgs, msg)
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

// wait blocks until at least n messages arrived and returns them.
func (c *collector) wait(t *testing.T, n int, timeout time.Duration) []transport.Message {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		if len(c.msgs) >= n {
			msgs := append([]transport.Message(nil), c.msgs...)
			c.mu.Unlock()
			return msgs
		}
		got := len(c.msgs)
		c.mu.Unlock()
		select {
		case <-c.notify:
		case <-deadline.C:
			t.Fatalf("received %d messages within %v; want %d", got, timeout, n)
		}
	}
}

func (s *suite) testIDs(t *testing.T) {
	ts := s.cluster(t, 3)
	for i, tr := range ts {
		want := transport.NodeID(fmt.Sprintf("n%d", i+1))
		if got := tr.ID(); got != want {
			t.Errorf("transport %d: ID() = %q; want %q", i, got, want)
		}
	}
}

func (s *suite) testDelivery(t *testing.T) {
	ts := s.cluster(t, 3)
	cs := make([]*collector, len(ts))
	for i, tr := range ts {
		cs[i] = newCollector()
		tr.Handle("test", cs[i].handle)
	}
	ctx := s.ctx(t)
	for _, from := range ts {
		for _, to := range ts {
			if from == to {
				continue
			}
			payload := []byte(fmt.Sprintf("%s->%s", from.ID(), to.ID()))
			if err := from.Send(ctx, to.ID(), "test", payload); err != nil {
				t.Fatalf("%s.Send(%s) = %v; want nil", from.ID(), to.ID(), err)
			}
		}
	}
	for i, tr := range ts {
		msgs := cs[i].wait(t, len(ts)-1, s.opts.Timeout)
		for _, m := range msgs {
			want := fmt.Sprintf("%s->%s", m.From, tr.ID())
			if m.To != tr.ID() || m.Service != "test" || string(m.Payload) != want {
				t.Errorf("%s received {From:%s To:%s Service:%s Payload:%q}; want To %s, Service test, Payload %q",
					tr.ID(), m.From, m.To, m.Service, m.Payload, tr.ID(), want)
			}
		}
	}
}

func (s *suite) testServices(t *testing.T) {
	ts := s.cluster(t, 2)
	a, b := ts[0], ts[1]
	red, blue, blue2, removed := newCollector(), newCollector(), newCollector(), newCollector()
	b.Handle("red", red.handle)
	b.Handle("blue", blue.handle)
	b.Handle("gone", removed.handle)
	b.Handle("gone", nil)
	ctx := s.ctx(t)
	send := func(service, payload string) {
		t.Helper()
		if err := a.Send(ctx, b.ID(), service, []byte(payload)); err != nil {
			t.Fatalf("Send(%q) = %v; want nil", service, err)
		}
	}
	send("gone", "dropped")
	send("nobody", "dropped")
	send("red", "r1")
	send("blue", "b1")
	red.wait(t, 1, s.opts.Timeout)
	blue.wait(t, 1, s.opts.Timeout)
	b.Handle("blue", blue2.handle)
	send("blue", "b2")
	got := blue2.wait(t, 1, s.opts.Timeout)
	if string(got[0].Payload) != "b2" {
		t.Errorf("replacement handler got %q; want %q", got[0].Payload, "b2")
	}
	if n := red.count(); n != 1 {
		t.Errorf("red handler got %d messages; want 1", n)
	}
	if n := blue.count(); n != 1 {
		t.Errorf("replaced blue handler got %d messages; want 1", n)
	}
	if n := removed.count(); n != 0 {
		t.Errorf("removed handler got %d messages; want 0", n)
	}
}

// seqPayload encodes a sender index and a sequence number.
func seqPayload(sender, seq int) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, uint32(sender)), uint32(seq))
}

func parseSeq(p []byte) (sender, seq int) {
	return int(binary.BigEndian.Uint32(p)), int(binary.BigEndian.Uint32(p[4:]))
}

func (s *suite) testFIFO(t *testing.T) {
	if !s.opts.FIFO {
		t.Skip("the implementation does not promise per-link FIFO (Options.FIFO)")
	}
	ts := s.cluster(t, 2)
	a, b := ts[0], ts[1]
	c := newCollector()
	b.Handle("fifo", c.handle)
	ctx := s.ctx(t)
	const windows, window = 20, 200
	accepted := 0
	for w := range windows {
		for i := range window {
			err := a.Send(ctx, b.ID(), "fifo", seqPayload(0, w*window+i))
			switch {
			case err == nil:
				accepted++
			case errors.Is(err, transport.ErrQueueFull):
			default:
				t.Fatalf("Send = %v; want nil or ErrQueueFull", err)
			}
		}
		c.wait(t, accepted, s.opts.Timeout)
	}
	msgs := c.wait(t, accepted, s.opts.Timeout)
	last := -1
	for _, m := range msgs {
		_, seq := parseSeq(m.Payload)
		if seq <= last {
			t.Fatalf("message %d arrived after message %d; want FIFO order", seq, last)
		}
		last = seq
	}
	if len(msgs) != accepted {
		t.Errorf("received %d messages; want the %d accepted", len(msgs), accepted)
	}
}

func (s *suite) testConcurrentSenders(t *testing.T) {
	const nodes, senders, perPeer = 4, 4, 50
	ts := s.cluster(t, nodes)
	cs := make([]*collector, nodes)
	for i, tr := range ts {
		cs[i] = newCollector()
		tr.Handle("burst", cs[i].handle)
	}
	ctx := s.ctx(t)
	// accepted[to] counts the messages Send accepted for node to.
	var acceptedMu sync.Mutex // guards accepted
	accepted := make([]int, nodes)
	var wg sync.WaitGroup
	errs := make(chan error, nodes*senders) // one slot per sender goroutine
	for from := range nodes {
		for g := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for seq := range perPeer {
					for to := range nodes {
						if to == from {
							continue
						}
						err := ts[from].Send(ctx, ts[to].ID(), "burst", seqPayload(from*senders+g, seq))
						if errors.Is(err, transport.ErrQueueFull) {
							continue
						}
						if err != nil {
							errs <- fmt.Errorf("%s.Send(%s) = %w", ts[from].ID(), ts[to].ID(), err)
							return
						}
						acceptedMu.Lock()
						accepted[to]++
						acceptedMu.Unlock()
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for to := range nodes {
		msgs := cs[to].wait(t, accepted[to], s.opts.Timeout)
		if len(msgs) != accepted[to] {
			t.Errorf("%s received %d messages; want the %d accepted", ts[to].ID(), len(msgs), accepted[to])
		}
		if !s.opts.FIFO {
			continue
		}
		last := map[int]int{}
		for _, m := range msgs {
			sender, seq := parseSeq(m.Payload)
			if prev, ok := last[sender]; ok && seq <= prev {
				t.Errorf("%s: sender %d's message %d arrived after %d; want FIFO order", ts[to].ID(), sender, seq, prev)
			}
			last[sender] = seq
		}
	}
}

func (s *suite) testLargeMessage(t *testing.T) {
	if s.opts.MaxPayload <= 0 {
		t.Skip("Options.MaxPayload not set")
	}
	ts := s.cluster(t, 2)
	c := newCollector()
	ts[1].Handle("large", c.handle)
	// Half the limit, then exactly the limit: the largest payload the
	// implementation claims to accept must be accepted and arrive.
	for i, size := range []int{s.opts.MaxPayload / 2, s.opts.MaxPayload} {
		payload := make([]byte, size)
		for j := range payload {
			payload[j] = byte(j*7 + i)
		}
		want := bytes.Clone(payload)
		if err := ts[0].Send(s.ctx(t), ts[1].ID(), "large", payload); err != nil {
			t.Fatalf("Send(%d bytes) with MaxPayload %d = %v; want nil", size, s.opts.MaxPayload, err)
		}
		got := c.wait(t, i+1, s.opts.Timeout)[i].Payload
		if !bytes.Equal(got, want) {
			t.Errorf("received %d bytes that differ from the %d sent", len(got), len(want))
		}
	}
}

func (s *suite) testTooLarge(t *testing.T) {
	if s.opts.MaxPayload <= 0 {
		t.Skip("Options.MaxPayload not set")
	}
	ts := s.cluster(t, 2)
	err := ts[0].Send(s.ctx(t), ts[1].ID(), "large", make([]byte, s.opts.MaxPayload+1))
	if !errors.Is(err, transport.ErrMessageTooLarge) {
		t.Errorf("Send(%d bytes) = %v; want ErrMessageTooLarge", s.opts.MaxPayload+1, err)
	}
	// The transport keeps working.
	c := newCollector()
	ts[1].Handle("small", c.handle)
	if err := ts[0].Send(s.ctx(t), ts[1].ID(), "small", []byte("ok")); err != nil {
		t.Fatalf("Send after a rejected one = %v; want nil", err)
	}
	c.wait(t, 1, s.opts.Timeout)
}

func (s *suite) testUnknownPeer(t *testing.T) {
	ts := s.cluster(t, 2)
	err := ts[0].Send(s.ctx(t), "no-such-node", "test", []byte("x"))
	if !errors.Is(err, transport.ErrUnknownPeer) {
		t.Errorf("Send(no-such-node) = %v; want ErrUnknownPeer", err)
	}
}

func (s *suite) testPanickingHandler(t *testing.T) {
	ts := s.cluster(t, 2)
	a, b := ts[0], ts[1]
	c := newCollector()
	b.Handle("boom", func(transport.Message) { panic("handler exploded") })
	b.Handle("ok", c.handle)
	ctx := s.ctx(t)
	for i := range 3 {
		if err := a.Send(ctx, b.ID(), "boom", []byte("x")); err != nil {
			t.Fatalf("Send(boom) = %v; want nil", err)
		}
		if err := a.Send(ctx, b.ID(), "ok", []byte("y")); err != nil {
			t.Fatalf("Send(ok) = %v; want nil", err)
		}
		c.wait(t, i+1, s.opts.Timeout)
	}
	// b can still send too.
	back := newCollector()
	a.Handle("back", back.handle)
	if err := b.Send(ctx, a.ID(), "back", []byte("z")); err != nil {
		t.Fatalf("Send from the node whose handler panicked = %v; want nil", err)
	}
	back.wait(t, 1, s.opts.Timeout)
}

func (s *suite) testClose(t *testing.T) {
	ts := s.cluster(t, 3)
	a, b, c := ts[0], ts[1], ts[2]
	col := newCollector()
	c.Handle("test", col.handle)
	ctx := s.ctx(t)
	if err := a.Send(ctx, b.ID(), "test", []byte("before")); err != nil {
		t.Fatalf("Send before Close = %v; want nil", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close() = %v; want nil", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close() = %v; want nil", err)
	}
	if err := b.Send(ctx, a.ID(), "test", []byte("after")); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Send after Close = %v; want ErrClosed", err)
	}
	b.Handle("test", func(transport.Message) {}) // must not panic
	// Sending to a closed peer is best effort: it may fail or not, but it
	// returns (the test's deadline catches a Send that blocks).
	for range 10 {
		if err := a.Send(ctx, b.ID(), "test", []byte("to closed")); errors.Is(err, transport.ErrClosed) {
			t.Fatalf("Send to a closed peer = %v; the sender is open, so not ErrClosed", err)
		}
	}
	// The others still talk.
	if err := a.Send(ctx, c.ID(), "test", []byte("still up")); err != nil {
		t.Fatalf("Send between open nodes = %v; want nil", err)
	}
	col.wait(t, 1, s.opts.Timeout)
}

func (s *suite) testNoLeaks(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Run("traffic", func(t *testing.T) {
		ts := s.cluster(t, 3)
		rs := s.rpcs(t, ts)
		for _, r := range rs {
			r.Handle("echo", func(_ context.Context, _ transport.NodeID, req []byte) ([]byte, error) { return req, nil })
		}
		ctx := s.ctx(t)
		for i, r := range rs {
			to := ts[(i+1)%len(ts)].ID()
			if _, err := r.Call(ctx, to, "echo", []byte("ping")); err != nil {
				t.Fatalf("Call(%s) = %v; want nil", to, err)
			}
		}
		// Leave a call pending and a handler running at Close.
		started := make(chan struct{})
		rs[1].Handle("block", func(ctx context.Context, _ transport.NodeID, _ []byte) ([]byte, error) {
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		})
		done := make(chan error, 1) // the call's goroutine never blocks on reporting
		go func() {
			_, err := rs[0].Call(context.Background(), ts[1].ID(), "block", nil)
			done <- err
		}()
		select {
		case <-started:
		case <-time.After(s.opts.Timeout):
			t.Fatal("blocking handler never started")
		}
		for _, tr := range ts {
			_ = tr.Close()
		}
		for _, r := range rs {
			_ = r.Close()
		}
		if err := <-done; !errors.Is(err, transport.ErrClosed) {
			t.Errorf("pending Call at Close = %v; want ErrClosed", err)
		}
	})
	goleak.VerifyNone(t, ignore)
}

func (s *suite) testCall(t *testing.T) {
	ts := s.cluster(t, 3)
	rs := s.rpcs(t, ts)
	for _, r := range rs {
		r.Handle("upper", func(_ context.Context, from transport.NodeID, req []byte) ([]byte, error) {
			return []byte(string(from) + ":" + strings.ToUpper(string(req))), nil
		})
	}
	ctx := s.ctx(t)
	for i, r := range rs {
		for j, tr := range ts {
			if i == j {
				continue
			}
			got, err := r.Call(ctx, tr.ID(), "upper", []byte("hello"))
			want := string(ts[i].ID()) + ":HELLO"
			if err != nil || string(got) != want {
				t.Errorf("%s.Call(%s, upper) = %q, %v; want %q, nil", ts[i].ID(), tr.ID(), got, err, want)
			}
		}
	}
}

func (s *suite) testCallErrors(t *testing.T) {
	ts := s.cluster(t, 2)
	rs := s.rpcs(t, ts)
	rs[1].Handle("fail", func(context.Context, transport.NodeID, []byte) ([]byte, error) {
		return nil, errors.New("no such key")
	})
	rs[1].Handle("panic", func(context.Context, transport.NodeID, []byte) ([]byte, error) {
		panic("handler exploded")
	})
	rs[1].Handle("echo", func(_ context.Context, _ transport.NodeID, req []byte) ([]byte, error) { return req, nil })
	ctx := s.ctx(t)
	tests := []struct {
		service string
		code    transport.ErrorCode
		message string
		is      error
	}{
		{"fail", transport.CodeHandler, "no such key", nil},
		{"panic", transport.CodePanic, "panic: handler exploded", nil},
		{"missing", transport.CodeNoHandler, "no handler for service missing", transport.ErrNoHandler},
	}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			_, err := rs[0].Call(ctx, ts[1].ID(), tt.service, nil)
			var re *transport.RemoteError
			if !errors.As(err, &re) {
				t.Fatalf("Call(%s) = %v; want a *RemoteError", tt.service, err)
			}
			if re.Code != tt.code || re.Message != tt.message || re.From != ts[1].ID() || re.Service != tt.service {
				t.Errorf("Call(%s) = %+v; want Code %v, Message %q, From %s", tt.service, *re, tt.code, tt.message, ts[1].ID())
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Call(%s) = %v; want errors.Is %v", tt.service, err, tt.is)
			}
		})
	}
	// The callee survived the panic.
	if got, err := rs[0].Call(ctx, ts[1].ID(), "echo", []byte("alive")); err != nil || string(got) != "alive" {
		t.Errorf("Call after a handler panic = %q, %v; want %q, nil", got, err, "alive")
	}
	if _, err := rs[0].Call(ctx, "no-such-node", "echo", nil); !errors.Is(err, transport.ErrUnknownPeer) {
		t.Errorf("Call(no-such-node) = %v; want ErrUnknownPeer", err)
	}
}

func (s *suite) testCallConcurrent(t *testing.T) {
	ts := s.cluster(t, 3)
	rs := s.rpcs(t, ts)
	rs[1].Handle("echo", func(_ context.Context, _ transport.NodeID, req []byte) ([]byte, error) { return req, nil })
	ctx := s.ctx(t)
	const callers, calls = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, 2*callers) // one slot per caller goroutine
	for _, r := range []*transport.RPC{rs[0], rs[2]} {
		for g := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range calls {
					req := []byte(fmt.Sprintf("%d/%d", g, i))
					got, err := r.Call(ctx, ts[1].ID(), "echo", req)
					if err != nil || !bytes.Equal(got, req) {
						errs <- fmt.Errorf("Call(echo %q) = %q, %v; want %q, nil", req, got, err, req)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// blockingHandler registers a handler that reports its start and then
// waits for its context to end, reporting whether it had a deadline.
func blockingHandler(r *transport.RPC, service string) (started chan struct{}, ended chan bool) {
	started = make(chan struct{}, 1) // one call per test
	ended = make(chan bool, 1)
	r.Handle(service, func(ctx context.Context, _ transport.NodeID, _ []byte) ([]byte, error) {
		started <- struct{}{}
		<-ctx.Done()
		_, hasDeadline := ctx.Deadline()
		ended <- hasDeadline
		return nil, ctx.Err()
	})
	return started, ended
}

func (s *suite) await(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(s.opts.Timeout):
		t.Fatalf("%s did not happen within %v", what, s.opts.Timeout)
	}
}

func (s *suite) testCallCancel(t *testing.T) {
	ts := s.cluster(t, 2)
	rs := s.rpcs(t, ts)
	started, ended := blockingHandler(rs[1], "block")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1) // reported once
	go func() {
		_, err := rs[0].Call(ctx, ts[1].ID(), "block", nil)
		done <- err
	}()
	s.await(t, started, "handler start")
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Call = %v; want context.Canceled", err)
	}
	if p := rs[0].Stats().Pending; p != 0 {
		t.Errorf("Stats().Pending after the cancelled call returned = %d; want 0", p)
	}
	// The cancellation reaches the callee, whose handler context ends.
	select {
	case <-ended:
	case <-time.After(s.opts.Timeout):
		t.Fatal("the callee's handler context was not cancelled")
	}
}

func (s *suite) testCallDeadline(t *testing.T) {
	ts := s.cluster(t, 2)
	rs := s.rpcs(t, ts)
	started, ended := blockingHandler(rs[1], "block")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := rs[0].Call(ctx, ts[1].ID(), "block", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Call past its deadline = %v; want context.DeadlineExceeded", err)
	}
	s.await(t, started, "handler start")
	select {
	case hasDeadline := <-ended:
		if !hasDeadline {
			t.Error("the callee's handler context had no deadline; want the caller's")
		}
	case <-time.After(s.opts.Timeout):
		t.Fatal("the callee's handler context did not end")
	}
}

func (s *suite) testCallRPCClose(t *testing.T) {
	ts := s.cluster(t, 2)
	rs := s.rpcs(t, ts)
	s.checkCloseFailsPendingCall(t, ts, rs, "its RPC", func() { _ = rs[0].Close() })
	if _, err := rs[0].Call(context.Background(), ts[1].ID(), "block", nil); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Call after RPC Close = %v; want ErrClosed", err)
	}
}

func (s *suite) testCallTransportClose(t *testing.T) {
	ts := s.cluster(t, 2)
	if _, ok := ts[0].(transport.DoneNotifier); !ok {
		t.Skip("the transport does not implement transport.DoneNotifier")
	}
	rs := s.rpcs(t, ts)
	s.checkCloseFailsPendingCall(t, ts, rs, "its transport", func() { _ = ts[0].Close() })
}

// checkCloseFailsPendingCall starts a call from node 0 to a handler on
// node 1 that blocks until its context ends, runs closeFn once the handler
// runs, and checks that the pending call fails at once with ErrClosed
// (long before the call's own timeout).
func (s *suite) checkCloseFailsPendingCall(t *testing.T, ts []transport.Transport, rs []*transport.RPC, what string, closeFn func()) {
	t.Helper()
	started, _ := blockingHandler(rs[1], "block")
	done := make(chan error, 1) // reported once
	go func() {
		_, err := rs[0].Call(context.Background(), ts[1].ID(), "block", nil)
		done <- err
	}()
	s.await(t, started, "handler start")
	closeFn()
	if err := <-done; !errors.Is(err, transport.ErrClosed) {
		t.Errorf("pending Call when %s closed = %v; want ErrClosed", what, err)
	}
}
