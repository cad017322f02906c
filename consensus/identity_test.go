package consensus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

func TestDeriveClusterID(t *testing.T) {
	ids := func(s ...string) []transport.NodeID {
		out := make([]transport.NodeID, len(s))
		for i, v := range s {
			out[i] = transport.NodeID(v)
		}
		return out
	}
	tests := []struct {
		name         string
		nameA, nameB string
		a, b         []transport.NodeID
		same         bool
	}{
		{"same list", "", "", ids("n1", "n2", "n3"), ids("n1", "n2", "n3"), true},
		{"order does not matter", "", "", ids("n1", "n2", "n3"), ids("n3", "n1", "n2"), true},
		{"a member missing", "", "", ids("n1", "n2", "n3"), ids("n3"), false},
		{"another member", "", "", ids("n1", "n2", "n3"), ids("n1", "n2", "n4"), false},
		{"cluster name", "prod", "staging", ids("n1", "n2", "n3"), ids("n1", "n2", "n3"), false},
		{"name is not a peer", "n1", "", ids("n2"), ids("n1", "n2"), false},
		{"boundaries count", "", "", ids("a", "bc"), ids("ab", "c"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := deriveClusterID(tt.nameA, tt.a), deriveClusterID(tt.nameB, tt.b)
			if (a == b) != tt.same {
				t.Fatalf("deriveClusterID(%q, %v) = %s, deriveClusterID(%q, %v) = %s; want equal = %v",
					tt.nameA, tt.a, a, tt.nameB, tt.b, b, tt.same)
			}
		})
	}
}

func TestIdentityFileRoundTripAndCorruption(t *testing.T) {
	idn := identity{name: "prod", peers: sortedPeers(three)}
	idn.id = deriveClusterID(idn.name, idn.peers)
	b := encodeIdentity(idn)
	got, err := decodeIdentity(b)
	if err != nil || got.id != idn.id || got.name != idn.name || fmt.Sprint(got.peers) != fmt.Sprint(idn.peers) {
		t.Fatalf("decodeIdentity(encodeIdentity(%+v)) = %+v, %v", idn, got, err)
	}
	// Any flipped bit and any truncation is refused, never misread.
	for i := range b {
		for bit := range 8 {
			c := append([]byte(nil), b...)
			c[i] ^= 1 << bit
			if _, err := decodeIdentity(c); !errors.Is(err, errBadIdentity) {
				t.Fatalf("byte %d bit %d flipped: decodeIdentity = %v; want errBadIdentity", i, bit, err)
			}
		}
	}
	for n := range len(b) {
		if _, err := decodeIdentity(b[:n]); !errors.Is(err, errBadIdentity) {
			t.Fatalf("truncated to %d bytes: decodeIdentity = %v; want errBadIdentity", n, err)
		}
	}
}

func FuzzDecodeIdentity(f *testing.F) {
	idn := identity{name: "x", peers: sortedPeers(three)}
	idn.id = deriveClusterID(idn.name, idn.peers)
	f.Add(encodeIdentity(idn))
	f.Add([]byte("DKCI"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeIdentity(b)
		if err != nil {
			if !errors.Is(err, errBadIdentity) {
				t.Fatalf("decodeIdentity error %v does not wrap errBadIdentity", err)
			}
			return
		}
		if again, err := decodeIdentity(encodeIdentity(got)); err != nil || again.id != got.id {
			t.Fatalf("re-encoding %+v: %+v, %v", got, again, err)
		}
	})
}

// TestBootstrapRule: the peer list of the first start is recorded; a
// restart must agree with it, and a data directory with Raft state but no
// identity is refused.
func TestBootstrapRule(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string) // before the second start
		peers   []transport.NodeID
		cname   string
		wantErr error
		inMsg   []string // in the error message
	}{
		{"same peers", nil, three, "", nil, nil},
		{"same peers in another order", nil, []transport.NodeID{"n3", "n1", "n2"}, "", nil, nil},
		{"only itself", nil, []transport.NodeID{"n1"}, "", ErrClusterMismatch, []string{"[n1 n2 n3]", "[n1]"}},
		{"one more peer", nil, []transport.NodeID{"n1", "n2", "n3", "n4"}, "", ErrClusterMismatch, []string{"[n1 n2 n3]", "[n1 n2 n3 n4]"}},
		{"another cluster name", nil, three, "staging", ErrClusterMismatch, []string{`"staging"`}},
		{"identity deleted", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, identityFile)); err != nil {
				t.Fatal(err)
			}
		}, three, "", ErrNoClusterIdentity, []string{"no cluster file"}},
		{"identity corrupt", func(t *testing.T, dir string) {
			path := filepath.Join(dir, identityFile)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)-1] ^= 1
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, three, "", ErrNoClusterIdentity, []string{"checksum"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			net, _ := memnet.New(memnet.DefaultConfig())
			defer net.Close()
			tr, _ := net.Join("n1")
			dir := t.TempDir()
			cfg := testConfig("n1", three)
			cfg.DataDir = dir
			n, err := New(cfg, tr, newKV())
			if err != nil {
				t.Fatalf("first New = %v", err)
			}
			first := n.Status().ClusterID
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
			if first != deriveClusterID("", three) {
				t.Fatalf("ClusterID = %s; want the one derived from %v", first, three)
			}
			if tt.prepare != nil {
				tt.prepare(t, dir)
			}
			cfg.Peers, cfg.ClusterName = tt.peers, tt.cname
			n, err = New(cfg, tr, newKV())
			if err == nil {
				defer n.Close()
				if got := n.Status().ClusterID; got != first {
					t.Fatalf("restarted ClusterID = %s; want %s", got, first)
				}
			}
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("New after restart = %v; want %v", err, tt.wantErr)
			}
			for _, s := range tt.inMsg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %s", err, s)
				}
			}
		})
	}
}

// TestMisconfiguredPeersDoNotSplitCluster is issue 13's case: n1 and n2
// are started with the full three-member list and n3 with a different one
// (only itself, as in the report, or itself and n1). n3 is in another
// cluster (its ID differs), so the messages between it and the others are
// dropped and counted: the three-member cluster has at most one leader per
// term, and no write acknowledged by one cluster shows up in the other.
// n3 gets the shortest election timeout so that, if its messages were
// accepted, it would campaign first and win n1's vote.
func TestMisconfiguredPeersDoNotSplitCluster(t *testing.T) {
	tests := []struct {
		name    string
		n3Peers []transport.NodeID
		// dropper is the node that must have dropped messages of the
		// other cluster.
		dropper transport.NodeID
	}{
		{"n3 alone", []transport.NodeID{"n3"}, "n3"},
		{"n3 with n1", []transport.NodeID{"n1", "n3"}, "n1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { testMisconfiguredPeers(t, tt.n3Peers, tt.dropper) })
		})
	}
}

func testMisconfiguredPeers(t *testing.T, n3Peers []transport.NodeID, dropper transport.NodeID) {
	c, _ := newMemnetClusterOf(t, three, false, memnet.Faults{}, func(cfg *Config) {
		cfg.Seed = 1
		if cfg.ID == "n3" {
			cfg.Peers = n3Peers
			cfg.ElectionTicks = 3
		}
	})
	good := deriveClusterID("", three)

	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu      sync.Mutex
		acked   = map[transport.NodeID][]string{} // keys acknowledged, by the node that acknowledged them
		leaders = map[uint64]map[transport.NodeID]bool{}
		wg      sync.WaitGroup
	)
	for _, id := range three {
		n := c.nodes[id]
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				k := fmt.Sprintf("%s-%d", id, i)
				pctx, pcancel := context.WithTimeout(ctx, 100*time.Millisecond)
				_, err := n.Propose(pctx, []byte(k+"=v"))
				pcancel()
				if err == nil {
					mu.Lock()
					acked[id] = append(acked[id], k)
					mu.Unlock()
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	wg.Go(func() { // who leads the three-member cluster, by term
		for ctx.Err() == nil {
			for _, id := range three {
				if st := c.nodes[id].Status(); st.ClusterID == good && st.Role == raft.Leader {
					mu.Lock()
					if leaders[st.Term] == nil {
						leaders[st.Term] = map[transport.NodeID]bool{}
					}
					leaders[st.Term][id] = true
					mu.Unlock()
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	time.Sleep(3 * time.Second)
	cancel()
	wg.Wait()

	for term, ls := range leaders {
		if len(ls) > 1 {
			t.Errorf("term %d of cluster %s has leaders %v", term, good, ls)
		}
	}
	if c.nodes["n3"].Status().ClusterID == good {
		t.Errorf("n3 (peers %v) has the three-member cluster's ID %s", n3Peers, good)
	}
	// No write proposed in one cluster is applied in the other.
	for _, id := range []transport.NodeID{"n1", "n2"} {
		if keys := keysWithPrefix(c.sms[id], "n3-"); len(keys) > 0 {
			t.Errorf("%s applied %d writes proposed through n3 (of another cluster), e.g. %s", id, len(keys), keys[0])
		}
	}
	for _, prefix := range []string{"n1-", "n2-"} {
		if keys := keysWithPrefix(c.sms["n3"], prefix); len(keys) > 0 {
			t.Errorf("n3 applied %d writes of the three-member cluster, e.g. %s", len(keys), keys[0])
		}
	}
	// The three-member cluster works, and every write it acknowledged is
	// on both of its live members.
	if len(acked["n1"])+len(acked["n2"]) == 0 {
		t.Fatalf("the three-member cluster acknowledged no write")
	}
	for _, id := range []transport.NodeID{"n1", "n2"} {
		for _, src := range []transport.NodeID{"n1", "n2"} {
			for _, k := range acked[src] {
				if err := waitKey(c.sms[id], k); err != nil {
					t.Fatalf("%s: write %s acknowledged by %s: %v", id, k, src, err)
				}
			}
		}
	}
	if st := c.nodes[dropper].Status(); st.DroppedForeign == 0 {
		t.Errorf("%s: DroppedForeign = 0; want the other cluster's messages counted", dropper)
	}
}

// waitKey waits (in virtual time) for k to be applied on s.
func waitKey(s *kvSM, k string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		if _, ok := s.get(k); ok {
			return nil
		}
		s.mu.Lock()
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("not applied: %w", ctx.Err())
		}
	}
}

func keysWithPrefix(s *kvSM, prefix string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.data {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out
}

// TestNonMemberMessagesDropped: a message carrying the cluster's ID from a
// node that is not a member is dropped and counted, as are malformed ones.
func TestNonMemberMessagesDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, net := newMemnetCluster(t, false, memnet.Faults{}, nil)
		intruder, err := net.Join("n4")
		if err != nil {
			t.Fatal(err)
		}
		defer intruder.Close()
		vote := raft.Message{Type: raft.MsgVote, From: "n4", To: "n1", Term: 100, LogTerm: 100, Index: 100}
		payload, _ := vote.MarshalAppend(appendEnvelopeHeader(nil, deriveClusterID("", three)))
		ctx := context.Background()
		if err := intruder.Send(ctx, "n1", "raft", payload); err != nil {
			t.Fatal(err)
		}
		if err := intruder.Send(ctx, "n1", "raft", []byte{9, 9}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		st := c.nodes["n1"].Status()
		if st.DroppedNonMember != 1 || st.DroppedMalformed != 1 {
			t.Fatalf("n1: DroppedNonMember = %d, DroppedMalformed = %d; want 1 and 1", st.DroppedNonMember, st.DroppedMalformed)
		}
		if st.Term >= 100 {
			t.Fatalf("n1 term %d: the non-member's vote request was acted on", st.Term)
		}
	})
}
