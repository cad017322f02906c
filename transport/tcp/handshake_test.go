package tcp

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"net"
	"net/url"
	"testing"

	"github.com/distkit/distkit/transport"
)

func TestHelloRoundTrip(t *testing.T) {
	want := hello{version: ProtocolVersion, from: "n1", to: "node-with-a-longer-name", addr: "10.0.0.1:7000"}
	got, err := readHello(bytes.NewReader(appendHello(nil, want)))
	if err != nil || got != want {
		t.Errorf("readHello(appendHello(%+v)) = %+v, %v", want, got, err)
	}
}

func TestAckRoundTrip(t *testing.T) {
	tests := []struct {
		ack     ack
		refused bool
	}{
		{ack{version: ProtocolVersion, status: statusOK, id: "n2"}, false},
		{ack{version: ProtocolVersion, status: statusWrongNode, id: "n2"}, true},
		{ack{version: ProtocolVersion, status: statusIdentity, id: "n2"}, true},
	}
	for _, tt := range tests {
		got, err := readAck(bytes.NewReader(appendAck(nil, tt.ack)))
		if got != tt.ack || errors.Is(err, errRefused) != tt.refused {
			t.Errorf("readAck(appendAck(%+v)) = %+v, %v; want refused=%v", tt.ack, got, err, tt.refused)
		}
	}
}

func TestHandshakeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"bad magic", []byte("GET / HTTP/1.1\r\n"), errBadHandshake},
		{"other version", []byte{'D', 'K', 'T', 2, 1, 'a', 1, 'b', 0}, errBadVersion},
		{"missing address", []byte{'D', 'K', 'T', 1, 1, 'a', 1, 'b'}, io.ErrUnexpectedEOF},
		{"truncated address", []byte{'D', 'K', 'T', 1, 1, 'a', 1, 'b', 9, ':'}, io.ErrUnexpectedEOF},
		{"empty from", []byte{'D', 'K', 'T', 1, 0, 1, 'b'}, errBadHandshake},
		{"empty to", []byte{'D', 'K', 'T', 1, 1, 'a', 0}, errBadHandshake},
		{"truncated", []byte{'D', 'K', 'T', 1, 5, 'a'}, io.ErrUnexpectedEOF},
		{"nothing", nil, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := readHello(bytes.NewReader(tt.in)); !errors.Is(err, tt.want) {
				t.Errorf("readHello(%q) = %v; want %v", tt.in, err, tt.want)
			}
		})
	}
}

// FuzzReadHandshake checks that the hello and ack decoders never panic and
// that what they accept re-encodes to the bytes it was read from.
func FuzzReadHandshake(f *testing.F) {
	f.Add(appendHello(nil, hello{version: ProtocolVersion, from: "n1", to: "n2", addr: "127.0.0.1:7000"}))
	f.Add(appendAck(nil, ack{version: ProtocolVersion, status: statusOK, id: "n2"}))
	f.Add(appendAck(nil, ack{version: ProtocolVersion, status: statusWrongNode, id: "n2"}))
	f.Add([]byte{'D', 'K', 'T', 9})
	f.Fuzz(func(t *testing.T, in []byte) {
		if h, err := readHello(bytes.NewReader(in)); err == nil {
			if enc := appendHello(nil, h); !bytes.HasPrefix(in, enc) {
				t.Fatalf("hello %+v re-encodes as %x; read from %x", h, enc, in)
			}
		}
		if a, err := readAck(bytes.NewReader(in)); err == nil || errors.Is(err, errRefused) {
			if enc := appendAck(nil, a); !bytes.HasPrefix(in, enc) {
				t.Fatalf("ack %+v re-encodes as %x; read from %x", a, enc, in)
			}
		}
	})
}

func TestCertMatches(t *testing.T) {
	spiffe, _ := url.Parse("spiffe://cluster/node/n1")
	tests := []struct {
		name string
		cert x509.Certificate
		id   transport.NodeID
		want bool
	}{
		{"common name", x509.Certificate{Subject: pkix.Name{CommonName: "n1"}}, "n1", true},
		{"DNS SAN", x509.Certificate{DNSNames: []string{"other", "n1"}}, "n1", true},
		{"URI SAN", x509.Certificate{URIs: []*url.URL{spiffe}}, "spiffe://cluster/node/n1", true},
		{"no match", x509.Certificate{Subject: pkix.Name{CommonName: "n2"}, DNSNames: []string{"n3"}}, "n1", false},
		{"prefix is not a match", x509.Certificate{DNSNames: []string{"n1.example"}}, "n1", false},
	}
	for _, tt := range tests {
		if got := certMatches(&tt.cert, tt.id); got != tt.want {
			t.Errorf("%s: certMatches(%q) = %v; want %v", tt.name, tt.id, got, tt.want)
		}
	}
}

func TestReachable(t *testing.T) {
	remote := &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 55555}
	tests := []struct {
		advertised string
		want       string
		ok         bool
	}{
		{"10.0.0.9:7000", "10.0.0.9:7000", true},
		{"node-a.cluster:7000", "node-a.cluster:7000", true},
		{":7000", "10.1.2.3:7000", true},
		{"0.0.0.0:7000", "10.1.2.3:7000", true},
		{"[::]:7000", "10.1.2.3:7000", true},
		{"no-port", "", false},
	}
	for _, tt := range tests {
		got, err := reachable(tt.advertised, remote)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("reachable(%q) = %q, %v; want %q, ok=%v", tt.advertised, got, err, tt.want, tt.ok)
		}
	}
}

// FuzzReachable checks that an advertised address, which comes from the
// network in a hello, never makes reachable panic, and that what it
// accepts is a host:port with the advertised port and a host to dial.
func FuzzReachable(f *testing.F) {
	for _, s := range []string{"10.0.0.9:7000", ":7000", "0.0.0.0:7000", "[::]:7000", "node-a:7000", "no-port", "[::1", ""} {
		f.Add(s)
	}
	remote := &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 55555}
	f.Fuzz(func(t *testing.T, advertised string) {
		got, err := reachable(advertised, remote)
		if err != nil {
			return
		}
		host, port, err := net.SplitHostPort(got)
		if err != nil {
			t.Fatalf("reachable(%q) = %q, which is not host:port: %v", advertised, got, err)
		}
		_, wantPort, _ := net.SplitHostPort(advertised)
		if port != wantPort {
			t.Errorf("reachable(%q) = %q; want port %q", advertised, got, wantPort)
		}
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			t.Errorf("reachable(%q) = %q; want a host to dial", advertised, got)
		}
	})
}
