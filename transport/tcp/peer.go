package tcp

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distkit/distkit/transport"
)

// outMsg is a message waiting in a peer's queue.
type outMsg struct {
	service string
	payload []byte
}

// peer is the outbound side of one link: a bounded queue and the goroutine
// that owns the single connection to the peer, dialling it on demand,
// coalescing queued messages into buffered writes and reconnecting with
// capped exponential backoff.
type peer struct {
	t       *Transport
	id      transport.NodeID
	local   bool  // the transport's own node: deliver without a socket
	errFull error // preallocated: ErrQueueFull is returned under load
	// queue holds the messages accepted by Send and not yet written; its
	// capacity is Config.QueueSize, the bound that turns a slow or dead
	// peer into ErrQueueFull instead of a blocked caller.
	queue chan outMsg
	// ctx ends when the peer is removed or the transport closes.
	ctx    context.Context
	cancel context.CancelFunc

	// mu guards addr, conn (the current connection, closed by stop and
	// setAddr to unblock the writer) and connected (conn has completed
	// its handshake).
	mu        sync.Mutex
	addr      string
	conn      net.Conn
	connected bool

	// queued counts the payload bytes in queue (Config.QueueBytes):
	// Send adds before enqueueing, the writer subtracts after dequeueing.
	queued atomic.Int64

	sent, bytesSent atomic.Uint64
}

// newPeer creates a peer and starts its goroutine; callers hold peersMu
// (or are in New) so the goroutine is counted before Close can wait.
func (t *Transport) newPeer(id transport.NodeID, addr string) *peer {
	ctx, cancel := context.WithCancel(context.Background())
	p := &peer{
		t:       t,
		id:      id,
		local:   id == t.cfg.ID,
		errFull: fmt.Errorf("%w: queue towards %s holds %d messages or %d bytes", transport.ErrQueueFull, id, t.cfg.QueueSize, t.cfg.QueueBytes),
		queue:   make(chan outMsg, t.cfg.QueueSize),
		ctx:     ctx,
		cancel:  cancel,
		addr:    addr,
	}
	t.wg.Add(1)
	if p.local {
		go p.runLocal()
	} else {
		go p.run()
	}
	return p
}

// stop ends the peer's goroutine and closes its connection.
func (p *peer) stop() {
	p.cancel()
	p.mu.Lock()
	if p.conn != nil {
		p.conn.Close()
	}
	p.mu.Unlock()
}

// setAddr changes the peer's address and drops the connection to the old one.
func (p *peer) setAddr(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.addr == addr {
		return
	}
	p.addr = addr
	if p.conn != nil {
		p.conn.Close()
	}
}

// runLocal delivers messages a node sends to itself.
func (p *peer) runLocal() {
	defer p.t.wg.Done()
	for {
		select {
		case m := <-p.queue:
			p.queued.Add(-int64(len(m.payload)))
			p.t.deliver(transport.Message{From: p.id, To: p.id, Service: m.service, Payload: m.payload})
		case <-p.ctx.Done():
			return
		}
	}
}

// run owns the connection to the peer until the peer is stopped.
func (p *peer) run() {
	defer p.t.wg.Done()
	log := p.t.log.With("peer", string(p.id))
	backoff := p.t.cfg.MinBackoff
	var held heldMsg // taken from the queue, not yet written
	for {
		// Dial only when there is something to send, so idle or dead
		// peers cost no connection attempts.
		if !held.ok {
			select {
			case held.m = <-p.queue:
				held.ok = true
				p.queued.Add(-int64(len(held.m.payload)))
			case <-p.ctx.Done():
				return
			}
		}
		conn, err := p.dial()
		if err != nil {
			if p.ctx.Err() != nil {
				return
			}
			p.t.dialFailures.Add(1)
			// Equal jitter: wait between backoff/2 and backoff, so peers
			// that lost the same node do not reconnect in lockstep.
			wait := backoff/2 + rand.N(backoff/2+1)
			log.Debug("connecting failed; backing off", "err", err, "wait", wait)
			backoff = min(2*backoff, p.t.cfg.MaxBackoff)
			select {
			case <-time.After(wait):
				continue
			case <-p.ctx.Done():
				return
			}
		}
		p.t.dials.Add(1)
		backoff = p.t.cfg.MinBackoff
		log.Debug("connected", "addr", conn.RemoteAddr().String())
		err = p.writeLoop(conn, &held)
		p.mu.Lock()
		p.conn, p.connected = nil, false
		p.mu.Unlock()
		conn.Close()
		if p.ctx.Err() != nil {
			return
		}
		log.Info("connection lost; will reconnect", "err", err)
	}
}

// heldMsg is a message taken from the queue and not yet written.
type heldMsg struct {
	m  outMsg
	ok bool
}

// dial connects to the peer and runs TLS and the handshake, all within
// DialTimeout.
func (p *peer) dial() (net.Conn, error) {
	cfg := &p.t.cfg
	p.mu.Lock()
	addr := p.addr
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(p.ctx, cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// Publish the connection before the handshake, so that stop and
	// setAddr can interrupt a handshake with a silent server.
	if !p.publish(raw, addr) {
		raw.Close()
		return nil, fmt.Errorf("tcp: connection to %s superseded", p.id)
	}
	conn, err := p.handshake(ctx, raw)
	if err == nil && !p.publish(conn, addr) {
		err = fmt.Errorf("tcp: connection to %s superseded", p.id)
	}
	if err == nil {
		p.mu.Lock()
		p.connected = true
		p.mu.Unlock()
	}
	if err != nil {
		p.publish(nil, addr)
		raw.Close()
		return nil, err
	}
	return conn, nil
}

// publish makes conn the peer's current connection unless the peer has
// stopped or changed its address since addr was read.
func (p *peer) publish(conn net.Conn, addr string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if conn != nil && (p.ctx.Err() != nil || p.addr != addr) {
		return false
	}
	p.conn = conn
	p.connected = false
	return true
}

func (p *peer) handshake(ctx context.Context, raw net.Conn) (net.Conn, error) {
	cfg := &p.t.cfg
	deadline, _ := ctx.Deadline()
	if err := raw.SetDeadline(deadline); err != nil {
		return nil, err
	}
	conn := raw
	if cfg.TLS != nil {
		tc := tls.Client(raw, clientTLS(cfg.TLS, p.id))
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		conn = tc
	}
	if _, err := conn.Write(appendHello(nil, hello{version: ProtocolVersion, from: cfg.ID, to: p.id, addr: p.t.advertise})); err != nil {
		return nil, err
	}
	a, err := readAck(conn)
	if err != nil {
		return nil, err
	}
	if a.id != p.id {
		return nil, fmt.Errorf("tcp: %s answered at the address of %s", a.id, p.id)
	}
	if err := raw.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return conn, nil
}

// writeLoop writes queued messages to conn until it fails or the peer
// stops. It coalesces: everything queued is written into the buffer and
// flushed once, when the queue is momentarily empty.
func (p *peer) writeLoop(conn net.Conn, held *heldMsg) error {
	cfg := &p.t.cfg
	bw := bufio.NewWriterSize(conn, cfg.WriteBufferSize)
	// broken is closed when the peer closes its end: the connection is
	// write-only, so a read that returns means it is gone, and the writer
	// reconnects before the next message rather than losing it.
	broken := make(chan struct{})
	p.t.wg.Add(1)
	go func() {
		defer p.t.wg.Done()
		var b [1]byte
		_, _ = conn.Read(b[:])
		close(broken)
	}()
	var frames, bytes uint64
	write := func(m *outMsg) {
		writeFrame(bw, m.service, m.payload)
		frames++
		bytes += uint64(frameHeaderLen + len(m.service) + len(m.payload))
	}
	for {
		if err := conn.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout)); err != nil {
			return err
		}
		if held.ok {
			write(&held.m)
			*held = heldMsg{}
		}
		// Drain at most a queue's worth per batch, so that steady traffic
		// still reaches the flush and the write deadline is renewed.
		var drained int64
	drain:
		for range cap(p.queue) {
			select {
			case m := <-p.queue:
				drained += int64(len(m.payload))
				write(&m)
			default:
				break drain
			}
		}
		p.queued.Add(-drained)
		// Count before flushing, so a receiver never sees a frame that
		// the sender's Stats do not count yet.
		p.sent.Add(frames)
		p.bytesSent.Add(bytes)
		frames, bytes = 0, 0
		if err := bw.Flush(); err != nil {
			return err
		}
		select {
		case held.m = <-p.queue:
			held.ok = true
			p.queued.Add(-int64(len(held.m.payload)))
		case <-broken:
			return io.EOF
		case <-p.ctx.Done():
			return p.ctx.Err()
		}
	}
}
