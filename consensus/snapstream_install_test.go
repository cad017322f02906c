package consensus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
	"github.com/distkit/distkit/transport/tcp"
)

// streamPadSM is a state machine whose snapshot is large: a header (applied
// index, a running hash of the commands, the padding's length) and then
// pad bytes of a stream seeded by the header. Restore checks every byte
// of the padding, so a snapshot that lost, repeated or reordered a chunk
// on the way is refused.
type streamPadSM struct {
	pad int

	mu      sync.Mutex // guards applied, sum, changed
	applied uint64
	sum     uint64
	changed chan struct{} // closed (and replaced) when applied moves
}

func newStreamPadSM(pad int) *streamPadSM {
	return &streamPadSM{pad: pad, changed: make(chan struct{})}
}

func (s *streamPadSM) Apply(e Entry) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := fnv.New64a()
	h.Write(e.Command)
	s.sum = s.sum*31 + h.Sum64()
	s.applied = e.Index
	close(s.changed)
	s.changed = make(chan struct{})
	return e.Index
}

func padStream(applied, sum uint64) *rand.ChaCha8 {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], applied)
	binary.LittleEndian.PutUint64(seed[8:], sum)
	return rand.NewChaCha8(seed)
}

func (s *streamPadSM) Snapshot(w io.Writer) error {
	s.mu.Lock()
	applied, sum := s.applied, s.sum
	s.mu.Unlock()
	var hdr [24]byte
	binary.LittleEndian.PutUint64(hdr[:], applied)
	binary.LittleEndian.PutUint64(hdr[8:], sum)
	binary.LittleEndian.PutUint64(hdr[16:], uint64(s.pad))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := io.CopyN(w, padStream(applied, sum), int64(s.pad))
	return err
}

var errBadPadding = errors.New("streamPadSM: snapshot padding differs")

func (s *streamPadSM) Restore(r io.Reader) error {
	var hdr [24]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	applied, sum := binary.LittleEndian.Uint64(hdr[:]), binary.LittleEndian.Uint64(hdr[8:])
	want := padStream(applied, sum)
	buf, exp := make([]byte, 64<<10), make([]byte, 64<<10)
	for left := int64(binary.LittleEndian.Uint64(hdr[16:])); left > 0; {
		k := min(left, int64(len(buf)))
		if _, err := io.ReadFull(r, buf[:k]); err != nil {
			return err
		}
		want.Read(exp[:k])
		if string(buf[:k]) != string(exp[:k]) {
			return errBadPadding
		}
		left -= k
	}
	if n, _ := r.Read(buf[:1]); n != 0 {
		return fmt.Errorf("streamPadSM: trailing bytes after the padding")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applied, s.sum = applied, sum
	close(s.changed)
	s.changed = make(chan struct{})
	return nil
}

func (s *streamPadSM) state() (uint64, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied, s.sum
}

func (s *streamPadSM) waitApplied(ctx context.Context, index uint64) error {
	return waitUntilApplied(ctx, &s.mu, &s.applied, &s.changed, index)
}

// recordingTransport records the largest payload sent to each service.
type recordingTransport struct {
	transport.Transport
	mu      sync.Mutex // guards largest, count
	largest map[string]int
	count   map[string]int
}

func record(tr transport.Transport) *recordingTransport {
	return &recordingTransport{Transport: tr, largest: map[string]int{}, count: map[string]int{}}
}

func (r *recordingTransport) Send(ctx context.Context, to transport.NodeID, service string, payload []byte) error {
	r.mu.Lock()
	r.largest[service] = max(r.largest[service], len(payload))
	r.count[service]++
	r.mu.Unlock()
	return r.Transport.Send(ctx, to, service, payload)
}

func (r *recordingTransport) stats(service string) (largest, count int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.largest[service], r.count[service]
}

// snapstreamPad is the state machine's snapshot size in the install
// tests: 32 MiB, 64 MiB with DISTKIT_SOAK=1.
func snapstreamPad() int {
	if os.Getenv("DISTKIT_SOAK") != "" {
		return 64 << 20
	}
	return 32 << 20
}

const testChunk = 256 << 10

// bigCluster is three durable nodes running bigSMs.
type bigCluster struct {
	t     *testing.T
	nodes map[transport.NodeID]*Node
	sms   map[transport.NodeID]*streamPadSM
	trs   map[transport.NodeID]*recordingTransport
	dirs  map[transport.NodeID]string
	newTr func(id transport.NodeID) transport.Transport
	pad   int
	noDir transport.NodeID // a node without a DataDir (memStorage), if any
}

func newBigCluster(t *testing.T, newTr func(id transport.NodeID) transport.Transport, noDir transport.NodeID) *bigCluster {
	c := &bigCluster{
		t: t, nodes: map[transport.NodeID]*Node{}, sms: map[transport.NodeID]*streamPadSM{},
		trs: map[transport.NodeID]*recordingTransport{}, dirs: map[transport.NodeID]string{},
		newTr: newTr, pad: snapstreamPad(), noDir: noDir,
	}
	for _, id := range three {
		c.dirs[id] = t.TempDir()
		c.start(id)
	}
	t.Cleanup(func() {
		for _, id := range three {
			c.stop(id)
		}
		for _, tr := range c.trs {
			tr.Close()
		}
	})
	return c
}

func (c *bigCluster) start(id transport.NodeID) {
	c.t.Helper()
	if c.trs[id] == nil {
		c.trs[id] = record(c.newTr(id))
	}
	cfg := testConfig(id, three)
	cfg.DataDir = c.dirs[id]
	if id == c.noDir {
		cfg.DataDir = ""
	}
	cfg.SnapshotThreshold, cfg.SnapshotRetainEntries = 30, 5
	cfg.SnapshotChunkBytes = testChunk
	cfg.MaxMsgBytes = 64 << 10
	sm := newStreamPadSM(c.pad)
	n, err := New(cfg, c.trs[id], sm)
	if err != nil {
		c.t.Fatalf("New(%s) = %v", id, err)
	}
	c.nodes[id], c.sms[id] = n, sm
}

func (c *bigCluster) stop(id transport.NodeID) {
	if n := c.nodes[id]; n != nil {
		if err := n.Close(); err != nil {
			c.t.Errorf("Close(%s) = %v", id, err)
		}
		delete(c.nodes, id)
	}
}

func (c *bigCluster) propose(ctx context.Context, prefix string, k int) (uint64, transport.NodeID) {
	c.t.Helper()
	members := map[transport.NodeID]Proposer{}
	for id, n := range c.nodes {
		members[id] = n
	}
	ccfg := DefaultClientConfig()
	ccfg.AttemptTimeout = 20 * time.Second // a 32 MiB snapshot is taken on the loop (slow under -race)
	cl, err := NewClient(members, ccfg)
	if err != nil {
		c.t.Fatal(err)
	}
	var last uint64
	for i := range k {
		v, err := cl.Propose(ctx, fmt.Appendf(nil, "%s%d", prefix, i))
		if err != nil {
			c.t.Fatalf("Propose: %v", err)
		}
		last = v.(uint64)
	}
	return last, cl.Leader()
}

// testSnapshotInstall: a follower stopped early comes back after the
// leader compacted its log behind a 32 MiB snapshot; it catches up by the
// snapshot stream and ends with the leader's state, every message of the
// stream at most a chunk and its header, and no snapshot bytes held in
// memory by its storage.
func testSnapshotInstall(t *testing.T, newTr func(id transport.NodeID) transport.Transport) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := newBigCluster(t, newTr, "")
	_, leader := c.propose(ctx, "a", 3)
	var victim transport.NodeID
	for _, id := range three {
		if id != leader {
			victim = id
			break
		}
	}
	c.stop(victim)
	c.propose(ctx, "b", 40) // every live node snapshots at 30 and compacts
	last, leader := c.propose(ctx, "c", 3)
	c.start(victim)
	if err := c.sms[victim].waitApplied(ctx, last); err != nil {
		t.Fatalf("%s: %v", victim, err)
	}
	if err := c.sms[leader].waitApplied(ctx, last); err != nil {
		t.Fatalf("%s: %v", leader, err)
	}
	ga, gs := c.sms[victim].state()
	wa, ws := c.sms[leader].state()
	if ga < last || gs == 0 || (ga == wa && gs != ws) {
		t.Fatalf("%s state (applied %d, sum %x); leader %s (applied %d, sum %x)", victim, ga, gs, leader, wa, ws)
	}
	snap, err := c.nodes[victim].store.Snapshot()
	if err != nil || snap.Meta.Index < 30 || snap.Data != nil {
		t.Fatalf("%s snapshot = index %d with %d bytes in memory, %v; want index >= 30 and the data only on disk", victim, snap.Meta.Index, len(snap.Data), err)
	}
	if snap, _ := c.nodes[leader].store.Snapshot(); snap.Data != nil {
		t.Fatalf("leader %s holds its snapshot's %d bytes in memory", leader, len(snap.Data))
	}
	largest, count := c.trs[leader].stats("raft" + snapServiceSuffix)
	if limit := testChunk + envelopeHeaderSize + maxSnapFrameHeader; largest > limit || count < c.pad/testChunk {
		t.Fatalf("leader sent %d snapshot frames, the largest %d bytes; want at least %d, none over %d", count, largest, c.pad/testChunk, limit)
	}
	if largest, _ := c.trs[leader].stats("raft"); largest > 1<<20 {
		t.Fatalf("leader sent a raft message of %d bytes; want the snapshot's bytes only in the stream", largest)
	}
	// The installed snapshot survives a restart.
	c.stop(victim)
	c.start(victim)
	if got, _ := c.sms[victim].state(); got < snap.Meta.Index {
		t.Fatalf("%s after restart applied %d; want at least the snapshot's %d", victim, got, snap.Meta.Index)
	}
}

func TestSnapshotStreamInstallMemnet(t *testing.T) {
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { net.Close() })
	testSnapshotInstall(t, func(id transport.NodeID) transport.Transport {
		tr, err := net.Join(id)
		if err != nil {
			t.Fatalf("Join(%s) = %v", id, err)
		}
		return tr
	})
}

func TestSnapshotStreamInstallTCP(t *testing.T) {
	addrs := map[transport.NodeID]string{}
	var trs []*tcp.Transport
	for _, id := range three {
		cfg := tcp.DefaultConfig()
		cfg.ID = id
		cfg.MinBackoff, cfg.MaxBackoff = 5*time.Millisecond, 50*time.Millisecond
		tr, err := tcp.Listen(cfg)
		if err != nil {
			t.Fatalf("tcp.Listen(%s) = %v", id, err)
		}
		addrs[id] = tr.Addr().String()
		trs = append(trs, tr)
	}
	for _, tr := range trs {
		for _, p := range three {
			if p != tr.ID() {
				if err := tr.AddPeer(p, addrs[p]); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	testSnapshotInstall(t, func(id transport.NodeID) transport.Transport {
		for _, tr := range trs {
			if tr.ID() == id {
				return tr
			}
		}
		t.Fatalf("no transport for %s", id)
		return nil
	})
}

// TestSnapshotStreamToMemoryFollower: a node without a DataDir (its
// snapshots in memory) receives the snapshot a leader with a DataDir
// streams, in memory, and ends with the leader's state.
func TestSnapshotStreamToMemoryFollower(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { net.Close() })
	victim := three[2]
	c := newBigCluster(t, func(id transport.NodeID) transport.Transport {
		tr, err := net.Join(id)
		if err != nil {
			t.Fatalf("Join(%s) = %v", id, err)
		}
		return tr
	}, victim)
	c.pad = 4 << 20
	c.propose(ctx, "a", 3)
	c.stop(victim) // a leader with a DataDir takes over if it led
	c.propose(ctx, "b", 40)
	last, leader := c.propose(ctx, "c", 3)
	c.start(victim) // empty: it has no DataDir
	if err := c.sms[victim].waitApplied(ctx, last); err != nil {
		t.Fatalf("%s: %v", victim, err)
	}
	if err := c.sms[leader].waitApplied(ctx, last); err != nil {
		t.Fatal(err)
	}
	if _, count := c.trs[leader].stats("raft" + snapServiceSuffix); count == 0 {
		t.Fatalf("leader %s streamed nothing; want the snapshot through the stream", leader)
	}
	ga, gs := c.sms[victim].state()
	wa, ws := c.sms[leader].state()
	if ga != wa || gs != ws {
		t.Fatalf("%s at (applied %d, sum %x); leader %s at (%d, %x)", victim, ga, gs, leader, wa, ws)
	}
}
