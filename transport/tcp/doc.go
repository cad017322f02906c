// Package tcp is a transport.Transport over TCP, optionally secured with
// TLS or mutual TLS.
//
//	cfg := tcp.DefaultConfig()
//	cfg.ID = "n1"
//	cfg.ListenAddr = ":7001"
//	cfg.Peers = map[transport.NodeID]string{"n2": "10.0.0.2:7001", "n3": "10.0.0.3:7001"}
//	t, err := tcp.Listen(cfg)
//	if err != nil { … }
//	defer t.Close()
//	t.Handle("raft", func(msg transport.Message) { … })
//	err = t.Send(ctx, "n2", "raft", payload)
//
// # Connections
//
// Each node keeps one outbound connection per peer, dialled when there is
// something to send and redialled after a failure with capped exponential
// backoff and jitter (Config.MinBackoff, MaxBackoff). Connections are
// one-way: a node writes to its outbound connections and reads from the
// inbound ones its peers opened, so two nodes that talk both ways share
// two connections. A connection opens with a handshake that exchanges the
// protocol version (ProtocolVersion), node IDs and the dialler's advertised
// address; the acceptor refuses a dialler that expected another node, and
// with Config.LearnPeers (the default) adds an unknown dialler to its
// address book, so a server can answer clients it was not configured with.
// A node that reconnects replaces its previous inbound connection.
//
// # Frames and backpressure
//
// A message travels as a length-prefixed frame (4-byte big-endian body
// length, 1-byte service-name length, service name, payload). Send puts
// the message in the peer's bounded queue (Config.QueueSize messages and
// Config.QueueBytes bytes) and returns; it never blocks, and a full queue,
// which is what a slow or unreachable peer produces, yields
// transport.ErrQueueFull. The peer's writer drains
// the queue into a buffered writer and flushes once the queue is empty, so
// many small messages share one system call under load.
//
// Config.MaxFrameSize (16 MiB by default) is enforced on both ends: Send
// refuses larger messages with transport.ErrMessageTooLarge, and a reader
// that sees a larger length, or any malformed frame, closes that
// connection and logs the reason. A reader never allocates more than about
// twice the bytes that actually arrived, whatever length a frame claims.
// Inbound connections must finish their handshakes within
// Config.HandshakeTimeout; silent clients are dropped.
//
// # TLS
//
// With Config.TLS set, every connection runs TLS first. For mutual TLS,
// give the configuration this node's certificate, RootCAs, ClientCAs and
// ClientAuth: tls.RequireAndVerifyClientCert. A node's certificate names
// its node ID as a SAN DNS name, a SAN URI or the subject CN; a peer whose
// claimed ID does not match its certificate is refused, in both
// directions.
//
// # Errors
//
// Send returns the transport sentinels wrapped with context (ErrClosed,
// ErrUnknownPeer, ErrMessageTooLarge, ErrQueueFull) or ctx's error. A bad
// Config, a bad AddPeer argument and the methods of a Transport not made by
// Listen or New give errors wrapping ErrInvalidConfig. Compare with
// errors.Is.
//
// # Guarantees
//
// Messages from one node to another arrive in the order Send accepted them
// while the connection stays up (per-link FIFO); messages queued or in
// flight when a connection breaks may be lost, and nothing is retried
// beyond reconnecting. Handlers for messages from one peer run one after
// another on that connection's reader goroutine, so they must return
// quickly; messages from different peers are handled concurrently. A
// panicking handler loses its message and is logged; the connection and
// node continue. Transport is safe for concurrent use, and Close waits for
// every goroutine it started.
//
// # Fault model
//
// Crash-recovery nodes and an asynchronous network that loses, delays and
// breaks connections. Peers are trusted once authenticated: with TLS their
// identity is verified; without TLS any client may claim any node ID, so
// run plaintext only on a trusted network. LearnPeers only adds IDs missing
// from the address book: a dialler can never re-address a known peer.
//
// # Tests
//
// The tests run on real loopback sockets. The random-stream property test
// runs a few seeds by default and 100 with DISTKIT_SOAK=1.
package tcp
