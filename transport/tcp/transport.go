package tcp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distkit/distkit/transport"
)

// Transport is a transport.Transport over TCP (optionally TLS). Create it
// with Listen or New; it is safe for concurrent use.
type Transport struct {
	cfg       Config
	advertise string // the address sent in hellos
	log       *slog.Logger
	ln        net.Listener
	closed    atomic.Bool
	done      chan struct{} // closed when Close starts
	closeOnce sync.Once
	// wg counts every goroutine the transport starts: the accept loop,
	// inbound readers, peer writers and their connection watchers.
	wg sync.WaitGroup

	// peersMu serialises changes to peers and to closed-ness with respect
	// to peers. Send reads peers without locking through the atomic
	// pointer; writers replace the whole map (copy on write).
	peersMu sync.Mutex
	peers   atomic.Pointer[map[transport.NodeID]*peer]

	// handlersMu guards handlers.
	handlersMu sync.RWMutex
	handlers   map[string]transport.Handler

	// connsMu guards accepted (every accepted connection, so Close can
	// close it) and inbound (the handshaken connection from each node, so
	// a reconnecting node replaces its old one).
	connsMu  sync.Mutex
	accepted map[net.Conn]struct{}
	inbound  map[transport.NodeID]net.Conn

	received, bytesReceived, queueFull, dials, dialFailures,
	refused, badFrames, panics, unhandled atomic.Uint64
	// sent and bytesSent of removed peers; live peers keep their own.
	removedSent, removedBytesSent atomic.Uint64
}

var (
	_ transport.Transport    = (*Transport)(nil)
	_ transport.DoneNotifier = (*Transport)(nil)
)

var (
	// errClosed is what Send returns after Close; built once so the hot
	// path does not allocate.
	errClosed = fmt.Errorf("tcp: send: %w", transport.ErrClosed)
	// errNotStarted is what the methods of a zero Transport return.
	errNotStarted = fmt.Errorf("%w: Transport used without Listen or New", ErrInvalidConfig)
)

// started reports whether t was made by New (a zero Transport or a nil
// pointer was not).
func (t *Transport) started() bool { return t != nil && t.done != nil }

// Listen validates cfg, listens on cfg.ListenAddr and returns the running
// transport.
func Listen(cfg Config) (*Transport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("tcp: listen: %w", err)
	}
	t, err := New(cfg, ln)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return t, nil
}

// New returns a transport that accepts connections on ln, which it owns
// from now on (Close closes it). cfg.ListenAddr is ignored. TLS, if
// configured, is applied on top of ln: pass a plain TCP listener.
func New(cfg Config, ln net.Listener) (*Transport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if ln == nil {
		return nil, fmt.Errorf("%w: New: nil listener", ErrInvalidConfig)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Transport{
		cfg:      cfg,
		log:      log.With("node", string(cfg.ID)),
		ln:       ln,
		done:     make(chan struct{}),
		handlers: make(map[string]transport.Handler),
		accepted: make(map[net.Conn]struct{}),
		inbound:  make(map[transport.NodeID]net.Conn),
	}
	t.advertise = cfg.AdvertiseAddr
	if t.advertise == "" {
		t.advertise = ln.Addr().String()
	}
	if len(t.advertise) > 255 {
		return nil, fmt.Errorf("tcp: listener address %q is longer than 255 bytes; set Config.AdvertiseAddr", t.advertise)
	}
	peers := make(map[transport.NodeID]*peer, len(cfg.Peers)+1)
	peers[cfg.ID] = t.newPeer(cfg.ID, "") // sends to self are delivered locally
	for id, addr := range cfg.Peers {
		if id != cfg.ID {
			peers[id] = t.newPeer(id, addr)
		}
	}
	t.peers.Store(&peers)
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

// ID implements transport.Transport.
func (t *Transport) ID() transport.NodeID {
	if t == nil {
		return ""
	}
	return t.cfg.ID
}

// Addr returns the address the transport listens on (nil for a zero
// Transport).
func (t *Transport) Addr() net.Addr {
	if !t.started() {
		return nil
	}
	return t.ln.Addr()
}

// Done implements transport.DoneNotifier.
func (t *Transport) Done() <-chan struct{} {
	if t == nil {
		return nil
	}
	return t.done
}

// Send implements transport.Transport. It queues the message for the
// peer's writer and never blocks: a full queue yields ErrQueueFull. A
// service name is at most 255 bytes.
func (t *Transport) Send(ctx context.Context, to transport.NodeID, service string, payload []byte) error {
	if !t.started() {
		return errNotStarted
	}
	if t.closed.Load() {
		return errClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(service) > maxServiceLen {
		return fmt.Errorf("tcp: service name of %d bytes; the limit is %d", len(service), maxServiceLen)
	}
	if n := frameBodyLen(service, payload); n > t.cfg.MaxFrameSize {
		return fmt.Errorf("%w: %d-byte frame to %s, limit %d", transport.ErrMessageTooLarge, n, to, t.cfg.MaxFrameSize)
	}
	p := (*t.peers.Load())[to]
	if p == nil {
		return fmt.Errorf("%w: %q", transport.ErrUnknownPeer, to)
	}
	if p.queued.Add(int64(len(payload))) > int64(t.cfg.QueueBytes) {
		p.queued.Add(-int64(len(payload)))
		t.queueFull.Add(1)
		return p.errFull
	}
	select {
	case p.queue <- outMsg{service: service, payload: payload}:
		return nil
	default:
		p.queued.Add(-int64(len(payload)))
		t.queueFull.Add(1)
		return p.errFull
	}
}

// Handle implements transport.Transport.
func (t *Transport) Handle(service string, h transport.Handler) {
	if !t.started() {
		return
	}
	t.handlersMu.Lock()
	defer t.handlersMu.Unlock()
	if h == nil {
		delete(t.handlers, service)
		return
	}
	t.handlers[service] = h
}

// AddPeer adds id to the address book or changes its address; a changed
// address takes effect at once (the current connection is closed).
func (t *Transport) AddPeer(id transport.NodeID, addr string) error {
	if !t.started() {
		return errNotStarted
	}
	if err := validatePeer(id, addr); err != nil {
		return fmt.Errorf("%w: AddPeer: %w", ErrInvalidConfig, err)
	}
	if id == t.cfg.ID {
		return fmt.Errorf("%w: AddPeer(%q): that is this node", ErrInvalidConfig, id)
	}
	return t.addPeer(id, addr, true)
}

// addPeer adds id at addr; an existing peer gets the new address only if
// replace is set.
func (t *Transport) addPeer(id transport.NodeID, addr string, replace bool) error {
	t.peersMu.Lock()
	defer t.peersMu.Unlock()
	if t.closed.Load() {
		return fmt.Errorf("tcp: add peer %q: %w", id, transport.ErrClosed)
	}
	old := *t.peers.Load()
	if p := old[id]; p != nil {
		if replace {
			p.setAddr(addr)
		}
		return nil
	}
	peers := make(map[transport.NodeID]*peer, len(old)+1)
	for k, v := range old {
		peers[k] = v
	}
	peers[id] = t.newPeer(id, addr)
	t.peers.Store(&peers)
	return nil
}

// RemovePeer removes id from the address book, dropping the messages still
// queued for it. Later sends to id fail with ErrUnknownPeer; inbound
// connections from id are not affected.
func (t *Transport) RemovePeer(id transport.NodeID) {
	if !t.started() || id == t.cfg.ID {
		return
	}
	t.peersMu.Lock()
	defer t.peersMu.Unlock()
	old := *t.peers.Load()
	p := old[id]
	if p == nil {
		return
	}
	peers := make(map[transport.NodeID]*peer, len(old))
	for k, v := range old {
		if k != id {
			peers[k] = v
		}
	}
	t.peers.Store(&peers)
	p.stop()
	t.removedSent.Add(p.sent.Load())
	t.removedBytesSent.Add(p.bytesSent.Load())
}

// Stats are a transport's counters since it started.
type Stats struct {
	Sent          uint64 // frames written to connections (possibly lost if the connection then broke)
	BytesSent     uint64 // frame bytes written, headers included
	Received      uint64 // frames read from connections
	BytesReceived uint64 // frame bytes read, headers included
	QueueFull     uint64 // sends refused with ErrQueueFull
	Dials         uint64 // outbound connections established
	DialFailures  uint64 // failed outbound connection attempts (dial, TLS or handshake)
	Refused       uint64 // inbound connections closed during the handshake
	BadFrames     uint64 // inbound connections closed for a malformed or oversized frame
	Unhandled     uint64 // messages dropped for want of a handler
	Panics        uint64 // handler panics recovered
	Peers         int    // nodes in the address book, this one included
}

// Stats returns the transport's counters.
func (t *Transport) Stats() Stats {
	if !t.started() {
		return Stats{}
	}
	s := Stats{
		Sent:          t.removedSent.Load(),
		BytesSent:     t.removedBytesSent.Load(),
		Received:      t.received.Load(),
		BytesReceived: t.bytesReceived.Load(),
		QueueFull:     t.queueFull.Load(),
		Dials:         t.dials.Load(),
		DialFailures:  t.dialFailures.Load(),
		Refused:       t.refused.Load(),
		BadFrames:     t.badFrames.Load(),
		Unhandled:     t.unhandled.Load(),
		Panics:        t.panics.Load(),
	}
	peers := *t.peers.Load()
	s.Peers = len(peers)
	for _, p := range peers {
		s.Sent += p.sent.Load()
		s.BytesSent += p.bytesSent.Load()
	}
	return s
}

// PeerStatus describes the outbound side of one link.
type PeerStatus struct {
	ID          transport.NodeID
	Addr        string // empty for this node itself
	Connected   bool   // an outbound connection is established
	Queued      int    // messages waiting in the queue
	QueuedBytes int64  // payload bytes waiting in the queue
	Sent        uint64 // frames written to this peer's connections
}

// Status returns the state of every peer in the address book, this node
// included, sorted by ID.
func (t *Transport) Status() []PeerStatus {
	if !t.started() {
		return nil
	}
	peers := *t.peers.Load()
	out := make([]PeerStatus, 0, len(peers))
	for id, p := range peers {
		p.mu.Lock()
		st := PeerStatus{ID: id, Addr: p.addr, Connected: p.conn != nil && p.connected}
		p.mu.Unlock()
		st.Queued = len(p.queue)
		st.QueuedBytes = p.queued.Load()
		st.Sent = p.sent.Load()
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b PeerStatus) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return out
}

// Close stops accepting, closes every connection, drops queued messages
// and waits for the transport's goroutines to exit. It is idempotent.
func (t *Transport) Close() error {
	if !t.started() {
		return errNotStarted
	}
	t.closeOnce.Do(func() {
		t.peersMu.Lock()
		t.closed.Store(true)
		close(t.done)
		for _, p := range *t.peers.Load() {
			p.stop()
		}
		t.peersMu.Unlock()
		t.ln.Close()
		t.connsMu.Lock()
		for c := range t.accepted {
			c.Close()
		}
		t.connsMu.Unlock()
		t.wg.Wait()
	})
	return nil
}

// deliver passes msg to its service's handler, containing a panic.
func (t *Transport) deliver(msg transport.Message) {
	t.handlersMu.RLock()
	h := t.handlers[msg.Service]
	t.handlersMu.RUnlock()
	if h == nil {
		t.unhandled.Add(1)
		return
	}
	defer func() {
		if r := recover(); r != nil {
			t.panics.Add(1)
			t.log.Error("handler panicked; message dropped", "from", string(msg.From), "service", msg.Service, "panic", r)
		}
	}()
	h(msg)
}

// acceptLoop accepts inbound connections until the listener closes.
func (t *Transport) acceptLoop() {
	defer t.wg.Done()
	var delay time.Duration
	for {
		conn, err := t.ln.Accept()
		if err != nil {
			if t.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Resource exhaustion (EMFILE and the like): back off briefly
			// instead of spinning, like net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.log.Warn("accept failed; retrying", "err", err, "delay", delay)
			select {
			case <-time.After(delay):
				continue
			case <-t.done:
				return
			}
		}
		delay = 0
		t.connsMu.Lock()
		if t.closed.Load() {
			t.connsMu.Unlock()
			conn.Close()
			return
		}
		t.accepted[conn] = struct{}{}
		t.wg.Add(1)
		t.connsMu.Unlock()
		go t.serveConn(conn)
	}
}

// serveConn runs the handshake on an accepted connection and then reads
// its frames until it closes or misbehaves.
func (t *Transport) serveConn(raw net.Conn) {
	defer t.wg.Done()
	defer func() {
		t.connsMu.Lock()
		delete(t.accepted, raw)
		t.connsMu.Unlock()
		raw.Close()
	}()
	remote := raw.RemoteAddr().String()
	from, advertised, conn, err := t.acceptHandshake(raw)
	if err != nil {
		t.refused.Add(1)
		if !t.closed.Load() {
			t.log.Warn("inbound connection refused", "remote", remote, "reason", err)
		}
		return
	}
	if t.cfg.LearnPeers && advertised != "" && from != t.cfg.ID {
		if addr, err := reachable(advertised, raw.RemoteAddr()); err == nil {
			_ = t.addPeer(from, addr, false)
		} else {
			t.log.Debug("ignoring advertised address", "peer", string(from), "addr", advertised, "err", err)
		}
	}
	t.connsMu.Lock()
	if old := t.inbound[from]; old != nil {
		// A node has one outbound connection to us; a new one means it
		// reconnected (perhaps restarted) and the old one is stale.
		old.Close()
	}
	t.inbound[from] = raw
	t.connsMu.Unlock()
	defer func() {
		t.connsMu.Lock()
		if t.inbound[from] == raw {
			delete(t.inbound, from)
		}
		t.connsMu.Unlock()
	}()
	t.log.Debug("inbound connection open", "peer", string(from), "remote", remote)

	fr := frameReader{r: bufio.NewReaderSize(conn, t.cfg.ReadBufferSize), max: t.cfg.MaxFrameSize}
	for {
		service, payload, err := fr.next()
		if err != nil {
			switch {
			case errors.Is(err, errMalformedFrame) || errors.Is(err, errFrameTooLarge):
				t.badFrames.Add(1)
				t.log.Warn("closing inbound connection", "peer", string(from), "remote", remote, "reason", err)
			case t.closed.Load():
			default:
				t.log.Debug("inbound connection closed", "peer", string(from), "remote", remote, "err", err)
			}
			return
		}
		t.received.Add(1)
		t.bytesReceived.Add(uint64(frameHeaderLen + len(service) + len(payload)))
		t.deliver(transport.Message{From: from, To: t.cfg.ID, Service: service, Payload: payload})
	}
}

// acceptHandshake runs TLS (if configured) and the distkit handshake on an
// inbound connection within HandshakeTimeout. It returns the peer's
// verified ID and the connection to read frames from.
func (t *Transport) acceptHandshake(raw net.Conn) (from transport.NodeID, advertised string, _ net.Conn, _ error) {
	if err := raw.SetDeadline(time.Now().Add(t.cfg.HandshakeTimeout)); err != nil {
		return "", "", nil, err
	}
	conn := raw
	var tc *tls.Conn
	if t.cfg.TLS != nil {
		tc = tls.Server(raw, t.cfg.TLS)
		if err := tc.Handshake(); err != nil {
			return "", "", nil, fmt.Errorf("tls: %w", err)
		}
		conn = tc
	}
	h, err := readHello(conn)
	if errors.Is(err, errBadVersion) {
		_, _ = conn.Write(appendAck(nil, ack{version: ProtocolVersion, status: statusBadVersion, id: t.cfg.ID}))
		return "", "", nil, err
	}
	if err != nil {
		return "", "", nil, err
	}
	status := statusOK
	var refusal error
	if h.to != t.cfg.ID {
		status, refusal = statusWrongNode, fmt.Errorf("tcp: %s dialled %q, but this is %q", h.from, h.to, t.cfg.ID)
	} else if tc != nil {
		if err := checkPeerIdentity(tc.ConnectionState(), h.from); err != nil {
			status, refusal = statusIdentity, err
		}
	}
	if _, err := conn.Write(appendAck(nil, ack{version: ProtocolVersion, status: status, id: t.cfg.ID})); err != nil {
		return "", "", nil, err
	}
	if refusal != nil {
		return "", "", nil, refusal
	}
	if err := raw.SetDeadline(time.Time{}); err != nil {
		return "", "", nil, err
	}
	return h.from, h.addr, conn, nil
}

// reachable turns an advertised address into one to dial: a missing or
// unspecified host is replaced by the host the connection came from.
func reachable(advertised string, remote net.Addr) (string, error) {
	host, port, err := net.SplitHostPort(advertised)
	if err != nil {
		return "", err
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		rhost, _, err := net.SplitHostPort(remote.String())
		if err != nil {
			return "", err
		}
		host = rhost
	}
	return net.JoinHostPort(host, port), nil
}
