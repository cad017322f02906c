package consensus

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/internal/vfs"
	"github.com/distkit/distkit/transport"
)

// captureTransport records the snapshot frames a receiver answers with.
type captureTransport struct {
	mu      sync.Mutex // guards replies
	replies []snapFrame
}

func (c *captureTransport) ID() transport.NodeID             { return "f" }
func (c *captureTransport) Handle(string, transport.Handler) {}
func (c *captureTransport) Close() error                     { return nil }
func (c *captureTransport) Send(_ context.Context, _ transport.NodeID, _ string, p []byte) error {
	_, body, err := openEnvelope(p)
	if err != nil {
		return err
	}
	f, err := decodeSnapFrame(body)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.replies = append(c.replies, f)
	c.mu.Unlock()
	return nil
}

func (c *captureTransport) last() snapFrame {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.replies) == 0 {
		return snapFrame{}
	}
	return c.replies[len(c.replies)-1]
}

// testReceiver is a follower's snapshot stream without its loop: the
// MsgSnaps it hands over are left in node.msgs.
func testReceiver(t *testing.T, fsys vfs.FS, dir string) (*snapStreamer, *DiskStorage, *captureTransport) {
	t.Helper()
	ds, err := OpenDiskStorage(dir, DiskOptions{FS: fsys, SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	tr := &captureTransport{}
	cfg := DefaultConfig()
	cfg.ID, cfg.Peers = "f", []transport.NodeID{"f", "l", "l2"}
	n := &Node{cfg: cfg, tr: tr, store: ds, msgSig: make(chan struct{}, 1), clusterID: deriveClusterID(cfg.ClusterName, cfg.Peers)}
	n.startSnapStream()
	return ds.stream, ds, tr
}

// leaderTransfer is what a leader streams: its snapshot file in chunks
// and the commit frame carrying its MsgSnap.
type leaderTransfer struct {
	from   transport.NodeID
	file   []byte
	frame  snapFrame
	commit []byte
}

func newLeaderTransfer(from transport.NodeID, term, index, id uint64, data []byte) *leaderTransfer {
	meta := raft.SnapshotMeta{Index: index, Term: term, Membership: raft.Membership{Voters: []transport.NodeID{"f", "l", "l2"}}}
	file := encodeSnapshot(raft.Snapshot{Meta: meta, Data: data})
	m := raft.Message{Type: raft.MsgSnap, From: from, To: "f", Term: term, Snapshot: &meta, Last: true}
	commit, _ := m.MarshalAppend(appendEnvelopeHeader(nil, deriveClusterID("", []transport.NodeID{"f", "l", "l2"})))
	return &leaderTransfer{from: from, file: file, commit: commit,
		frame: snapFrame{Transfer: id, Term: term, Index: index, SnapTerm: term, Total: uint64(len(file))}}
}

// chunk returns frame number i of chunks of size k.
func (l *leaderTransfer) chunk(i, k int) snapFrame {
	f := l.frame
	f.Kind, f.Offset = frameChunk, uint64(i*k)
	f.Data = l.file[i*k : min((i+1)*k, len(l.file))]
	return f
}

func (l *leaderTransfer) commitFrame() snapFrame {
	f := l.frame
	f.Kind, f.Offset, f.Data = frameCommit, f.Total, l.commit
	return f
}

func (l *leaderTransfer) chunks(k int) int { return (len(l.file) + k - 1) / k }

func delivered(s *snapStreamer) int {
	s.n.msgMu.Lock()
	defer s.n.msgMu.Unlock()
	return len(s.n.msgs)
}

// TestSnapshotStreamReceiver holds the receiver's rules: chunks are taken
// in order only, from the transfer under way (a newer term or a restarted
// transfer starts over from offset 0), and the core gets the MsgSnap only
// once the whole file arrived and verified.
func TestSnapshotStreamReceiver(t *testing.T) {
	const k = 1000
	data := bytes.Repeat([]byte("0123456789abcdef"), 400) // 6400 bytes: 7 chunks
	type step struct {
		tr    *leaderTransfer
		frame func(l *leaderTransfer) snapFrame
		want  byte // the reply's kind, 0 for none
	}
	chunk := func(i int) func(l *leaderTransfer) snapFrame {
		return func(l *leaderTransfer) snapFrame { return l.chunk(i, k) }
	}
	commit := func(l *leaderTransfer) snapFrame { return l.commitFrame() }
	all := func(l *leaderTransfer) []step {
		var s []step
		for i := range l.chunks(k) {
			s = append(s, step{l, chunk(i), frameAck})
		}
		return s
	}
	t5 := newLeaderTransfer("l", 5, 100, 1, data)
	t5b := newLeaderTransfer("l", 5, 100, 2, data) // the same leader restarts the transfer
	t4 := newLeaderTransfer("l2", 4, 90, 3, data)  // an older leader
	t6 := newLeaderTransfer("l2", 6, 120, 4, data) // a newer leader
	bad := newLeaderTransfer("l", 5, 100, 5, data) // a file damaged at the leader
	bad.file[len(bad.file)-1] ^= 1
	wrongMsg := newLeaderTransfer("l", 5, 100, 6, data)
	wrongMsg.commit = newLeaderTransfer("l", 5, 101, 6, data).commit

	tests := []struct {
		name      string
		steps     []step
		delivered bool
	}{
		{"in order", append(all(t5), step{t5, commit, 0}), true},
		{"commit before the last chunk", append(all(t5)[:6], step{t5, commit, frameRefuse}), false},
		{"out of order", []step{{t5, chunk(0), frameAck}, {t5, chunk(2), frameRefuse}}, false},
		{"duplicate chunk re-acknowledged", append(append(all(t5)[:2], step{t5, chunk(1), frameAck}), append(all(t5)[2:], step{t5, commit, 0})...), true},
		{"first chunk missing", []step{{t5, chunk(1), frameRefuse}}, false},
		{"chunk of another transfer mixed in", append(all(t5)[:3], step{t5b, chunk(3), frameRefuse}, step{t5, chunk(3), frameAck}), false},
		{"chunk of an older term refused", append(all(t5)[:3], step{t4, chunk(0), frameRefuse}), false},
		{"newer leader starts over", append(append(all(t5)[:3], all(t6)...), step{t6, commit, 0}, step{t5, chunk(3), frameRefuse}), true},
		{"restarted transfer starts over", append(append(all(t5)[:3], all(t5b)...), step{t5b, commit, 0}, step{t5, chunk(3), frameRefuse}), true},
		{"damaged file refused", append(all(bad), step{bad, commit, frameRefuse}), false},
		{"commit naming another snapshot refused", append(all(wrongMsg), step{wrongMsg, commit, frameRefuse}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, ds, tr := testReceiver(t, vfs.OS, dir)
			defer ds.Close()
			for i, st := range tt.steps {
				n := len(tr.replies)
				f := st.frame(st.tr)
				s.onChunk(st.tr.from, &f)
				var got byte
				if len(tr.replies) > n {
					got = tr.last().Kind
				}
				if got != st.want {
					t.Fatalf("step %d (%s chunk at %d of transfer %d): reply kind %d; want %d", i, kindName(f.Kind), f.Offset, f.Transfer, got, st.want)
				}
			}
			if got := delivered(s) > 0; got != tt.delivered {
				t.Fatalf("MsgSnap handed to the core: %v; want %v", got, tt.delivered)
			}
			if !tt.delivered {
				return
			}
			installReceived(t, s, ds, data)
			noReceivedFiles(t, ds, dir, "after the install")
		})
	}
}

// TestSnapshotStreamReceiveFailure holds what a follower does when it
// cannot write or fsync a chunk of a snapshot it receives: it refuses the
// chunk, removes the partial file and goes on (nothing it promised depends
// on a file not yet installed: its log, hard state and installed snapshot
// are untouched, and the storage keeps accepting writes); the leader's
// next transfer starts over and installs. TestReplicatedPowerLoss
// (package txn) relies on this: a power cut that lands on such an fsync
// need not stop the node.
func TestSnapshotStreamReceiveFailure(t *testing.T) {
	const k = 1000
	data := bytes.Repeat([]byte("0123456789abcdef"), 400) // 7 chunks
	first := newLeaderTransfer("l", 5, 100, 1, data)
	n := first.chunks(k)
	for _, write := range []bool{false, true} {
		for at := range n {
			name := fmt.Sprintf("fsync of chunk %d", at)
			if write {
				name = fmt.Sprintf("write of chunk %d", at)
			}
			t.Run(name, func(t *testing.T) {
				fsys := vfs.NewCrashFS(uint64(at) + 1)
				dir := "/data/f"
				s, ds, tr := testReceiver(t, fsys, dir)
				defer ds.Close()
				if err := ds.Save(raft.HardState{Term: 5, Vote: "l"}, ents(5, 1, 50)); err != nil {
					t.Fatal(err)
				}
				for i := range n {
					if i == at && write {
						fsys.InjectWriteError(1)
					} else if i == at {
						fsys.InjectSyncError(1)
					}
					f := first.chunk(i, k)
					s.onChunk("l", &f)
					want := byte(frameAck)
					if i == at {
						want = frameRefuse
					}
					if got := tr.last().Kind; got != want {
						t.Fatalf("chunk %d: reply %s; want %s", i, kindName(got), kindName(want))
					}
					if i == at {
						break
					}
				}
				noReceivedFiles(t, ds, dir, "after the failed chunk")
				// The storage goes on: the log takes writes.
				if err := ds.Save(raft.HardState{Term: 5, Vote: "l", Commit: 50}, ents(5, 51, 51)); err != nil {
					t.Fatalf("save after the failed chunk: %v", err)
				}
				// The leader's next transfer starts over and installs.
				again := newLeaderTransfer("l", 5, 100, 2, data)
				for i := range n {
					f := again.chunk(i, k)
					s.onChunk("l", &f)
					if got := tr.last().Kind; got != frameAck {
						t.Fatalf("retry, chunk %d: reply %s; want ack", i, kindName(got))
					}
				}
				f := again.commitFrame()
				s.onChunk("l", &f)
				if delivered(s) != 1 {
					t.Fatalf("the retried transfer handed %d MsgSnaps to the core; want 1", delivered(s))
				}
				installReceived(t, s, ds, data)
			})
		}
	}
}

// installReceived installs the first MsgSnap the receiver handed its core
// (the received file moves into place) and fails unless the storage then
// restores to the leader's data.
func installReceived(t *testing.T, s *snapStreamer, ds *DiskStorage, data []byte) {
	t.Helper()
	meta := *s.n.msgs[0].Snapshot
	if err := ds.ApplySnapshot(raft.Snapshot{Meta: meta}); err != nil {
		t.Fatal(err)
	}
	r, err := ds.openSnapshotData(meta)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("installed data: %d bytes, %v; want the leader's %d", len(got), err, len(data))
	}
}

// noReceivedFiles fails if a snapshot file being received is left in dir.
func noReceivedFiles(t *testing.T, ds *DiskStorage, dir, when string) {
	t.Helper()
	entries, err := ds.fs.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), receivedSnapshotPrefix) {
			t.Fatalf("%s left behind %s", e.Name(), when)
		}
	}
}

func kindName(k byte) string {
	return map[byte]string{frameChunk: "data", frameCommit: "commit", frameAck: "ack", frameRefuse: "refuse"}[k]
}

// TestSnapshotStreamPowerLoss cuts the power at every point of a streamed
// install on the follower (after each chunk, after the commit, between
// the rename and the directory's fsync, after the install) and reopens:
// the storage holds the old snapshot or the new one, whole, never a
// partial one, and no received file is left behind.
func TestSnapshotStreamPowerLoss(t *testing.T) {
	const k = 700
	rng := rand.New(rand.NewPCG(1, 2))
	oldData, newData := make([]byte, 3000), make([]byte, 5000)
	for i := range oldData {
		oldData[i] = byte(rng.Uint32())
	}
	for i := range newData {
		newData[i] = byte(rng.Uint32())
	}
	l := newLeaderTransfer("l", 5, 100, 1, newData)
	dir := "/data/f"
	n := l.chunks(k) + 1 // the chunks and the commit
	for point := 0; point <= n+2; point++ {
		fsys := vfs.NewCrashFS(uint64(point) + 1)
		s, ds, _ := testReceiver(t, fsys, dir)
		if err := ds.Save(raft.HardState{Term: 1, Vote: "l"}, ents(1, 1, 50)); err != nil {
			t.Fatal(err)
		}
		if _, err := ds.CreateSnapshot(40, raft.Membership{Voters: []transport.NodeID{"f", "l", "l2"}}, oldData); err != nil {
			t.Fatal(err)
		}
		for i := range min(point, n) {
			f := l.commitFrame()
			if i < n-1 {
				f = l.chunk(i, k)
			}
			s.onChunk("l", &f)
		}
		var after *vfs.CrashFS
		switch {
		case point <= n:
		case point == n+1: // between the rename and the directory's fsync
			fsys.SetSyncHook(func(name string) {
				if name == dir && after == nil {
					after = fsys.Crash()
				}
			})
			ds.ApplySnapshot(raft.Snapshot{Meta: *s.n.msgs[0].Snapshot}) // fails: the power is off
		default:
			if err := ds.ApplySnapshot(raft.Snapshot{Meta: *s.n.msgs[0].Snapshot}); err != nil {
				t.Fatal(err)
			}
		}
		if after == nil {
			after = fsys.Crash()
		}
		reopened, err := OpenDiskStorage(dir, DiskOptions{FS: after})
		if err != nil {
			t.Fatalf("crash point %d: reopen = %v", point, err)
		}
		snap, _ := reopened.Snapshot()
		r, err := reopened.openSnapshotData(snap.Meta)
		if err != nil {
			t.Fatalf("crash point %d: %v", point, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		switch {
		case err != nil:
			t.Fatalf("crash point %d: read snapshot: %v", point, err)
		case snap.Meta.Index == 40 && bytes.Equal(got, oldData) && point <= n+1:
		case snap.Meta.Index == 100 && bytes.Equal(got, newData) && point >= n+1:
		default:
			t.Fatalf("crash point %d: snapshot %d of %d bytes; want the old one (40) before the install, the new one (100) after it, whole", point, snap.Meta.Index, len(got))
		}
		entries, _ := after.ReadDir(dir)
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".tmp") {
				t.Fatalf("crash point %d: %s left after the reopen", point, e.Name())
			}
		}
		reopened.Close()
	}
}

// FuzzSnapFrame feeds the snapshot stream's frame decoder arbitrary bytes:
// it never panics, refuses with ErrBadSnapshotFrame, and what it accepts
// keeps its invariants and encodes back to the same frame.
func FuzzSnapFrame(f *testing.F) {
	l := newLeaderTransfer("l", 5, 100, 7, []byte("some state"))
	for _, fr := range []snapFrame{l.chunk(0, 10), l.commitFrame(), {Kind: frameAck, Offset: 3, Total: 9}, {Kind: frameRefuse}} {
		f.Add(appendSnapFrame(nil, &fr))
	}
	f.Add([]byte{})
	f.Add([]byte{1, 9, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := decodeSnapFrame(b)
		if err != nil {
			if !errors.Is(err, ErrBadSnapshotFrame) {
				t.Fatalf("decode error %v does not wrap ErrBadSnapshotFrame", err)
			}
			return
		}
		switch fr.Kind {
		case frameChunk:
			if len(fr.Data) == 0 || fr.Offset+uint64(len(fr.Data)) > fr.Total || fr.Offset+uint64(len(fr.Data)) < fr.Offset {
				t.Fatalf("accepted a chunk of %d bytes at %d of %d", len(fr.Data), fr.Offset, fr.Total)
			}
		case frameCommit:
			if len(fr.Data) == 0 || fr.Offset != fr.Total {
				t.Fatalf("accepted a commit at %d of %d", fr.Offset, fr.Total)
			}
		case frameAck, frameRefuse:
			if fr.Data != nil || fr.Offset > fr.Total {
				t.Fatalf("accepted an acknowledgement at %d of %d with %d bytes", fr.Offset, fr.Total, len(fr.Data))
			}
		default:
			t.Fatalf("accepted kind %d", fr.Kind)
		}
		again, err := decodeSnapFrame(appendSnapFrame(nil, &fr))
		if err != nil {
			t.Fatalf("re-encoded frame refused: %v", err)
		}
		if again.Kind != fr.Kind || again.Transfer != fr.Transfer || again.Term != fr.Term || again.Index != fr.Index ||
			again.SnapTerm != fr.SnapTerm || again.Offset != fr.Offset || again.Total != fr.Total || !bytes.Equal(again.Data, fr.Data) {
			t.Fatalf("round trip: %+v; want %+v", again, fr)
		}
	})
}

// TestSnapshotStreamWindow holds the sender's flow control: a follower
// that acknowledges nothing gets snapWindow chunks and no more, so a slow
// follower never makes the leader read ahead (or queue) the whole file;
// an acknowledgement lets exactly one more chunk out.
func TestSnapshotStreamWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		ds, err := OpenDiskStorage(dir, DiskOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := ds.Save(raft.HardState{Term: 2, Vote: "l"}, ents(2, 1, 10)); err != nil {
			t.Fatal(err)
		}
		meta, err := ds.CreateSnapshot(10, raft.Membership{Voters: []transport.NodeID{"f", "l", "l2"}}, bytes.Repeat([]byte{7}, 20000))
		if err != nil {
			t.Fatal(err)
		}
		tr := &captureTransport{}
		cfg := DefaultConfig()
		cfg.ID, cfg.Peers, cfg.SnapshotChunkBytes = "l", []transport.NodeID{"f", "l", "l2"}, 1000
		n := &Node{cfg: cfg, tr: tr, store: ds, clusterID: deriveClusterID(cfg.ClusterName, cfg.Peers)}
		n.startSnapStream()
		defer ds.Close()
		m := raft.Message{Type: raft.MsgSnap, From: "l", To: "f", Term: 2, Snapshot: &meta.Meta, Last: true}
		if !n.streamSnapshot(&m, []byte("payload")) {
			t.Fatal("a metadata-only MsgSnap was not streamed")
		}
		synctest.Wait()
		if got := len(tr.replies); got != snapWindow {
			t.Fatalf("%d chunks sent with none acknowledged; want %d (snapWindow)", got, snapWindow)
		}
		first := tr.replies[0]
		ack := snapFrame{Kind: frameAck, Transfer: first.Transfer, Term: first.Term, Index: first.Index, SnapTerm: first.SnapTerm, Offset: 1000, Total: first.Total}
		ds.stream.onAck("f", &ack)
		synctest.Wait()
		if got := len(tr.replies); got != snapWindow+1 {
			t.Fatalf("%d chunks sent after one acknowledgement; want %d", got, snapWindow+1)
		}
	})
}

// FuzzSnapStreamReceiver feeds a follower's receiver a sequence of
// arbitrary frames (each length-prefixed in the input; those that decode
// are handed to the receiver as coming from the leader "l"): it never
// panics, and a MsgSnap it hands to the core always names a received file
// that is complete and verifies as that snapshot.
func FuzzSnapStreamReceiver(f *testing.F) {
	l := newLeaderTransfer("l", 5, 100, 1, bytes.Repeat([]byte("xy"), 300))
	var seq []byte
	for i := range l.chunks(256) {
		fr := l.chunk(i, 256)
		enc := appendSnapFrame(nil, &fr)
		seq = binary.AppendUvarint(seq, uint64(len(enc)))
		seq = append(seq, enc...)
	}
	fr := l.commitFrame()
	enc := appendSnapFrame(nil, &fr)
	seq = binary.AppendUvarint(seq, uint64(len(enc)))
	f.Add(append(seq, enc...))
	f.Add(seq)
	f.Fuzz(func(t *testing.T, in []byte) {
		fsys := vfs.NewCrashFS(1)
		s, ds, _ := testReceiver(t, fsys, "/data/f")
		defer ds.Close()
		for len(in) > 0 {
			n, k := binary.Uvarint(in)
			if k <= 0 || n > uint64(len(in)-k) {
				break
			}
			b := in[k : k+int(n)]
			in = in[k+int(n):]
			fr, err := decodeSnapFrame(b)
			if err != nil {
				continue
			}
			before := len(s.n.msgs)
			s.onChunk("l", &fr)
			if len(s.n.msgs) == before {
				continue
			}
			// Handed over just now: its file is the one registered.
			m := s.n.msgs[len(s.n.msgs)-1]
			ds.recvMu.Lock()
			recv := ds.recv
			ds.recvMu.Unlock()
			if recv.path == "" || recv.index != m.Snapshot.Index || recv.term != m.Snapshot.Term {
				t.Fatalf("MsgSnap %d/%d handed over without its received file (%+v)", m.Snapshot.Index, m.Snapshot.Term, recv)
			}
			file, info, err := openSnapshotFile(fsys, recv.path)
			if err != nil {
				t.Fatalf("MsgSnap %d/%d handed over with a file that does not verify: %v", m.Snapshot.Index, m.Snapshot.Term, err)
			}
			file.Close()
			if info.meta.Index != m.Snapshot.Index || info.meta.Term != m.Snapshot.Term {
				t.Fatalf("MsgSnap %d/%d handed over with the file of %d/%d", m.Snapshot.Index, m.Snapshot.Term, info.meta.Index, info.meta.Term)
			}
		}
	})
}
