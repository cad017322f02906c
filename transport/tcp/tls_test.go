package tcp_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/tcp"
	"github.com/distkit/distkit/transport/transporttest"
)

// testCA is a certificate authority made up for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "distkit test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// nodeConfig returns a mutual-TLS configuration whose certificate names
// node (as SAN DNS name and CN), signed by ca.
func (ca *testCA) nodeConfig(t testing.TB, node string) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: node},
		DNSNames:     []string{node},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		RootCAs:      ca.pool,
		ClientCAs:    ca.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}
}

func TestConformanceMutualTLS(t *testing.T) {
	ca := newTestCA(t)
	transporttest.Run(t, func(t *testing.T, ids []transport.NodeID) []transport.Transport {
		ts := cluster(t, ids, func(c *tcp.Config) {
			c.MaxFrameSize = conformanceFrameSize
			c.TLS = ca.nodeConfig(t, string(c.ID))
		})
		out := make([]transport.Transport, len(ts))
		for i, tr := range ts {
			out[i] = tr
		}
		return out
	}, transporttest.Options{FIFO: true, MaxPayload: conformanceFrameSize - 1 - len("large")})
}

func TestTLSImpostorRefused(t *testing.T) {
	ca := newTestCA(t)
	sig := newLogSignal("refused")
	ts := cluster(t, []transport.NodeID{"a", "b"}, func(c *tcp.Config) {
		c.TLS = ca.nodeConfig(t, string(c.ID))
		if c.ID == "b" {
			c.Logger = slog.New(sig)
		}
	})
	// "mallory" holds a valid certificate, but for node a.
	cfg := tcp.DefaultConfig()
	cfg.ID = "mallory"
	cfg.TLS = ca.nodeConfig(t, "a")
	checkOutsiderRefused(t, ts, sig, cfg, "does not match")
}

// checkOutsiderRefused starts a node with cfg that sends to ts[1] ("b",
// whose log records go to sig) and checks that b refuses the connection
// with a logged reason containing want, delivers nothing from it, and still
// talks to ts[0].
func checkOutsiderRefused(t *testing.T, ts []*tcp.Transport, sig *logSignal, cfg tcp.Config, want string) {
	t.Helper()
	cfg.Peers = map[transport.NodeID]string{"b": ts[1].Addr().String()}
	outsider, err := tcp.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer outsider.Close()
	in := newInbox()
	ts[1].Handle("svc", in.handle)
	if err := outsider.Send(context.Background(), "b", "svc", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if reason := sig.next(t); !strings.Contains(reason, want) {
		t.Errorf("logged reason %q; want it to contain %q", reason, want)
	}
	stillWorks(t, ts[0], ts[1])
	select {
	case m := <-in:
		t.Errorf("b accepted %+v from %s", m, cfg.ID)
	default:
	}
}

func TestTLSServerMustBeThePeer(t *testing.T) {
	ca := newTestCA(t)
	sig := newLogSignal("connecting failed")
	ts := cluster(t, []transport.NodeID{"a", "c"}, func(c *tcp.Config) {
		c.TLS = ca.nodeConfig(t, string(c.ID))
		if c.ID == "a" {
			c.Logger = slog.New(sig)
		}
	})
	// a believes b lives at c's address; c's certificate says otherwise,
	// so a refuses before sending anything.
	if err := ts[0].AddPeer("b", ts[1].Addr().String()); err != nil {
		t.Fatal(err)
	}
	if err := ts[0].Send(context.Background(), "b", "svc", []byte("for b")); err != nil {
		t.Fatal(err)
	}
	if reason := sig.next(t); !strings.Contains(reason, "does not match") {
		t.Errorf("logged reason %q; want a certificate mismatch", reason)
	}
}

func TestTLSUntrustedCertificateRefused(t *testing.T) {
	ca, rogue := newTestCA(t), newTestCA(t)
	sig := newLogSignal("refused")
	ts := cluster(t, []transport.NodeID{"a", "b"}, func(c *tcp.Config) {
		c.TLS = ca.nodeConfig(t, string(c.ID))
		if c.ID == "b" {
			c.Logger = slog.New(sig)
		}
	})
	cfg := tcp.DefaultConfig()
	cfg.ID = "a2"
	cfg.TLS = rogue.nodeConfig(t, "a2")
	cfg.TLS.RootCAs = ca.pool // trusts b, but b does not trust it
	checkOutsiderRefused(t, ts, sig, cfg, "tls")
}

// TestTLSServerWithUntrustedCertificateRefused checks that a dialler
// verifies the server's chain against its RootCAs: a server whose
// certificate names the expected node but comes from another authority is
// refused before anything is sent to it.
func TestTLSServerWithUntrustedCertificateRefused(t *testing.T) {
	ca, rogue := newTestCA(t), newTestCA(t)
	sig := newLogSignal("connecting failed")
	cfg := tcp.DefaultConfig()
	cfg.ID = "b"
	cfg.TLS = rogue.nodeConfig(t, "b")
	cfg.TLS.ClientCAs = ca.pool // it would accept a; a must not accept it
	impostor, err := tcp.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer impostor.Close()
	in := newInbox()
	impostor.Handle("svc", in.handle)
	cfg = tcp.DefaultConfig()
	cfg.ID = "a"
	cfg.TLS = ca.nodeConfig(t, "a")
	cfg.Peers = map[transport.NodeID]string{"b": impostor.Addr().String()}
	cfg.Logger = slog.New(sig)
	sendToB(t, cfg)
	if reason := sig.next(t); !strings.Contains(reason, "unknown authority") {
		t.Errorf("logged reason %q; want the server's chain refused", reason)
	}
	select {
	case m := <-in:
		t.Errorf("the server with an untrusted certificate received %+v", m)
	default:
	}
}
