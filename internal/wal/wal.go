package wal

import (
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/distkit/distkit/internal/vfs"
)

// Options configure a Log. The zero value is usable: DefaultOptions fills in
// every zero field.
type Options struct {
	// SegmentSize is the size in bytes past which the log starts a new
	// segment file. Segments are the unit DeleteBefore removes, so smaller
	// segments free space sooner after a snapshot. Default 64 MiB.
	SegmentSize int64
	// Logger receives notices about recovery (a torn tail cut off, at
	// WARN). Nil is silent.
	Logger *slog.Logger
	// FS is the file system the log lives on. Nil is the operating
	// system's (vfs.OS); tests pass a vfs.CrashFS to simulate power loss.
	FS vfs.FS
}

// DefaultOptions returns the default options.
func DefaultOptions() Options { return Options{SegmentSize: 64 << 20} }

// Validate reports whether the options are usable.
func (o Options) Validate() error {
	if o.SegmentSize < 0 {
		return fmt.Errorf("%w: SegmentSize %d is negative", ErrInvalidArgument, o.SegmentSize)
	}
	return nil
}

// Log is a write-ahead log of records with consecutive indices, stored in
// segment files in one directory. See the package documentation for the
// guarantees and the caller's duties.
type Log struct {
	fs      vfs.FS
	dir     string
	segSize int64
	logger  *slog.Logger

	// mu guards every field below, and the segments' offsets and sizes. The
	// active segment's file is written without mu by the one goroutine that
	// set flushing; exclusive operations wait for it to finish.
	mu   sync.Mutex
	cond *sync.Cond // signalled when flushing, exclusive or durable change

	segs     []*segment // ascending; the last one is active (appended to)
	next     uint64     // index the next appended record gets
	durable  uint64     // last index written and fsynced
	pending  []byte     // encoded records not yet handed to a flusher
	sizes    []int      // encoded size of each record in pending
	spare    []byte     // recycled buffer for pending
	flushing bool       // a goroutine is writing and fsyncing a batch
	// exclusive is set while TruncateBack, DeleteBefore, Reset or Close
	// restructure the segments; Append waits before queueing.
	exclusive bool
	closed    bool
	err       error // sticky: after a failed write or fsync nothing is trusted
}

// Open opens the log in dir, creating the directory and an empty log (next
// index 1) if needed. It validates every record and cuts off a torn tail of
// the last segment (a damaged last write batch with nothing valid written
// after it), logging a warning. Any other damage (in a sealed segment, or a
// bad record followed by a valid record of a later batch, or segments that
// are not contiguous) fails Open with a *CorruptError (matching ErrCorrupt)
// naming the file and offset: cutting it off would lose acknowledged
// records.
func Open(dir string, opts Options) (*Log, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.SegmentSize == 0 {
		opts.SegmentSize = DefaultOptions().SegmentSize
	}
	fsys := vfs.Or(opts.FS)
	if err := vfs.MkdirAllDurable(fsys, dir); err != nil {
		return nil, fmt.Errorf("wal: open: %w", err)
	}
	firsts, err := listSegments(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("wal: open: %w", err)
	}
	l := &Log{fs: fsys, dir: dir, segSize: opts.SegmentSize, logger: opts.Logger}
	l.cond = sync.NewCond(&l.mu)
	closeAll := func() {
		for _, s := range l.segs {
			s.f.Close()
		}
	}
	for i, first := range firsts {
		s, cut, err := loadSegment(fsys, dir, first, i == len(firsts)-1)
		if err != nil {
			closeAll()
			return nil, err
		}
		if n := len(l.segs); n > 0 && l.segs[n-1].last()+1 != first {
			s.f.Close()
			closeAll()
			return nil, &CorruptError{File: s.path, Offset: 0, Err: fmt.Errorf("%w: segment %d follows one ending at %d", ErrCorrupt, first, l.segs[n-1].last())}
		}
		if cut > 0 && l.logger != nil {
			l.logger.Warn("wal: cut off torn or corrupt tail", "segment", s.path, "bytes", cut, "last", s.last())
		}
		l.segs = append(l.segs, s)
	}
	if len(l.segs) == 0 {
		s, err := createSegment(fsys, dir, 1)
		if err != nil {
			return nil, err
		}
		l.segs = append(l.segs, s)
	}
	l.next = l.active().last() + 1
	l.durable = l.next - 1
	return l, nil
}

func (l *Log) active() *segment { return l.segs[len(l.segs)-1] }

// FirstIndex returns the index of the oldest record still in the log. When
// the log is empty it is LastIndex()+1.
func (l *Log) FirstIndex() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.segs[0].first
}

// LastIndex returns the index of the last durable record: every Append that
// has returned is covered. It is FirstIndex()-1 when the log is empty.
func (l *Log) LastIndex() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.durable
}

// Append adds records to the end of the log and returns the index of the
// last one; the first gets LastIndex()+1 as seen under the log's lock, and
// the records of one call are consecutive. Append returns once the records
// are durable (written and fsynced).
//
// Group commit: concurrent calls share fsyncs. While one goroutine writes
// and fsyncs a batch, the others queue their records; when it finishes, one
// of them writes everything queued with a single fsync. A call with many
// records (a whole Raft step) is one batch.
//
// After a failed write or fsync the log is unusable: every later call
// returns the error, because the kernel may have dropped the dirty pages and
// nothing on disk can be trusted until the log is reopened.
func (l *Log) Append(records ...[]byte) (uint64, error) {
	for _, r := range records {
		if len(r) > MaxRecordSize {
			return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(r), MaxRecordSize)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.exclusive && !l.closed {
		l.cond.Wait()
	}
	if err := l.usableLocked(); err != nil {
		return 0, err
	}
	if len(records) == 0 {
		return l.next - 1, nil
	}
	for _, r := range records {
		// The first record of pending starts the batch the next flush
		// writes; the others continue it (see loadSegment).
		l.pending = appendRecord(l.pending, l.next, r, len(l.pending) > 0)
		l.sizes = append(l.sizes, RecordSize(len(r)))
		l.next++
	}
	mine := l.next - 1
	for l.durable < mine {
		if l.err != nil {
			return 0, l.err
		}
		if l.flushing {
			l.cond.Wait()
			continue
		}
		l.flushLocked()
	}
	return mine, nil
}

func (l *Log) usableLocked() error {
	if l.closed {
		return ErrClosed
	}
	return l.err
}

// flushLocked writes and fsyncs everything pending. It is called with mu
// held and l.flushing false; it releases mu during the I/O.
func (l *Log) flushLocked() {
	if len(l.pending) == 0 {
		return
	}
	l.flushing = true
	buf, sizes := l.pending, l.sizes
	l.pending, l.sizes = l.spare[:0], nil
	last := l.next - 1
	first := last - uint64(len(sizes)) + 1
	seg := l.active()
	needRoll := seg.size >= l.segSize && len(seg.offsets) > 0
	base := seg.size
	l.mu.Unlock()

	var err error
	if needRoll {
		// Records reach a sealed segment only after an fsync (the flush
		// that wrote them), so a new segment never follows a torn one.
		seg, err = createSegment(l.fs, l.dir, first)
		base = 0
	}
	if err == nil {
		_, err = seg.f.Write(buf)
	}
	if err == nil {
		err = seg.f.Sync()
	}

	l.mu.Lock()
	l.flushing = false
	l.spare = buf[:0]
	if err != nil {
		l.err = fmt.Errorf("wal: append: %w", err)
		if l.logger != nil {
			l.logger.Error("wal: append failed; log is unusable until reopened", "err", err)
		}
		l.cond.Broadcast()
		return
	}
	if needRoll {
		l.segs = append(l.segs, seg)
	}
	off := base
	for _, n := range sizes {
		seg.offsets = append(seg.offsets, off)
		off += int64(n)
	}
	seg.size = off
	l.durable = last
	l.cond.Broadcast()
}

// beginExclusive waits until no flush is running and nothing is pending,
// flushing it itself if needed, and keeps new appends out until
// endExclusive. Called with mu held.
func (l *Log) beginExclusive() error {
	for l.exclusive && !l.closed {
		l.cond.Wait()
	}
	if err := l.usableLocked(); err != nil {
		return err
	}
	l.exclusive = true
	for l.flushing || len(l.pending) > 0 {
		if l.flushing {
			l.cond.Wait()
			continue
		}
		l.flushLocked()
	}
	if l.err != nil {
		l.exclusive = false
		l.cond.Broadcast()
		return l.err
	}
	return nil
}

func (l *Log) endExclusive() {
	l.exclusive = false
	l.cond.Broadcast()
}

// Read returns a copy of the payload of record index.
func (l *Log) Read(index uint64) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return nil, err
	}
	if index < l.segs[0].first || index > l.durable {
		return nil, fmt.Errorf("%w: %d not in [%d, %d]", ErrNotFound, index, l.segs[0].first, l.durable)
	}
	seg := l.segs[l.segmentFor(index)]
	i := index - seg.first
	end := seg.size
	if i+1 < uint64(len(seg.offsets)) {
		end = seg.offsets[i+1]
	}
	buf := make([]byte, end-seg.offsets[i])
	if _, err := seg.f.ReadAt(buf, seg.offsets[i]); err != nil {
		return nil, fmt.Errorf("wal: read %d: %w", index, err)
	}
	got, payload, _, err := DecodeRecord(buf)
	if err != nil {
		return nil, fmt.Errorf("wal: read %d: %w", index, err)
	}
	if got != index {
		return nil, fmt.Errorf("%w: read %d found record %d", ErrCorrupt, index, got)
	}
	return payload, nil
}

// Replay calls fn for every record from index from (clamped to FirstIndex)
// to LastIndex, in order, stopping at fn's first error. The payload passed
// to fn is only valid during the call. Replay reads sequentially, so it is
// how a user rebuilds its state after Open.
func (l *Log) Replay(from uint64, fn func(index uint64, payload []byte) error) error {
	l.mu.Lock()
	if err := l.usableLocked(); err != nil {
		l.mu.Unlock()
		return err
	}
	// Snapshot the segment list; appends only add at the end, and
	// restructuring operations are the caller's to serialize with Replay.
	type span struct {
		seg      *segment
		from, to int64
		first    uint64
	}
	var spans []span
	for _, s := range l.segs {
		if len(s.offsets) == 0 || s.last() < from {
			continue
		}
		start := s.offsets[0]
		first := s.first
		if from > s.first {
			start = s.offsets[from-s.first]
			first = from
		}
		spans = append(spans, span{seg: s, from: start, to: s.size, first: first})
	}
	l.mu.Unlock()

	for _, sp := range spans {
		data := make([]byte, sp.to-sp.from)
		if _, err := sp.seg.f.ReadAt(data, sp.from); err != nil && err != io.EOF {
			return fmt.Errorf("wal: replay: %w", err)
		}
		want := sp.first
		for len(data) > 0 {
			index, payload, n, err := DecodeRecord(data)
			if err != nil {
				return fmt.Errorf("wal: replay: %w", err)
			}
			if index != want {
				return fmt.Errorf("%w: replay found record %d where %d was expected", ErrCorrupt, index, want)
			}
			if err := fn(index, payload); err != nil {
				return err
			}
			data = data[n:]
			want++
		}
	}
	return nil
}

// segmentFor returns the position in l.segs of the segment holding index,
// which must be in the log. Called with mu held.
func (l *Log) segmentFor(index uint64) int {
	lo, hi := 0, len(l.segs)-1
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if l.segs[mid].first <= index {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

// TruncateBack removes every record after index, so that LastIndex becomes
// index; Raft uses it to drop a conflicting suffix (§5.3). The truncation is
// durable when it returns, so a crash cannot resurrect the removed records
// behind newer ones. index must be in [FirstIndex-1, LastIndex].
func (l *Log) TruncateBack(index uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.beginExclusive(); err != nil {
		return err
	}
	defer l.endExclusive()
	if index+1 < l.segs[0].first || index > l.durable {
		return fmt.Errorf("%w: truncate after %d outside [%d, %d]", ErrInvalidArgument, index, l.segs[0].first-1, l.durable)
	}
	if index == l.durable {
		return nil
	}
	// Remove whole segments newest first, so a crash midway leaves a
	// contiguous prefix. The first segment is kept even if emptied: it
	// carries the log's first index.
	removed := false
	for len(l.segs) > 1 && l.active().first > index {
		if err := l.active().remove(l.fs); err != nil {
			return l.failLocked(err)
		}
		l.segs = l.segs[:len(l.segs)-1]
		removed = true
	}
	if removed {
		if err := SyncDirFS(l.fs, l.dir); err != nil {
			return l.failLocked(err)
		}
	}
	seg := l.active()
	keep := int(index + 1 - seg.first)
	if keep < len(seg.offsets) {
		size := seg.offsets[keep]
		if err := seg.f.Truncate(size); err != nil {
			return l.failLocked(fmt.Errorf("wal: truncate: %w", err))
		}
		if err := seg.f.Sync(); err != nil {
			return l.failLocked(fmt.Errorf("wal: truncate: %w", err))
		}
		seg.offsets = seg.offsets[:keep]
		seg.size = size
	}
	if _, err := seg.f.Seek(seg.size, io.SeekStart); err != nil {
		return l.failLocked(fmt.Errorf("wal: truncate: %w", err))
	}
	l.next = index + 1
	l.durable = index
	return nil
}

// DeleteBefore removes the segments whose records all have indices below
// index (they are covered by a snapshot). Records below index that share a
// segment with later ones stay, so FirstIndex may remain below index; the
// active segment is never removed.
func (l *Log) DeleteBefore(index uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.beginExclusive(); err != nil {
		return err
	}
	defer l.endExclusive()
	// Oldest first, so a crash midway leaves a contiguous suffix.
	n := 0
	for n+1 < len(l.segs) && l.segs[n+1].first <= index {
		if err := l.segs[n].remove(l.fs); err != nil {
			return l.failLocked(err)
		}
		n++
	}
	if n == 0 {
		return nil
	}
	l.segs = append([]*segment(nil), l.segs[n:]...)
	if err := SyncDirFS(l.fs, l.dir); err != nil {
		return l.failLocked(err)
	}
	return nil
}

// Reset discards every record and restarts the log empty, with next the
// index of the next record appended. Raft uses it after installing a
// snapshot that the log does not reach. Segments are removed newest first,
// so a crash midway leaves a contiguous prefix of the old log, which the
// caller recognizes as stale against its snapshot and resets again.
func (l *Log) Reset(next uint64) error {
	if next == 0 {
		return fmt.Errorf("%w: reset to index 0", ErrInvalidArgument)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.beginExclusive(); err != nil {
		return err
	}
	defer l.endExclusive()
	for len(l.segs) > 0 {
		if err := l.active().remove(l.fs); err != nil {
			return l.failLocked(err)
		}
		l.segs = l.segs[:len(l.segs)-1]
	}
	if err := SyncDirFS(l.fs, l.dir); err != nil {
		return l.failLocked(err)
	}
	s, err := createSegment(l.fs, l.dir, next)
	if err != nil {
		return l.failLocked(err)
	}
	l.segs = []*segment{s}
	l.next = next
	l.durable = next - 1
	return nil
}

// failLocked makes err sticky and returns it.
func (l *Log) failLocked(err error) error {
	if l.err == nil {
		l.err = err
	}
	return err
}

// Close waits for in-flight appends, then closes the segment files. Further
// calls return ErrClosed. Close is idempotent.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	for l.exclusive {
		l.cond.Wait()
	}
	for l.flushing || (len(l.pending) > 0 && l.err == nil) {
		if l.flushing {
			l.cond.Wait()
			continue
		}
		l.flushLocked()
	}
	l.closed = true
	l.cond.Broadcast()
	var first error
	for _, s := range l.segs {
		if err := s.f.Close(); err != nil && first == nil {
			first = fmt.Errorf("wal: close: %w", err)
		}
	}
	return first
}
