package consensus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/internal/vfs"
	"github.com/distkit/distkit/transport"
)

// The snapshot stream moves a snapshot file from a leader to a follower
// when the storage is a DiskStorage, whose snapshot in memory is the
// metadata only. The leader's core then sends one MsgSnap holding the
// metadata; the runtime keeps it back, streams the snapshot file in
// chunks of Config.SnapshotChunkBytes over the transport (service
// Config.Service+"/snapshot"), at most snapWindow chunks unacknowledged,
// and once every byte is acknowledged sends the MsgSnap itself in a commit
// frame. The follower's runtime writes the chunks, in order, to a
// temporary file (each fsynced), verifies the whole file on the commit
// frame and only then hands the MsgSnap to its core; ApplySnapshot renames
// the file into place. Frames of another transfer, an older term, out of
// order or past the announced size are refused, never mixed in; a
// refused, failed or timed-out transfer is reported to the leader's core
// (ReportSnapshot), which starts over.
//
// Concurrency: each outgoing transfer has a goroutine of its own (one per
// follower at most), stopped and waited for when the storage closes. The
// receiver writes and fsyncs a chunk on the transport's handler goroutine,
// before acknowledging it: the leader's next chunks wait for that ack
// anyway, and the handler never holds more than one chunk.

// snapWindow is how many chunks of one transfer may be unacknowledged: a
// slow follower holds the leader at snapWindow chunks in flight.
const snapWindow = 4

// defaultSnapshotChunkBytes is the chunk size when
// Config.SnapshotChunkBytes is 0.
const defaultSnapshotChunkBytes = 1 << 20

// snapServiceSuffix names the snapshot stream's transport service.
const snapServiceSuffix = "/snapshot"

// receivedSnapshotPrefix names a snapshot file being received; it ends in
// ".tmp" so that OpenDiskStorage removes a leftover one.
const receivedSnapshotPrefix = "." + snapshotFile + ".recv-"

var (
	errStreamRefused    = errors.New("consensus: snapshot stream: the follower refused a chunk")
	errStreamTimeout    = errors.New("consensus: snapshot stream: no acknowledgement")
	errStreamSuperseded = errors.New("consensus: snapshot stream: superseded by a newer transfer")
	errStreamChanged    = errors.New("consensus: snapshot stream: the snapshot was replaced")
)

// snapStreamer sends and receives snapshot files for one Node.
type snapStreamer struct {
	n          *Node
	ds         *DiskStorage
	service    string
	chunk      int
	ackTimeout time.Duration
	quit       chan struct{} // closed by close: the senders return
	wg         sync.WaitGroup

	// mu guards out, failures and closed.
	mu       sync.Mutex
	out      map[transport.NodeID]*outTransfer
	failures []snapFailure
	closed   bool
	failed   atomic.Bool // failures is not empty (read without mu by the loop)

	// inMu guards in and highTerm, and serializes the receiver's file I/O.
	inMu     sync.Mutex
	in       *inTransfer
	highTerm uint64 // the highest leader term seen in a chunk
	inClosed bool
}

// outTransfer is one snapshot file being sent.
type outTransfer struct {
	to                    transport.NodeID
	id                    uint64
	term, index, snapTerm uint64
	payload               []byte        // the core's MsgSnap, sent last
	sig                   chan struct{} // size 1: coalesced wake-up on an acknowledgement
	stop                  chan struct{} // closed when superseded
	// acked, refused and finished are guarded by snapStreamer.mu.
	acked   uint64
	refused bool
	// finished is when the commit frame went out. The transfer stays
	// known for ackTimeout after it, so that the core's resends of the
	// MsgSnap, until the follower's answer arrives, do not start another.
	finished time.Time
}

// inTransfer is one snapshot file being received.
type inTransfer struct {
	from                  transport.NodeID
	id                    uint64
	term, index, snapTerm uint64
	total, received       uint64
	path                  string
	f                     vfs.File // the file being written (DiskStorage)
	mem                   []byte   // or the bytes received (memStorage)
	done                  bool     // committed: handed to the core
}

type snapFailure struct {
	to  transport.NodeID
	err error
}

// startSnapStream sets up the snapshot stream of a Node. A Node on
// memStorage sends its snapshots inside the core's messages, but receives
// streamed ones (from a leader with a DataDir) in memory.
func (n *Node) startSnapStream() {
	ds, _ := n.store.(*DiskStorage)
	ms, _ := n.store.(*memStorage)
	if ds == nil && ms == nil {
		return
	}
	chunk := n.cfg.SnapshotChunkBytes
	if chunk == 0 {
		chunk = defaultSnapshotChunkBytes
	}
	s := &snapStreamer{
		n:       n,
		ds:      ds,
		service: n.cfg.Service + snapServiceSuffix,
		chunk:   chunk,
		// Generous: it only ends a transfer to a follower that went away.
		ackTimeout: max(10*time.Duration(n.cfg.ElectionTicks)*n.cfg.TickInterval, 5*time.Second),
		quit:       make(chan struct{}),
		out:        make(map[transport.NodeID]*outTransfer),
	}
	if ds != nil {
		ds.stream = s
	} else {
		ms.stream = s
	}
	n.tr.Handle(s.service, s.handle)
}

// snapStream returns the Node's snapshot stream, or nil.
func (n *Node) snapStream() *snapStreamer {
	switch st := n.store.(type) {
	case *DiskStorage:
		return st.stream
	case *memStorage:
		return st.stream
	}
	return nil
}

// restoreSnapshot restores sm from snap: from its bytes when it carries
// them (memStorage, or a snapshot received inside the core's messages),
// else by streaming the storage's verified snapshot file. It returns the
// number of bytes Restore read (the snapshot policy's size of the last
// snapshot).
func restoreSnapshot(sm StateMachine, store nodeStorage, snap raft.Snapshot) (uint64, error) {
	ds, ok := store.(*DiskStorage)
	if !ok || len(snap.Data) > 0 {
		return uint64(len(snap.Data)), sm.Restore(bytes.NewReader(snap.Data))
	}
	r, err := ds.openSnapshotData(snap.Meta)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	cr := &countingReader{r: r}
	err = sm.Restore(cr)
	return cr.n, err
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n uint64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += uint64(n)
	return n, err
}

// reportSnapshotStreams tells the core which streamed transfers failed. It
// runs on the loop goroutine.
func (n *Node) reportSnapshotStreams() {
	s := n.snapStream()
	if s == nil || !s.failed.Load() {
		return
	}
	s.mu.Lock()
	failures := s.failures
	s.failures = nil
	s.failed.Store(false)
	s.mu.Unlock()
	for _, f := range failures {
		n.debug("snapshot stream failed", "to", f.to, "err", f.err)
		n.core.ReportSnapshot(f.to, f.err)
	}
}

// streamSnapshot takes over a metadata-only MsgSnap from the core (whose
// enveloped encoding is payload): it starts streaming the snapshot file to
// m.To, or does nothing if that transfer is under way (the core resends
// an unanswered MsgSnap). It reports false for a MsgSnap that carries its
// data (sent as it is). It runs on the loop goroutine.
func (n *Node) streamSnapshot(m *raft.Message, payload []byte) bool {
	s := n.snapStream()
	if s == nil || s.ds == nil || m.Snapshot == nil || m.Offset != 0 || len(m.Data) != 0 || !m.Last {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return true
	}
	if t := s.out[m.To]; t != nil {
		same := t.term == m.Term && t.index == m.Snapshot.Index && t.snapTerm == m.Snapshot.Term
		if same && (t.finished.IsZero() || time.Since(t.finished) < s.ackTimeout) {
			return true
		}
		if t.finished.IsZero() {
			close(t.stop)
		}
	}
	t := &outTransfer{
		to: m.To, id: rand.Uint64(), term: m.Term, index: m.Snapshot.Index, snapTerm: m.Snapshot.Term,
		payload: payload, sig: make(chan struct{}, 1), stop: make(chan struct{}),
	}
	s.out[m.To] = t
	s.wg.Add(1)
	go s.send(t)
	return true
}

// send is the goroutine of one outgoing transfer.
func (s *snapStreamer) send(t *outTransfer) {
	defer s.wg.Done()
	err := s.sendFile(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out[t.to] == t {
		if err == nil {
			t.finished = time.Now()
		} else {
			delete(s.out, t.to)
		}
	}
	if err != nil && !s.closed && !errors.Is(err, errStreamSuperseded) {
		s.failures = append(s.failures, snapFailure{to: t.to, err: err})
		s.failed.Store(true)
	}
}

// sendFile streams the snapshot file, snapWindow chunks ahead of the
// acknowledgements at most, then the commit frame.
func (s *snapStreamer) sendFile(t *outTransfer) error {
	f, info, err := openSnapshotFile(s.ds.fs, filepath.Join(s.ds.dir, snapshotFile))
	if err != nil {
		return fmt.Errorf("consensus: snapshot stream: %w", err)
	}
	defer f.Close()
	if info.meta.Index != t.index || info.meta.Term != t.snapTerm {
		return errStreamChanged
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("consensus: snapshot stream: %w", err)
	}
	total := uint64(info.size)
	frame := snapFrame{Transfer: t.id, Term: t.term, Index: t.index, SnapTerm: t.snapTerm, Total: total}
	buf := make([]byte, s.chunk)
	timer := time.NewTimer(s.ackTimeout)
	defer timer.Stop()
	var sent uint64
	for {
		s.mu.Lock()
		acked, refused := t.acked, t.refused
		s.mu.Unlock()
		if refused {
			return errStreamRefused
		}
		if acked == total {
			break
		}
		if sent < total && sent-acked < snapWindow*uint64(s.chunk) {
			k := min(uint64(s.chunk), total-sent)
			if _, err := io.ReadFull(f, buf[:k]); err != nil {
				return fmt.Errorf("consensus: snapshot stream: %w", err)
			}
			frame.Kind, frame.Offset, frame.Data = frameChunk, sent, buf[:k]
			if err := s.sendFrame(t.to, &frame); err != nil {
				return err
			}
			sent += k
			continue
		}
		timer.Reset(s.ackTimeout)
		select {
		case <-t.sig:
		case <-t.stop:
			return errStreamSuperseded
		case <-s.quit:
			return ErrStopped
		case <-timer.C:
			return fmt.Errorf("%w for %v (%d of %d bytes acknowledged)", errStreamTimeout, s.ackTimeout, acked, total)
		}
	}
	frame.Kind, frame.Offset, frame.Data = frameCommit, total, t.payload
	return s.sendFrame(t.to, &frame)
}

// sendFrame sends one frame, inside the Node's envelope.
func (s *snapStreamer) sendFrame(to transport.NodeID, f *snapFrame) error {
	p := make([]byte, 0, envelopeHeaderSize+maxSnapFrameHeader+len(f.Data))
	p = appendSnapFrame(appendEnvelopeHeader(p, s.n.clusterID), f)
	if err := s.n.tr.Send(context.Background(), to, s.service, p); err != nil {
		return fmt.Errorf("consensus: snapshot stream: %w", err)
	}
	return nil
}

// handle is the transport handler of the snapshot stream service.
func (s *snapStreamer) handle(msg transport.Message) {
	cid, body, err := openEnvelope(msg.Payload)
	if err != nil || cid != s.n.clusterID || !s.n.knownMember(msg.From) {
		s.n.debug("dropping snapshot frame", "from", msg.From, "err", err)
		return
	}
	f, err := decodeSnapFrame(body)
	if err != nil {
		s.n.debug("dropping snapshot frame", "from", msg.From, "err", err)
		return
	}
	switch f.Kind {
	case frameAck, frameRefuse:
		s.onAck(msg.From, &f)
	default:
		s.onChunk(msg.From, &f)
	}
}

// onAck records a follower's acknowledgement or refusal.
func (s *snapStreamer) onAck(from transport.NodeID, f *snapFrame) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.out[from]
	if t == nil || t.id != f.Transfer || t.term != f.Term || t.index != f.Index || t.snapTerm != f.SnapTerm {
		return // an ended transfer's
	}
	if f.Kind == frameRefuse {
		t.refused = true
	} else {
		t.acked = max(t.acked, f.Offset)
	}
	select {
	case t.sig <- struct{}{}:
	default:
	}
}

// onChunk is the follower's side: one chunk, or the commit frame.
func (s *snapStreamer) onChunk(from transport.NodeID, f *snapFrame) {
	s.inMu.Lock()
	defer s.inMu.Unlock()
	if s.inClosed {
		return
	}
	if f.Term < s.highTerm {
		s.reply(from, f, frameRefuse, 0) // an older leader's
		return
	}
	in := s.in
	if in == nil || in.from != from || in.id != f.Transfer || in.term != f.Term {
		// A new transfer (a new leader, or a restarted transfer) starts
		// over from its first chunk; anything else is refused.
		if f.Kind != frameChunk || f.Offset != 0 {
			s.reply(from, f, frameRefuse, 0)
			return
		}
		s.dropIn()
		in = &inTransfer{from: from, id: f.Transfer, term: f.Term, index: f.Index, snapTerm: f.SnapTerm, total: f.Total}
		if s.ds != nil {
			in.path = filepath.Join(s.ds.dir, fmt.Sprintf("%s%016x.tmp", receivedSnapshotPrefix, f.Transfer))
			file, err := s.ds.fs.OpenFile(in.path, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
			if err != nil {
				s.n.debug("snapshot stream: create file", "err", err)
				s.reply(from, f, frameRefuse, 0)
				return
			}
			in.f = file
		}
		s.in, s.highTerm = in, f.Term
	}
	if in.done {
		return // committed already: a duplicate
	}
	if f.Index != in.index || f.SnapTerm != in.snapTerm || f.Total != in.total {
		s.reply(from, f, frameRefuse, in.received)
		return
	}
	if f.Kind == frameCommit {
		s.commit(in, f)
		return
	}
	end := f.Offset + uint64(len(f.Data))
	switch {
	case end <= in.received:
		s.reply(from, f, frameAck, in.received) // a duplicate
		return
	case f.Offset != in.received:
		s.reply(from, f, frameRefuse, in.received) // out of order
		return
	}
	err := in.write(f.Data)
	if err != nil {
		s.n.debug("snapshot stream: write", "err", err)
		s.dropIn()
		s.reply(from, f, frameRefuse, 0)
		return
	}
	in.received = end
	s.reply(from, f, frameAck, end)
}

// commit verifies a completely received file and hands the core the
// leader's MsgSnap for it.
func (s *snapStreamer) commit(in *inTransfer, f *snapFrame) {
	if in.received != in.total {
		s.reply(in.from, f, frameRefuse, in.received)
		return
	}
	err := s.checkCommit(in, f)
	if err != nil {
		s.n.debug("snapshot stream: refusing the received snapshot", "from", in.from, "err", err)
		s.dropIn()
		s.reply(in.from, f, frameRefuse, 0)
		return
	}
	payload := f.Data
	if in.f == nil {
		// In memory (memStorage): the core gets the bytes in its MsgSnap.
		if payload, err = withSnapshotData(f.Data, in.mem); err != nil {
			s.dropIn()
			return
		}
		in.mem = nil
	} else {
		err = in.f.Close()
		in.f = nil
		if err != nil {
			s.dropIn()
			return
		}
		s.ds.setReceived(receivedSnapshot{index: in.index, term: in.snapTerm, path: in.path})
	}
	in.done = true
	s.n.receive(transport.Message{From: in.from, To: s.n.cfg.ID, Service: s.n.cfg.Service, Payload: payload})
}

// write appends one chunk to the file (fsynced) or the buffer.
func (in *inTransfer) write(b []byte) error {
	if in.f == nil {
		in.mem = append(in.mem, b...)
		return nil
	}
	if _, err := in.f.Write(b); err != nil {
		return err
	}
	return in.f.Sync()
}

// withSnapshotData returns the enveloped MsgSnap payload with the data of
// the snapshot file file in its Data.
func withSnapshotData(payload, file []byte) ([]byte, error) {
	snap, err := decodeSnapshot(file)
	if err != nil {
		return nil, err
	}
	cid, body, err := openEnvelope(payload)
	if err != nil {
		return nil, err
	}
	var m raft.Message
	if err := m.Unmarshal(body); err != nil {
		return nil, err
	}
	m.Data = snap.Data
	return m.MarshalAppend(appendEnvelopeHeader(nil, cid))
}

// checkCommit checks the received file (magic, checksum, metadata) and the
// commit frame's MsgSnap against the transfer.
func (s *snapStreamer) checkCommit(in *inTransfer, f *snapFrame) error {
	var info snapshotFileInfo
	if in.f != nil {
		i, err := verifySnapshotFile(in.f)
		if err != nil {
			return err
		}
		info = i
	} else {
		snap, err := decodeSnapshot(in.mem)
		if err != nil {
			return err
		}
		info.meta = snap.Meta
	}
	if info.meta.Index != in.index || info.meta.Term != in.snapTerm {
		return fmt.Errorf("%w: the file holds snapshot %d/%d", ErrBadSnapshotFrame, info.meta.Index, info.meta.Term)
	}
	cid, body, err := openEnvelope(f.Data)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadSnapshotFrame, err)
	}
	var m raft.Message
	if err := m.Unmarshal(body); err != nil {
		return fmt.Errorf("%w: %w", ErrBadSnapshotFrame, err)
	}
	if cid != s.n.clusterID || m.Type != raft.MsgSnap || m.From != in.from || m.To != s.n.cfg.ID || m.Term != in.term ||
		m.Snapshot == nil || m.Snapshot.Index != in.index || m.Snapshot.Term != in.snapTerm || len(m.Data) != 0 {
		return fmt.Errorf("%w: the commit's message does not match the transfer", ErrBadSnapshotFrame)
	}
	return nil
}

// reply sends an acknowledgement or a refusal of f.
func (s *snapStreamer) reply(to transport.NodeID, f *snapFrame, kind byte, offset uint64) {
	r := snapFrame{Kind: kind, Transfer: f.Transfer, Term: f.Term, Index: f.Index, SnapTerm: f.SnapTerm, Offset: min(offset, f.Total), Total: f.Total}
	if err := s.sendFrame(to, &r); err != nil {
		s.n.debug("snapshot stream: reply", "to", to, "err", err)
	}
}

// dropIn abandons the transfer being received and removes its file.
func (s *snapStreamer) dropIn() {
	in := s.in
	s.in = nil
	if in == nil || in.f == nil {
		return // none, in memory, or committed: the file belongs to the storage now
	}
	in.f.Close()
	s.ds.fs.Remove(in.path)
}

// close stops the stream: the senders return and the partial file being
// received is removed. It runs as the storage closes.
func (s *snapStreamer) close() {
	s.n.tr.Handle(s.service, nil)
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.quit)
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.inMu.Lock()
	s.inClosed = true
	s.dropIn()
	s.inMu.Unlock()
}
