package tcp

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"

	"github.com/distkit/distkit/transport"
)

// ProtocolVersion is the version of the wire protocol (handshake and
// frames) this package speaks. Both ends must speak the same version.
const ProtocolVersion = 1

// The handshake opens every connection, after TLS if configured. The
// dialing node sends a hello, the accepting node answers with an ack:
//
//	hello: "DKT" version(1) len(1) from-ID len(1) to-ID len(1) address
//	ack:   "DKT" version(1) status(1) len(1) ID
//
// "to" is the ID the dialer expects to reach, so a stale address book entry
// is caught; "address" (possibly empty) is where the dialer can be reached,
// so the acceptor can answer a node it has never heard of (Config.LearnPeers).
// The ack carries the acceptor's ID. The magic and version come
// first in every version, so an acceptor can refuse a version it does not
// speak before parsing the rest.
var magic = [3]byte{'D', 'K', 'T'}

// handshakeStatus is the acceptor's verdict in an ack.
type handshakeStatus uint8

const (
	statusOK         handshakeStatus = 0
	statusBadVersion handshakeStatus = 1 // the acceptor speaks another version
	statusWrongNode  handshakeStatus = 2 // the dialer expected another node
	statusIdentity   handshakeStatus = 3 // the claimed ID does not match the TLS certificate
)

func (s handshakeStatus) String() string {
	switch s {
	case statusOK:
		return "ok"
	case statusBadVersion:
		return "unsupported protocol version"
	case statusWrongNode:
		return "wrong node"
	case statusIdentity:
		return "node ID does not match the certificate"
	}
	return fmt.Sprintf("status %d", uint8(s))
}

var (
	errBadHandshake = errors.New("tcp: malformed handshake")
	errBadVersion   = errors.New("tcp: unsupported protocol version")
	errRefused      = errors.New("tcp: handshake refused")
	errIdentity     = errors.New("tcp: node ID does not match the peer's certificate")
)

type hello struct {
	version  uint8
	from, to transport.NodeID
	addr     string // the dialer's advertised address; may be empty
}

type ack struct {
	version uint8
	status  handshakeStatus
	id      transport.NodeID
}

func appendHello(dst []byte, h hello) []byte {
	dst = append(dst, magic[:]...)
	dst = append(dst, h.version, byte(len(h.from)))
	dst = append(dst, h.from...)
	dst = append(dst, byte(len(h.to)))
	dst = append(dst, h.to...)
	dst = append(dst, byte(len(h.addr)))
	return append(dst, h.addr...)
}

func appendAck(dst []byte, a ack) []byte {
	dst = append(dst, magic[:]...)
	dst = append(dst, a.version, byte(a.status), byte(len(a.id)))
	return append(dst, a.id...)
}

// readPrefix reads the magic and version common to hellos and acks.
func readPrefix(r io.Reader) (uint8, error) {
	var p [4]byte
	if _, err := io.ReadFull(r, p[:]); err != nil {
		return 0, err
	}
	if [3]byte(p[:3]) != magic {
		return 0, fmt.Errorf("%w: bad magic %q", errBadHandshake, p[:3])
	}
	if p[3] != ProtocolVersion {
		return p[3], fmt.Errorf("%w: %d, want %d", errBadVersion, p[3], ProtocolVersion)
	}
	return p[3], nil
}

// readID reads a length-prefixed node ID of 1 to 255 bytes.
func readID(r io.Reader) (transport.NodeID, error) {
	s, err := readString(r)
	if err == nil && s == "" {
		err = fmt.Errorf("%w: empty node ID", errBadHandshake)
	}
	return transport.NodeID(s), err
}

// readString reads a string of 0 to 255 bytes prefixed by its length.
func readString(r io.Reader) (string, error) {
	var n [1]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return "", noEOF(err)
	}
	var s [255]byte
	if _, err := io.ReadFull(r, s[:n[0]]); err != nil {
		return "", noEOF(err)
	}
	return string(s[:n[0]]), nil
}

// readHello decodes a hello. A hello of another version yields
// errBadVersion (wrapped) with the version filled in.
func readHello(r io.Reader) (hello, error) {
	var h hello
	v, err := readPrefix(r)
	h.version = v
	if err != nil {
		return h, err
	}
	if h.from, err = readID(r); err != nil {
		return h, err
	}
	if h.to, err = readID(r); err != nil {
		return h, err
	}
	if h.addr, err = readString(r); err != nil {
		return h, err
	}
	return h, nil
}

// readAck decodes an ack; a refusal is returned as an error wrapping
// errRefused.
func readAck(r io.Reader) (ack, error) {
	var a ack
	v, err := readPrefix(r)
	a.version = v
	if err != nil {
		return a, err
	}
	var s [1]byte
	if _, err := io.ReadFull(r, s[:]); err != nil {
		return a, noEOF(err)
	}
	a.status = handshakeStatus(s[0])
	if a.id, err = readID(r); err != nil {
		return a, err
	}
	if a.status != statusOK {
		return a, fmt.Errorf("%w by %s: %s", errRefused, a.id, a.status)
	}
	return a, nil
}

// certMatches reports whether cert names id as a SAN DNS name, a SAN URI or
// its subject common name.
func certMatches(cert *x509.Certificate, id transport.NodeID) bool {
	s := string(id)
	if cert.Subject.CommonName == s {
		return true
	}
	for _, name := range cert.DNSNames {
		if name == s {
			return true
		}
	}
	for _, u := range cert.URIs {
		if u.String() == s {
			return true
		}
	}
	return false
}

// checkPeerIdentity verifies that a TLS peer that presented a certificate
// is the node it claims to be.
func checkPeerIdentity(cs tls.ConnectionState, id transport.NodeID) error {
	if len(cs.PeerCertificates) == 0 {
		return nil
	}
	if !certMatches(cs.PeerCertificates[0], id) {
		return fmt.Errorf("%w: %q", errIdentity, id)
	}
	return nil
}

// clientTLS derives the configuration for dialing peer from base. Unless the
// caller set a ServerName (or disabled verification), the server is verified
// against the peer's node ID rather than a host name, so certificates name
// nodes, not machines.
func clientTLS(base *tls.Config, peer transport.NodeID) *tls.Config {
	c := base.Clone()
	if c.InsecureSkipVerify {
		return c
	}
	// Every path ends with the node-ID check, then the caller's own check.
	userVerify := base.VerifyConnection
	checkIdentity := func(cs tls.ConnectionState) error {
		if err := checkPeerIdentity(cs, peer); err != nil {
			return err
		}
		if userVerify != nil {
			return userVerify(cs)
		}
		return nil
	}
	if c.ServerName != "" {
		// crypto/tls verifies the chain and host name; add the node ID.
		c.VerifyConnection = checkIdentity
		return c
	}
	roots := base.RootCAs
	// Verification moves to VerifyConnection, which checks the chain like
	// crypto/tls would, but against the node ID.
	c.InsecureSkipVerify = true
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("%w: no certificate", errIdentity)
		}
		inter := x509.NewCertPool()
		for _, cert := range cs.PeerCertificates[1:] {
			inter.AddCert(cert)
		}
		opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
			return fmt.Errorf("tcp: peer %s: %w", peer, err)
		}
		return checkIdentity(cs)
	}
	return c
}
