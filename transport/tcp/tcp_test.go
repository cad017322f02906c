package tcp_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/tcp"
)

const wait = 10 * time.Second // bound on every wait; never reached when correct

// logSignal is a slog.Handler that reports every record whose message
// contains one of its keys, so tests wait for an event instead of polling.
type logSignal struct {
	key string
	ch  chan slog.Record // buffered: records beyond its room are dropped, tests need the first
}

func newLogSignal(key string) *logSignal { return &logSignal{key: key, ch: make(chan slog.Record, 64)} }

func (l *logSignal) Enabled(context.Context, slog.Level) bool { return true }
func (l *logSignal) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, l.key) {
		select {
		case l.ch <- r.Clone():
		default:
		}
	}
	return nil
}
func (l *logSignal) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logSignal) WithGroup(string) slog.Handler      { return l }

// next waits for a matching record and returns its "reason" or "err" attribute.
func (l *logSignal) next(t *testing.T) string {
	t.Helper()
	var reason string
	l.nextRecord(t).Attrs(func(a slog.Attr) bool {
		if a.Key == "reason" || a.Key == "err" {
			reason = a.Value.String()
		}
		return true
	})
	return reason
}

// inbox collects messages for a handler.
type inbox chan transport.Message

func newInbox() inbox { return make(inbox, 1024) } // room for every test's messages

func (in inbox) handle(m transport.Message) {
	select {
	case in <- m:
	default:
	}
}

func (in inbox) next(t *testing.T) transport.Message {
	t.Helper()
	select {
	case m := <-in:
		return m
	case <-time.After(wait):
		t.Fatal("no message arrived")
		return transport.Message{}
	}
}

func TestConfigValidate(t *testing.T) {
	valid := tcp.DefaultConfig()
	valid.ID = "n1"
	tests := []struct {
		name   string
		mutate func(*tcp.Config)
		ok     bool
	}{
		{"default with ID", func(*tcp.Config) {}, true},
		{"with peers", func(c *tcp.Config) { c.Peers = map[transport.NodeID]string{"n2": "127.0.0.1:1"} }, true},
		{"empty ID", func(c *tcp.Config) { c.ID = "" }, false},
		{"ID too long", func(c *tcp.Config) { c.ID = transport.NodeID(strings.Repeat("x", 256)) }, false},
		{"peer without address", func(c *tcp.Config) { c.Peers = map[transport.NodeID]string{"n2": ""} }, false},
		{"peer without ID", func(c *tcp.Config) { c.Peers = map[transport.NodeID]string{"": "127.0.0.1:1"} }, false},
		{"tiny frames", func(c *tcp.Config) { c.MaxFrameSize = 100 }, false},
		{"huge frames", func(c *tcp.Config) { c.MaxFrameSize = 2 << 30 }, false},
		{"zero queue", func(c *tcp.Config) { c.QueueSize = 0 }, false},
		{"byte queue below frame size", func(c *tcp.Config) { c.QueueBytes = c.MaxFrameSize - 1 }, false},
		{"small write buffer", func(c *tcp.Config) { c.WriteBufferSize = 100 }, false},
		{"small read buffer", func(c *tcp.Config) { c.ReadBufferSize = 100 }, false},
		{"zero dial timeout", func(c *tcp.Config) { c.DialTimeout = 0 }, false},
		{"zero handshake timeout", func(c *tcp.Config) { c.HandshakeTimeout = 0 }, false},
		{"zero write timeout", func(c *tcp.Config) { c.WriteTimeout = 0 }, false},
		{"zero backoff", func(c *tcp.Config) { c.MinBackoff = 0 }, false},
		{"max below min backoff", func(c *tcp.Config) { c.MaxBackoff = c.MinBackoff / 2 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.mutate(&cfg)
			err := cfg.Validate()
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, tcp.ErrInvalidConfig)) {
				t.Errorf("Validate() = %v; want ok=%v (ErrInvalidConfig otherwise)", err, tt.ok)
			}
		})
	}
}

func TestConstructorsReturnErrors(t *testing.T) {
	if _, err := tcp.Listen(tcp.DefaultConfig()); !errors.Is(err, tcp.ErrInvalidConfig) {
		t.Errorf("Listen without an ID = %v; want ErrInvalidConfig", err)
	}
	cfg := tcp.DefaultConfig()
	cfg.ID = "n1"
	cfg.ListenAddr = "256.0.0.1:0"
	if _, err := tcp.Listen(cfg); err == nil {
		t.Error("Listen on an invalid address = nil error; want an error")
	}
	if _, err := tcp.New(cfg, nil); !errors.Is(err, tcp.ErrInvalidConfig) {
		t.Errorf("New with a nil listener = %v; want ErrInvalidConfig", err)
	}
}

// TestZeroTransport: a Transport not made by Listen or New gives errors,
// never a panic.
func TestZeroTransport(t *testing.T) {
	var z tcp.Transport
	tests := []struct {
		name string
		err  error
	}{
		{"Send", z.Send(context.Background(), "n2", "s", nil)},
		{"AddPeer", z.AddPeer("n2", "127.0.0.1:1")},
		{"Close", z.Close()},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, tcp.ErrInvalidConfig) {
			t.Errorf("zero Transport %s = %v; want ErrInvalidConfig", tt.name, tt.err)
		}
	}
	z.Handle("s", func(transport.Message) {})
	z.RemovePeer("n2")
	if got := z.Status(); got != nil {
		t.Errorf("zero Transport Status() = %v; want nil", got)
	}
	if got := z.Stats(); got != (tcp.Stats{}) {
		t.Errorf("zero Transport Stats() = %+v; want zero", got)
	}
	if got := z.Addr(); got != nil {
		t.Errorf("zero Transport Addr() = %v; want nil", got)
	}
}

func TestAddPeerRejectsBadInput(t *testing.T) {
	cfg := tcp.DefaultConfig()
	cfg.ID = "n1"
	tr, err := tcp.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	tests := []struct {
		name string
		id   transport.NodeID
		addr string
	}{
		{"empty ID", "", "127.0.0.1:1"},
		{"empty address", "n2", ""},
		{"itself", "n1", "127.0.0.1:1"},
		{"ID too long", transport.NodeID(strings.Repeat("x", 256)), "127.0.0.1:1"},
	}
	for _, tt := range tests {
		if err := tr.AddPeer(tt.id, tt.addr); !errors.Is(err, tcp.ErrInvalidConfig) {
			t.Errorf("%s: AddPeer(%.20q, %q) = %v; want ErrInvalidConfig", tt.name, tt.id, tt.addr, err)
		}
	}
}

func TestManyPeers(t *testing.T) {
	const n = 8
	ids := make([]transport.NodeID, n)
	for i := range ids {
		ids[i] = transport.NodeID(fmt.Sprintf("n%d", i))
	}
	ts := cluster(t, ids, nil)
	inboxes := make([]inbox, n)
	for i, tr := range ts {
		inboxes[i] = newInbox()
		tr.Handle("gossip", inboxes[i].handle)
	}
	ctx := context.Background()
	for _, from := range ts {
		for _, to := range ts {
			if err := from.Send(ctx, to.ID(), "gossip", []byte(from.ID())); err != nil {
				t.Fatalf("%s.Send(%s) = %v", from.ID(), to.ID(), err)
			}
		}
	}
	for i, tr := range ts {
		seen := map[transport.NodeID]bool{}
		for range n {
			m := inboxes[i].next(t)
			if string(m.Payload) != string(m.From) || m.To != tr.ID() {
				t.Errorf("%s got %+v; want payload = From and To = %s", tr.ID(), m, tr.ID())
			}
			seen[m.From] = true
		}
		if len(seen) != n {
			t.Errorf("%s heard from %d nodes (itself included); want %d", tr.ID(), len(seen), n)
		}
	}
	if s := ts[0].Stats(); s.Peers != n || s.Dials != n-1 || s.Sent != n-1 {
		t.Errorf("Stats() = %+v; want %d peers, %d dials, %d frames sent", s, n, n-1, n-1)
	}
	status := ts[0].Status()
	if len(status) != n {
		t.Fatalf("Status() has %d peers; want %d", len(status), n)
	}
	for i, st := range status {
		want := tcp.PeerStatus{ID: ids[i], Addr: ts[i].Addr().String(), Connected: true, Sent: 1}
		if i == 0 {
			want = tcp.PeerStatus{ID: ids[0]} // itself: delivered locally
		}
		if st != want {
			t.Errorf("Status()[%d] = %+v; want %+v", i, st, want)
		}
	}
}

func TestPeerRestart(t *testing.T) {
	ts := cluster(t, []transport.NodeID{"a", "b"}, nil)
	a, b := ts[0], ts[1]
	in := newInbox()
	b.Handle("svc", in.handle)
	ctx := context.Background()
	if err := a.Send(ctx, "b", "svc", []byte("before")); err != nil {
		t.Fatal(err)
	}
	in.next(t)
	addr := b.Addr().String()
	b.Close()

	cfg := tcp.DefaultConfig()
	cfg.ID = "b"
	cfg.ListenAddr = addr
	b2, err := tcp.Listen(cfg)
	if err != nil {
		t.Fatalf("restarting b on %s: %v", addr, err)
	}
	defer b2.Close()
	in2 := newInbox()
	b2.Handle("svc", in2.handle)
	// Messages sent while a notices the old connection's end may be lost
	// (delivery is best effort), so keep sending until one arrives.
	for i := 0; ; i++ {
		if err := a.Send(ctx, "b", "svc", []byte("after")); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-in2:
			if string(m.Payload) != "after" || m.From != "a" {
				t.Errorf("restarted b got %+v; want payload after from a", m)
			}
			if d := a.Stats().Dials; d != 2 {
				t.Errorf("a.Stats().Dials = %d; want 2 (one per life of b)", d)
			}
			return
		case <-time.After(100 * time.Millisecond):
			if i > 100 {
				t.Fatal("restarted peer never received a message")
			}
		}
	}
}

// fakePeer listens on loopback and completes the server side of the
// handshake as node id, then hands the connection to serve.
func fakePeer(t *testing.T, id string, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		// The hello: magic and version, then from, to and address, each
		// prefixed by its length.
		if _, err := io.ReadFull(conn, make([]byte, 4)); err != nil {
			return
		}
		for range 3 {
			n := make([]byte, 1)
			if _, err := io.ReadFull(conn, n); err != nil {
				return
			}
			if _, err := io.ReadFull(conn, make([]byte, n[0])); err != nil {
				return
			}
		}
		ack := append([]byte{'D', 'K', 'T', tcp.ProtocolVersion, 0, byte(len(id))}, id...)
		if _, err := conn.Write(ack); err != nil {
			return
		}
		serve(conn)
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String()
}

func TestSlowReaderGetsQueueFull(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*tcp.Config)
	}{
		{"message bound", func(c *tcp.Config) { c.QueueSize = 8 }},
		{"byte bound", func(c *tcp.Config) { c.QueueSize = 1 << 20; c.MaxFrameSize = 1 << 20; c.QueueBytes = 1 << 20 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const size = 64 << 10
			stop := make(chan struct{})
			gotFirst := make(chan struct{})
			addr := fakePeer(t, "slow", func(conn net.Conn) {
				// Read the first frame, then never read again.
				if _, err := io.ReadFull(conn, make([]byte, 5+len("svc")+size)); err == nil {
					close(gotFirst)
				}
				<-stop
			})
			cfg := tcp.DefaultConfig()
			cfg.ID = "a"
			cfg.Peers = map[transport.NodeID]string{"slow": addr}
			tt.mutate(&cfg)
			a, err := tcp.Listen(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer close(stop)
			defer a.Close() // while its writer is blocked on the full socket
			payload := make([]byte, size)
			ctx := context.Background()
			if err := a.Send(ctx, "slow", "svc", payload); err != nil {
				t.Fatal(err)
			}
			select {
			case <-gotFirst: // connected, and the writer is idle
			case <-time.After(wait):
				t.Fatal("the first frame never arrived")
			}
			// The writer pushes frames into the socket until the kernel's
			// buffers (a few MiB) are full and then blocks; the queue
			// fills behind it, and Send must report ErrQueueFull instead
			// of blocking or queueing without bound. Pausing after each
			// refusal gives the writer time to run.
			const limit = 64 << 20 // far beyond socket buffers plus the queue
			accepted, refused := 1, 0
			for accepted*size < limit && refused < 200 {
				err := a.Send(ctx, "slow", "svc", payload)
				switch {
				case err == nil:
					accepted++
				case errors.Is(err, transport.ErrQueueFull):
					refused++
					time.Sleep(time.Millisecond)
				default:
					t.Fatalf("Send = %v; want nil or ErrQueueFull", err)
				}
			}
			if accepted*size >= limit {
				t.Fatalf("Send accepted %d MiB for a peer that reads nothing; want ErrQueueFull long before", accepted*size>>20)
			}
			if q := a.Stats().QueueFull; q != uint64(refused) {
				t.Errorf("Stats().QueueFull = %d; want %d", q, refused)
			}
			if st := a.Status()[1]; st.ID != "slow" || !st.Connected || st.Sent < 2 || st.Queued == 0 {
				t.Errorf("Status() of the slow peer = %+v; want connected, frames written, a non-empty queue", st)
			}
		})
	}
}

// rawConn dials tr without speaking the protocol.
func rawConn(t *testing.T, tr *tcp.Transport) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", tr.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	return conn
}

// expectClosed reads from conn until the transport closes it (with a FIN,
// or a reset when our bytes were left unread).
func expectClosed(t *testing.T, conn net.Conn) {
	t.Helper()
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the transport did not close the connection: %v", err)
	}
}

// loggedCluster starts nodes a and b where b logs to the returned signal.
func loggedCluster(t *testing.T, key string, mutate func(*tcp.Config)) (a, b *tcp.Transport, sig *logSignal) {
	sig = newLogSignal(key)
	ts := cluster(t, []transport.NodeID{"a", "b"}, func(c *tcp.Config) {
		if c.ID == "b" {
			c.Logger = slog.New(sig)
		}
		if mutate != nil {
			mutate(c)
		}
	})
	return ts[0], ts[1], sig
}

// stillWorks checks that a can still reach b. A message sent while a
// connection is being torn down may be lost (delivery is best effort), so
// it sends until one arrives.
func stillWorks(t *testing.T, a, b *tcp.Transport) {
	t.Helper()
	in := newInbox()
	b.Handle("check", in.handle)
	deadline := time.After(wait)
	for {
		if err := a.Send(context.Background(), b.ID(), "check", []byte("ok")); err != nil {
			t.Fatal(err)
		}
		select {
		case <-in:
			return
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%s cannot reach %s any more", a.ID(), b.ID())
		}
	}
}

func TestBadInboundConnections(t *testing.T) {
	// helloThen returns a valid hello from x to b followed by rest.
	helloThen := func(rest ...byte) []byte {
		return append([]byte{'D', 'K', 'T', tcp.ProtocolVersion, 1, 'x', 1, 'b', 0}, rest...)
	}
	tests := []struct {
		name    string
		send    []byte
		log     string // log message expected at b
		reason  string // substring of the logged reason
		refused uint64
		bad     uint64
	}{
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: b\r\n\r\n"), "refused", "malformed handshake", 1, 0},
		{"other version", []byte{'D', 'K', 'T', 99, 1, 'x', 1, 'b'}, "refused", "unsupported protocol version", 1, 0},
		{"wrong node", []byte{'D', 'K', 'T', tcp.ProtocolVersion, 1, 'x', 1, 'c', 0}, "refused", "dialled \"c\"", 1, 0},
		{"oversized frame", helloThen(0x7f, 0xff, 0xff, 0xff, 0), "closing inbound", "larger than MaxFrameSize", 0, 1},
		{"empty frame", helloThen(0, 0, 0, 0), "closing inbound", "empty body", 0, 1},
		{"bad service length", helloThen(0, 0, 0, 2, 9, 'a'), "closing inbound", "service name of 9 bytes", 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b, sig := loggedCluster(t, tt.log, nil)
			conn := rawConn(t, b)
			if _, err := conn.Write(tt.send); err != nil {
				t.Fatal(err)
			}
			expectClosed(t, conn)
			if reason := sig.next(t); !strings.Contains(reason, tt.reason) {
				t.Errorf("logged reason %q; want it to mention %q", reason, tt.reason)
			}
			if s := b.Stats(); s.Refused != tt.refused || s.BadFrames != tt.bad {
				t.Errorf("Stats() = %+v; want Refused %d, BadFrames %d", s, tt.refused, tt.bad)
			}
			stillWorks(t, a, b)
		})
	}
}

func TestSilentClientIsDropped(t *testing.T) {
	a, b, sig := loggedCluster(t, "refused", func(c *tcp.Config) { c.HandshakeTimeout = 100 * time.Millisecond })
	conn := rawConn(t, b)
	expectClosed(t, conn) // without sending a byte
	if reason := sig.next(t); !strings.Contains(reason, "timeout") {
		t.Errorf("logged reason %q; want a timeout", reason)
	}
	stillWorks(t, a, b)
}

func TestOversizedSendRejected(t *testing.T) {
	ts := cluster(t, []transport.NodeID{"a", "b"}, func(c *tcp.Config) { c.MaxFrameSize = 1024 })
	ctx := context.Background()
	tests := []struct {
		payload int
		want    error
	}{
		{1024 - 1 - len("svc"), nil},
		{1024 - len("svc"), transport.ErrMessageTooLarge},
		{1 << 20, transport.ErrMessageTooLarge},
	}
	for _, tt := range tests {
		if err := ts[0].Send(ctx, "b", "svc", make([]byte, tt.payload)); !errors.Is(err, tt.want) {
			t.Errorf("Send(%d bytes) with MaxFrameSize 1024 = %v; want %v", tt.payload, err, tt.want)
		}
	}
	if err := ts[0].Send(ctx, "b", strings.Repeat("s", 256), nil); err == nil {
		t.Error("Send with a 256-byte service name = nil; want an error")
	}
}

func TestReceiverEnforcesItsFrameLimit(t *testing.T) {
	sig := newLogSignal("closing inbound")
	ts := cluster(t, []transport.NodeID{"a", "b"}, func(c *tcp.Config) {
		if c.ID == "b" {
			c.MaxFrameSize = 1024
			c.Logger = slog.New(sig)
		}
	})
	// a allows 16 MiB, b only 1 KiB: b closes the connection.
	if err := ts[0].Send(context.Background(), "b", "svc", make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	if reason := sig.next(t); !strings.Contains(reason, "larger than MaxFrameSize") {
		t.Errorf("logged reason %q; want an oversized frame", reason)
	}
	stillWorks(t, ts[0], ts[1])
}

func TestAddAndRemovePeer(t *testing.T) {
	ts := cluster(t, []transport.NodeID{"a", "b", "c"}, nil)
	a := ts[0]
	ctx := context.Background()
	a.RemovePeer("b")
	if err := a.Send(ctx, "b", "svc", nil); !errors.Is(err, transport.ErrUnknownPeer) {
		t.Errorf("Send after RemovePeer = %v; want ErrUnknownPeer", err)
	}
	// Point "b" at c's address: c refuses a dialler that expects b.
	if err := a.AddPeer("b", ts[2].Addr().String()); err != nil {
		t.Fatal(err)
	}
	// Now fix the address; the next connection goes to the real b.
	if err := a.AddPeer("b", ts[1].Addr().String()); err != nil {
		t.Fatal(err)
	}
	stillWorks(t, a, ts[1])
	tests := []struct {
		id   transport.NodeID
		addr string
	}{{"", "127.0.0.1:1"}, {"d", ""}, {"a", "127.0.0.1:1"}}
	for _, tt := range tests {
		if err := a.AddPeer(tt.id, tt.addr); err == nil {
			t.Errorf("AddPeer(%q, %q) = nil; want an error", tt.id, tt.addr)
		}
	}
	a.Close()
	if err := a.AddPeer("d", "127.0.0.1:1"); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("AddPeer after Close = %v; want ErrClosed", err)
	}
}

func TestWrongNodeAtAddressIsRefused(t *testing.T) {
	sig := newLogSignal("refused")
	ts := cluster(t, []transport.NodeID{"a", "c"}, func(c *tcp.Config) {
		if c.ID == "c" {
			c.Logger = slog.New(sig)
		}
	})
	if err := ts[0].AddPeer("b", ts[1].Addr().String()); err != nil {
		t.Fatal(err)
	}
	in := newInbox()
	ts[1].Handle("svc", in.handle)
	if err := ts[0].Send(context.Background(), "b", "svc", []byte("for b")); err != nil {
		t.Fatal(err)
	}
	if reason := sig.next(t); !strings.Contains(reason, `dialled "b"`) {
		t.Errorf("logged reason %q; want the wrong-node refusal", reason)
	}
	select {
	case m := <-in:
		t.Errorf("c received %+v meant for b", m)
	default:
	}
}

func TestSendToSelf(t *testing.T) {
	ts := cluster(t, []transport.NodeID{"a"}, nil)
	in := newInbox()
	ts[0].Handle("svc", in.handle)
	if err := ts[0].Send(context.Background(), "a", "svc", []byte("me")); err != nil {
		t.Fatal(err)
	}
	if m := in.next(t); m.From != "a" || m.To != "a" || string(m.Payload) != "me" {
		t.Errorf("self-delivery = %+v; want From a, To a, Payload me", m)
	}
}

// TestCloseInterruptsHandshake checks that Close does not wait for a dial
// stuck on a server that accepts but never answers the handshake.
func TestCloseInterruptsHandshake(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1) // one connection expected
	go func() {
		if conn, err := ln.Accept(); err == nil {
			accepted <- conn
		}
	}()
	cfg := tcp.DefaultConfig()
	cfg.ID = "a"
	cfg.DialTimeout = time.Hour
	cfg.Peers = map[transport.NodeID]string{"mute": ln.Addr().String()}
	a, err := tcp.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Send(context.Background(), "mute", "svc", []byte("x")); err != nil {
		t.Fatal(err)
	}
	var conn net.Conn
	select {
	case conn = <-accepted:
		defer conn.Close()
	case <-time.After(wait):
		t.Fatal("a never dialled")
	}
	closed := make(chan struct{})
	go func() {
		a.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(wait):
		t.Fatal("Close blocked on a handshake with a silent server")
	}
}

// TestRandomStreamsArriveIntactAndInOrder sends seeded random sequences of
// messages (sizes from empty to several write buffers, several services)
// and compares what arrives with what was sent: same bytes, same order.
func TestRandomStreamsArriveIntactAndInOrder(t *testing.T) {
	seeds := uint64(3)
	if os.Getenv("DISTKIT_SOAK") == "1" {
		seeds = 100
	}
	for seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			ts := cluster(t, []transport.NodeID{"a", "b"}, func(c *tcp.Config) { c.WriteBufferSize = 4096 })
			rng := rand.New(rand.NewPCG(seed, 0))
			const n = 300
			services := []string{"raft", "detector", "txn"}
			type sent struct {
				service string
				payload []byte
			}
			var want []sent
			got := make(chan transport.Message, n) // room for every message
			for _, s := range services {
				ts[1].Handle(s, func(m transport.Message) { got <- m })
			}
			for range n {
				p := make([]byte, rng.IntN(3*4096))
				for i := range p {
					p[i] = byte(rng.Uint32())
				}
				m := sent{services[rng.IntN(len(services))], p}
				want = append(want, sent{m.service, bytes.Clone(p)})
				if err := ts[0].Send(context.Background(), "b", m.service, m.payload); err != nil {
					t.Fatalf("Send #%d = %v", len(want), err)
				}
			}
			for i, w := range want {
				var m transport.Message
				select {
				case m = <-got:
				case <-time.After(wait):
					t.Fatalf("received %d of %d messages", i, n)
				}
				if m.Service != w.service || !bytes.Equal(m.Payload, w.payload) {
					t.Fatalf("message %d: got %s/%d bytes; want %s/%d bytes as sent", i, m.Service, len(m.Payload), w.service, len(w.payload))
				}
			}
		})
	}
}

func TestLearnPeers(t *testing.T) {
	tests := []struct {
		name  string
		learn bool
		want  error
	}{
		{"learned", true, nil},
		{"not learned", false, transport.ErrUnknownPeer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Only a knows b; b hears of a through a's handshake.
			cfg := tcp.DefaultConfig()
			cfg.ID = "b"
			cfg.LearnPeers = tt.learn
			b, err := tcp.Listen(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			cfg = tcp.DefaultConfig()
			cfg.ID = "a"
			cfg.ListenAddr = "0.0.0.0:0" // advertised with b's view of a's host
			cfg.Peers = map[transport.NodeID]string{"b": b.Addr().String()}
			a, err := tcp.Listen(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			stillWorks(t, a, b) // a's connection, and so its handshake, reached b
			in := newInbox()
			a.Handle("back", in.handle)
			if err := b.Send(context.Background(), "a", "back", []byte("hi")); !errors.Is(err, tt.want) {
				t.Fatalf("b.Send(a) = %v; want %v", err, tt.want)
			}
			if tt.want == nil {
				in.next(t)
			}
		})
	}
}

// nextRecord waits for a record matching l's key and returns it.
func (l *logSignal) nextRecord(t *testing.T) slog.Record {
	t.Helper()
	select {
	case r := <-l.ch:
		return r
	case <-time.After(wait):
		t.Fatalf("no log record containing %q", l.key)
		return slog.Record{}
	}
}

// attr returns the value of r's attribute key.
func attr(r slog.Record, key string) slog.Value {
	var v slog.Value
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value
			return false
		}
		return true
	})
	return v
}

// sendToB starts a transport with cfg, closed when the test ends, and
// sends one message to node b through it.
func sendToB(t *testing.T, cfg tcp.Config) {
	t.Helper()
	a, err := tcp.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if err := a.Send(context.Background(), "b", "svc", []byte("for b")); err != nil {
		t.Fatal(err)
	}
}

// freeAddr returns a loopback address nothing listens on (a port the
// system just handed out and took back).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestDiallerChecksTheAck checks that a dialler refuses a connection whose
// ack names another node than the one it dialled, and sends it nothing.
func TestDiallerChecksTheAck(t *testing.T) {
	got := make(chan int, 1) // the bytes the impostor read after its ack
	addr := fakePeer(t, "x", func(conn net.Conn) {
		// Bounded: a dialler that neither closes nor writes fails the
		// test below (read 0 bytes) instead of hanging it.
		conn.SetReadDeadline(time.Now().Add(wait))
		n, _ := conn.Read(make([]byte, 64))
		got <- n
	})
	sig := newLogSignal("connecting failed")
	cfg := tcp.DefaultConfig()
	cfg.ID = "a"
	cfg.Peers = map[transport.NodeID]string{"b": addr}
	cfg.Logger = slog.New(sig)
	sendToB(t, cfg)
	if reason := sig.next(t); !strings.Contains(reason, "answered at the address of b") {
		t.Errorf("logged reason %q; want the ack naming another node", reason)
	}
	if n := <-got; n != 0 {
		t.Errorf("the node answering as x at b's address read %d bytes; want none", n)
	}
}

// TestLearnPeersNeverReaddresses checks that a dialler claiming a known
// node's ID cannot change the address this node sends to.
func TestLearnPeersNeverReaddresses(t *testing.T) {
	sig := newLogSignal("inbound connection open")
	ts := cluster(t, []transport.NodeID{"a", "b"}, func(c *tcp.Config) {
		if c.ID == "a" {
			c.Logger = slog.New(sig)
		}
	})
	a, b := ts[0], ts[1]
	conn := rawConn(t, a)
	const bogus = "127.0.0.1:1"
	hello := append([]byte{'D', 'K', 'T', tcp.ProtocolVersion, 1, 'b', 1, 'a', byte(len(bogus))}, bogus...)
	if _, err := conn.Write(hello); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn, make([]byte, len("DKT")+3+len("a"))); err != nil {
		t.Fatalf("reading the ack: %v", err)
	}
	sig.next(t) // a has handled the advertised address
	for _, st := range a.Status() {
		if st.ID == "b" && st.Addr != b.Addr().String() {
			t.Errorf("a sends to b at %s after a hello advertising %s; want b's own address %s", st.Addr, bogus, b.Addr())
		}
	}
	stillWorks(t, a, b)
}

// TestCloseWithIdleInboundConnection checks that Close closes accepted
// connections itself rather than waiting for their peers to hang up.
func TestCloseWithIdleInboundConnection(t *testing.T) {
	ts := cluster(t, []transport.NodeID{"b"}, nil)
	conn := rawConn(t, ts[0])
	if _, err := conn.Write([]byte{'D', 'K', 'T', tcp.ProtocolVersion, 1, 'x', 1, 'b', 0}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn, make([]byte, len("DKT")+3+len("b"))); err != nil {
		t.Fatalf("reading the ack: %v", err)
	}
	closed := make(chan struct{})
	go func() {
		ts[0].Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(wait):
		t.Fatal("Close blocked on an open, silent inbound connection")
	}
	expectClosed(t, conn)
}

// TestStalledPeerConnectionIsReset checks that a writer blocked on a peer
// that stopped reading gives up after WriteTimeout and drops the
// connection, instead of blocking forever.
func TestStalledPeerConnectionIsReset(t *testing.T) {
	stop := make(chan struct{})
	addr := fakePeer(t, "stalled", func(net.Conn) { <-stop }) // reads nothing after the hello
	sig := newLogSignal("connection lost")
	cfg := tcp.DefaultConfig()
	cfg.ID = "a"
	cfg.Peers = map[transport.NodeID]string{"stalled": addr}
	cfg.WriteTimeout = 200 * time.Millisecond
	cfg.Logger = slog.New(sig)
	a, err := tcp.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer close(stop)
	defer a.Close()
	// 32 MiB is far more than the kernel buffers on loopback, and within
	// the queue's byte bound.
	payload := make([]byte, 64<<10)
	for i := range 512 {
		if err := a.Send(context.Background(), "stalled", "svc", payload); err != nil {
			t.Fatalf("Send #%d = %v", i, err)
		}
	}
	if reason := sig.next(t); !strings.Contains(reason, "timeout") {
		t.Errorf("logged reason %q; want a write timeout", reason)
	}
}

// TestReconnectBackoffIsCapped checks the waits between attempts to reach
// a peer that refuses connections: they never exceed MaxBackoff nor fall
// below half of MinBackoff (the jitter).
func TestReconnectBackoffIsCapped(t *testing.T) {
	sig := newLogSignal("backing off")
	cfg := tcp.DefaultConfig()
	cfg.ID = "a"
	cfg.Peers = map[transport.NodeID]string{"down": freeAddr(t)}
	cfg.MinBackoff, cfg.MaxBackoff = time.Millisecond, 4*time.Millisecond
	cfg.Logger = slog.New(sig)
	a, err := tcp.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Send(context.Background(), "down", "svc", nil); err != nil {
		t.Fatal(err)
	}
	for i := range 8 { // enough doublings to pass MaxBackoff twice over
		w := attr(sig.nextRecord(t), "wait").Duration()
		if w < cfg.MinBackoff/2 || w > cfg.MaxBackoff {
			t.Fatalf("wait #%d before reconnecting = %v; want within [%v, %v]", i, w, cfg.MinBackoff/2, cfg.MaxBackoff)
		}
	}
}

// TestMessagesWaitForPeerToComeUp checks that messages sent while a peer
// is not yet reachable (within the queue's bounds) are delivered, in
// order, once it is: the message the writer took before its first dial
// failed included.
func TestMessagesWaitForPeerToComeUp(t *testing.T) {
	addr := freeAddr(t)
	sig := newLogSignal("backing off")
	cfg := tcp.DefaultConfig()
	cfg.ID = "a"
	cfg.Peers = map[transport.NodeID]string{"b": addr}
	cfg.MinBackoff, cfg.MaxBackoff = time.Millisecond, 10*time.Millisecond
	cfg.Logger = slog.New(sig)
	a, err := tcp.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx := context.Background()
	if err := a.Send(ctx, "b", "svc", []byte("first")); err != nil {
		t.Fatal(err)
	}
	sig.next(t) // the writer holds "first" and could not connect
	if err := a.Send(ctx, "b", "svc", []byte("second")); err != nil {
		t.Fatal(err)
	}
	cfg = tcp.DefaultConfig()
	cfg.ID = "b"
	cfg.ListenAddr = addr
	b, err := tcp.Listen(cfg)
	if err != nil {
		t.Fatalf("starting b on %s: %v", addr, err)
	}
	defer b.Close()
	in := newInbox()
	b.Handle("svc", in.handle)
	for _, want := range []string{"first", "second"} {
		if m := in.next(t); string(m.Payload) != want {
			t.Fatalf("b received %q; want %q (every message, in send order)", m.Payload, want)
		}
	}
}

// TestIdleConnectionOutlivesHandshakeTimeouts checks that the deadlines
// of the handshake (HandshakeTimeout on the acceptor, DialTimeout on the
// dialler) are lifted once it succeeds: an idle link stays up, and later
// messages use the same connection. The pause only gives a wrongly kept
// deadline time to fire; a correct transport passes however long it is.
func TestIdleConnectionOutlivesHandshakeTimeouts(t *testing.T) {
	// Short, so that a deadline wrongly kept fires during the pause, but
	// with room for a first handshake on a busy machine (a slow one would
	// redial, and the count of dials below would read 2).
	const timeout = 250 * time.Millisecond
	ts := cluster(t, []transport.NodeID{"a", "b"}, func(c *tcp.Config) {
		c.HandshakeTimeout, c.DialTimeout = timeout, timeout
	})
	a, b := ts[0], ts[1]
	in := newInbox()
	b.Handle("svc", in.handle)
	ctx := context.Background()
	for i, msg := range []string{"before", "after"} {
		if i > 0 {
			time.Sleep(2 * timeout) // idle past both deadlines
		}
		if err := a.Send(ctx, "b", "svc", []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if m := in.next(t); string(m.Payload) != msg {
			t.Fatalf("b received %q; want %q", m.Payload, msg)
		}
	}
	if d := a.Stats().Dials; d != 1 {
		t.Errorf("a.Stats().Dials = %d after an idle pause; want 1 (the connection stayed up)", d)
	}
}

// TestQueueBytesReleased checks that bytes leave the queue's byte bound
// once the writer has taken their messages, whether one at a time or in a
// batch, so that a peer that keeps up is never refused.
func TestQueueBytesReleased(t *testing.T) {
	ts := cluster(t, []transport.NodeID{"a", "b"}, func(c *tcp.Config) {
		c.MaxFrameSize, c.QueueBytes = 4096, 4096
	})
	a, b := ts[0], ts[1]
	in := newInbox()
	b.Handle("svc", in.handle)
	ctx := context.Background()
	payload := make([]byte, 1000)
	tests := []struct {
		name  string
		burst int // messages sent before waiting for them
	}{
		{"one at a time", 1},
		{"bursts", 4},
	}
	for _, tt := range tests {
		// 20 rounds carry 5 times the byte bound.
		for range 20 {
			for i := range tt.burst {
				if err := a.Send(ctx, "b", "svc", payload); err != nil {
					t.Fatalf("%s: Send #%d = %v; want nil (b keeps up)", tt.name, i, err)
				}
			}
			for range tt.burst {
				in.next(t)
			}
		}
		for _, st := range a.Status() {
			if st.ID == "b" && (st.QueuedBytes != 0 || st.Queued != 0) {
				t.Errorf("%s: Status() of b = %+v after every message arrived; want an empty queue", tt.name, st)
			}
		}
	}
}
