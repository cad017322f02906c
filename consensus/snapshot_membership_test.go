package consensus

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"testing"
	"testing/synctest"
	"time"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// TestSnapshotMembershipCodec: a snapshot keeps its whole membership
// (learners, a joint configuration, auto-leave) through the durable
// format; a voters-only membership keeps format version 1.
func TestSnapshotMembershipCodec(t *testing.T) {
	ids := func(s ...transport.NodeID) []transport.NodeID { return s }
	tests := []struct {
		name    string
		m       raft.Membership
		version byte
	}{
		{"voters", raft.Membership{Voters: ids("a", "b", "c")}, formatVersion},
		{"learners", raft.Membership{Voters: ids("a", "b", "c"), Learners: ids("d")}, snapshotVersionMembership},
		{"joint", raft.Membership{Voters: ids("a", "d", "e"), OutgoingVoters: ids("a", "b", "c"), AutoLeave: true}, snapshotVersionMembership},
		{"joint explicit", raft.Membership{Voters: ids("a"), OutgoingVoters: ids("b"), Learners: ids("c")}, snapshotVersionMembership},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := raft.Snapshot{Meta: raft.SnapshotMeta{Index: 9, Term: 3, Membership: tt.m}, Data: []byte("state")}
			b := encodeSnapshot(in)
			if b[8] != tt.version {
				t.Errorf("format version %d; want %d", b[8], tt.version)
			}
			out, err := decodeSnapshot(b)
			if err != nil {
				t.Fatalf("decodeSnapshot = %v", err)
			}
			if !reflect.DeepEqual(out, in) {
				t.Errorf("decodeSnapshot(encodeSnapshot(%+v)) = %+v", in, out)
			}
		})
	}
	// A version 2 file holding what version 1 can say is refused (one
	// encoding per snapshot), and so is an invalid membership.
	enc, _ := raft.Membership{Voters: []transport.NodeID{"a"}}.AppendBinary(nil)
	body := []byte{snapshotVersionMembership, 9, 3}
	body = appendBytes(body, enc)
	body = appendBytes(body, nil)
	if _, err := decodeSnapshot(sealed(snapshotMagic, body)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("non-canonical version 2 = %v; want ErrCorrupt", err)
	}
	bad, _ := raft.Membership{Voters: []transport.NodeID{"a"}, Learners: []transport.NodeID{"a"}}.AppendBinary(nil)
	body = appendBytes([]byte{snapshotVersionMembership, 9, 3}, bad)
	body = appendBytes(body, nil)
	if _, err := decodeSnapshot(sealed(snapshotMagic, body)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a voter that is also a learner = %v; want ErrCorrupt", err)
	}
	if _, err := decodeSnapshot(sealed(snapshotMagic, []byte{7, 1, 1})); !errors.Is(err, ErrCorrupt) {
		t.Errorf("unknown version = %v; want ErrCorrupt", err)
	}
}

// FuzzDecodeSnapshotMembership: any input either fails with ErrCorrupt or
// decodes to a snapshot that survives another encode/decode unchanged.
func FuzzDecodeSnapshotMembership(f *testing.F) {
	f.Add(encodeSnapshot(raft.Snapshot{Meta: raft.SnapshotMeta{Index: 4, Term: 2,
		Membership: raft.Membership{Voters: []transport.NodeID{"a", "b"}, Learners: []transport.NodeID{"c"}}}, Data: []byte("data")}))
	f.Add(encodeSnapshot(raft.Snapshot{Meta: raft.SnapshotMeta{Index: 4, Term: 2,
		Membership: raft.Membership{Voters: []transport.NodeID{"a"}, OutgoingVoters: []transport.NodeID{"b", "c"}, AutoLeave: true}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeSnapshot(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeSnapshot error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		again, err := decodeSnapshot(encodeSnapshot(s))
		if err != nil || !reflect.DeepEqual(again, s) {
			t.Fatalf("re-encoded snapshot decodes to %+v, %v; want %+v", again, err, s)
		}
		if !bytes.Equal(encodeSnapshot(again), encodeSnapshot(s)) {
			t.Fatalf("encoding not stable")
		}
	})
}

// TestSnapshotKeepsLearners: a cluster with a learner snapshots and
// compacts its log; a member restarted from that snapshot (the entry that
// added the learner gone from its log) still knows the learner, which
// keeps receiving the log.
func TestSnapshotKeepsLearners(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _ := newMemnetCluster(t, true, memnet.Faults{}, func(cfg *Config) {
			cfg.SnapshotThreshold, cfg.SnapshotRetainEntries = 4, 0
		})
		cc := &churnCluster{cluster: c, acked: map[string]string{}}
		founders := append([]transport.NodeID(nil), c.ids...)
		base := c.cfg
		c.cfg = func(id transport.NodeID) Config {
			cfg := base(id)
			if id == "n4" {
				cfg.Peers, cfg.Join = founders, true
			}
			return cfg
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cc.write(ctx)
		cc.join("n4")
		cc.change(ctx, op(raft.ConfAddLearner, "n4"))
		for range 12 {
			cc.write(ctx) // several snapshots past the change
		}
		restart := cc.others(cc.leader(ctx).ID())[0]
		cc.stop(restart)
		if st, err := OpenDiskStorage(c.dirs[restart], DiskOptions{}); err != nil {
			t.Fatal(err)
		} else {
			snap, _ := st.Snapshot()
			st.Close()
			if !snap.Meta.Membership.IsLearner("n4") {
				t.Fatalf("%s's snapshot at %d records membership %+v; want learner n4", restart, snap.Meta.Index, snap.Meta.Membership)
			}
		}
		cc.start(restart)
		cc.write(ctx)
		m, _ := cc.nodes[restart].Members()
		if !m.IsLearner("n4") {
			t.Fatalf("restarted %s: membership %+v; want learner n4", restart, m)
		}
		if err := cc.nodes["n4"].Read(ctx); err != nil {
			t.Fatalf("learner Read = %v", err)
		}
		for k, v := range cc.acked {
			if got, _ := cc.sms["n4"].get(k); got != v {
				t.Fatalf("learner n4: acknowledged %s=%s reads %q", k, v, got)
			}
		}
	})
}
