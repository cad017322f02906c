package tcp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/distkit/distkit/transport"
)

// Config configures a Transport. Start from DefaultConfig and set ID and
// Peers.
type Config struct {
	// ID is this node's name; it must be 1 to 255 bytes.
	ID transport.NodeID
	// ListenAddr is the address Listen binds, such as ":7000" or
	// "127.0.0.1:0" (any free port; see Transport.Addr). New ignores it.
	ListenAddr string
	// AdvertiseAddr is the address this node tells the peers it dials,
	// so that they can reach it back (see LearnPeers). Empty means the
	// listener's address; a missing or unspecified host (":7000",
	// "0.0.0.0:7000") is replaced by the address the connection comes from.
	AdvertiseAddr string
	// LearnPeers adds a node that connects to us, and is not yet in the
	// address book, under the address it advertises. It lets a node answer
	// (for example RPC responses) a client it was not configured with. A
	// peer removed with RemovePeer is learned again when it reconnects.
	LearnPeers bool
	// Peers is the static address book: the nodes this one can send to and
	// their "host:port" addresses. AddPeer and RemovePeer change it later.
	// An entry for ID itself is ignored: messages to self are delivered
	// locally. Inbound connections are accepted from any node ID (subject
	// to TLS).
	Peers map[transport.NodeID]string

	// TLS, when not nil, secures every connection: it is the server
	// configuration for inbound connections and the client configuration
	// for outbound ones, so it normally carries this node's certificate,
	// RootCAs and, for mutual TLS, ClientCAs with ClientAuth set to
	// tls.RequireAndVerifyClientCert. A peer's verified certificate must
	// name the node ID it claims (as a SAN DNS name, a SAN URI or the
	// subject CN), or the connection is refused. When ServerName is empty,
	// outbound connections verify the server's chain against RootCAs and
	// its certificate against the peer's node ID instead of a host name.
	TLS *tls.Config

	// MaxFrameSize bounds a frame's body: 1 byte of service-name length,
	// the service name and the payload. Larger sends fail with
	// transport.ErrMessageTooLarge; a larger incoming frame closes the
	// connection. Both ends should use the same value.
	MaxFrameSize int
	// QueueSize bounds the messages queued towards one peer; Send fails
	// with transport.ErrQueueFull when the queue is full.
	QueueSize int
	// QueueBytes bounds the payload bytes queued towards one peer, so that
	// large messages cannot exhaust memory before QueueSize is reached.
	// It must be at least MaxFrameSize.
	QueueBytes int
	// WriteBufferSize and ReadBufferSize size the per-connection buffers.
	// Writes are coalesced in the write buffer and flushed when a peer's
	// queue drains.
	WriteBufferSize int
	ReadBufferSize  int

	// DialTimeout bounds connecting to a peer, including the handshake.
	DialTimeout time.Duration
	// HandshakeTimeout bounds how long an inbound connection may take to
	// complete the TLS and distkit handshakes; silent clients are dropped.
	HandshakeTimeout time.Duration
	// WriteTimeout bounds one flush to a peer. A peer that does not read
	// for this long has its connection closed and reopened.
	WriteTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts to a peer: it doubles after each failure up to MaxBackoff,
	// with random jitter, and resets after a successful handshake.
	MinBackoff time.Duration
	MaxBackoff time.Duration

	// Logger receives connection events and the reasons connections are
	// closed. nil means silent.
	Logger *slog.Logger
}

// DefaultConfig returns the recommended settings. ID and Peers are empty.
func DefaultConfig() Config {
	return Config{
		ListenAddr:       "127.0.0.1:0",
		LearnPeers:       true,
		MaxFrameSize:     16 << 20,
		QueueSize:        4096,
		QueueBytes:       64 << 20,
		WriteBufferSize:  64 << 10,
		ReadBufferSize:   64 << 10,
		DialTimeout:      5 * time.Second,
		HandshakeTimeout: 5 * time.Second,
		WriteTimeout:     10 * time.Second,
		MinBackoff:       20 * time.Millisecond,
		MaxBackoff:       2 * time.Second,
	}
}

// maxIDLen bounds node IDs: the handshake encodes their length in a byte.
const maxIDLen = 255

// minFrameSize leaves room for a service name and a small payload.
const minFrameSize = 512

// Validate reports the first invalid field.
func (c Config) Validate() error {
	if err := validateID(c.ID); err != nil {
		return fmt.Errorf("%w: Config.ID: %w", ErrInvalidConfig, err)
	}
	for id, addr := range c.Peers {
		if err := validatePeer(id, addr); err != nil {
			return fmt.Errorf("%w: Config.Peers: %w", ErrInvalidConfig, err)
		}
	}
	if len(c.AdvertiseAddr) > 255 {
		return fmt.Errorf("%w: Config.AdvertiseAddr is %d bytes; the limit is 255", ErrInvalidConfig, len(c.AdvertiseAddr))
	}
	type positive struct {
		name  string
		value time.Duration
	}
	for _, f := range []positive{
		{"DialTimeout", c.DialTimeout},
		{"HandshakeTimeout", c.HandshakeTimeout},
		{"WriteTimeout", c.WriteTimeout},
		{"MinBackoff", c.MinBackoff},
		{"MaxBackoff", c.MaxBackoff},
	} {
		if f.value <= 0 {
			return fmt.Errorf("%w: Config.%s = %v; want > 0", ErrInvalidConfig, f.name, f.value)
		}
	}
	switch {
	case c.MaxBackoff < c.MinBackoff:
		return fmt.Errorf("%w: Config.MaxBackoff = %v is below MinBackoff = %v", ErrInvalidConfig, c.MaxBackoff, c.MinBackoff)
	case c.MaxFrameSize < minFrameSize || c.MaxFrameSize > maxFrameLimit:
		return fmt.Errorf("%w: Config.MaxFrameSize = %d; want %d to %d", ErrInvalidConfig, c.MaxFrameSize, minFrameSize, maxFrameLimit)
	case c.QueueSize <= 0:
		return fmt.Errorf("%w: Config.QueueSize = %d; want > 0", ErrInvalidConfig, c.QueueSize)
	case c.QueueBytes < c.MaxFrameSize:
		return fmt.Errorf("%w: Config.QueueBytes = %d is below MaxFrameSize = %d", ErrInvalidConfig, c.QueueBytes, c.MaxFrameSize)
	case c.WriteBufferSize < 4096:
		return fmt.Errorf("%w: Config.WriteBufferSize = %d; want >= 4096", ErrInvalidConfig, c.WriteBufferSize)
	case c.ReadBufferSize < 4096:
		return fmt.Errorf("%w: Config.ReadBufferSize = %d; want >= 4096", ErrInvalidConfig, c.ReadBufferSize)
	}
	return nil
}

// ErrInvalidConfig is wrapped by the errors of Config.Validate (and so of
// Listen and New), of AddPeer for a bad ID or address, and of the methods
// of a Transport that was not made by Listen or New. Compare with
// errors.Is.
var ErrInvalidConfig = errors.New("tcp: invalid config")

func validateID(id transport.NodeID) error {
	if id == "" {
		return errors.New("empty node ID")
	}
	if len(id) > maxIDLen {
		return fmt.Errorf("node ID is %d bytes; the limit is %d", len(id), maxIDLen)
	}
	return nil
}

func validatePeer(id transport.NodeID, addr string) error {
	if err := validateID(id); err != nil {
		return err
	}
	if addr == "" {
		return fmt.Errorf("peer %q has an empty address", id)
	}
	return nil
}
