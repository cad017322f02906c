package idempotency

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/distkit/distkit/clock"
	"github.com/distkit/distkit/internal/vfs"
	"github.com/distkit/distkit/internal/wal"
)

// FileConfig configures a FileStore.
type FileConfig struct {
	// Clock decides which records have expired when the log is compacted
	// (default clock.System{}).
	Clock clock.Source
	// CompactMinFrames is the log length, in frames, below which the log is
	// never compacted (default 4096). Above it, the log is rewritten when it
	// has grown to twice the number of frames it had after the previous
	// compaction, so compaction costs O(1) amortized per write.
	CompactMinFrames int
	// Logger receives warnings (a truncated torn tail, a failed compaction).
	// Nil means silent.
	Logger *slog.Logger
	// FS is the file system the log lives on. Nil is the operating
	// system's (vfs.OS); tests pass a vfs.CrashFS to simulate power loss.
	FS vfs.FS

	// skipFsync, for this package's crash tests only, leaves out the fsync
	// system calls and nothing else. Those tests simulate a process crash,
	// which keeps the page cache, so an fsync cannot change what they
	// observe; on a loaded machine it only multiplies their run time.
	skipFsync bool
}

// DefaultFileConfig returns the defaults described on FileConfig.
func DefaultFileConfig() FileConfig {
	return FileConfig{Clock: clock.System{}, CompactMinFrames: 4096}
}

// Validate reports whether c is usable.
func (c FileConfig) Validate() error {
	switch {
	case c.Clock == nil:
		return fmt.Errorf("%w: FileConfig.Clock is nil", ErrInvalidConfig)
	case c.CompactMinFrames < 1:
		return fmt.Errorf("%w: FileConfig.CompactMinFrames = %d; want ≥ 1", ErrInvalidConfig, c.CompactMinFrames)
	}
	return nil
}

// FileStore is a durable Store: an append-only log of checksummed records in
// one file, with every record held in memory for reads.
//
// Durability. Begin, Complete and Abort return only after their record is
// written and fsynced, and a completed record becomes visible to readers
// only then, so a result that anyone has seen survives any crash. Writers
// that arrive while an fsync is running queue their records; the next
// fsync covers all of them (group commit), so throughput grows with the
// number of concurrent writers instead of being one record per fsync.
//
// Recovery. OpenFileStore replays the log. A crash can leave the last write
// batch torn (partial or garbled frames); the first frame that is
// incomplete or fails its CRC-32C ends the log, and the file is truncated
// there (logged at WARN). Nothing after such a frame was acknowledged,
// because a frame is acknowledged only after it and everything before it
// was synced. Damage followed by a valid frame of a later batch (media
// corruption rather than a crash: that frame proves the damaged one had
// been synced) is refused with ErrCorrupt naming the file and offset, as is
// a frame that passes its checksum but does not parse: truncating would
// silently drop acknowledged records.
//
// Space. The log is compacted (rewritten with one frame per live record,
// to a temporary file that is fsynced and renamed over the log) when it
// has doubled since the last compaction; expired records are dropped then.
// Memory holds every record not yet dropped, results included, so bound the
// live set with Config.Retention and Config.MaxResultBytes. A completed
// record too large for one log frame (wal.MaxFrameSize, 64 MiB) is stored
// with its result omitted (Record.Omitted), as a result that could not be
// encoded: a frame that large would read back as a torn tail and take the
// records after it with it.
//
// It is safe for concurrent use. It starts no goroutines: the writer that
// finds no fsync running performs it for everyone queued. Get, the replay
// path, takes no lock and is not delayed by fsyncs or compaction.
//
// After a write or fsync error the store fails permanently (ErrStoreFailed):
// after a failed fsync the kernel may have dropped the dirty pages, so
// nothing more can be promised. Close it and open the file again.
type FileStore struct {
	cfg  FileConfig
	fs   vfs.FS
	path string
	log  *slog.Logger
	lock io.Closer // the exclusive lock on path+".lock", released by Close

	mu sync.Mutex // guards every field below
	f  vfs.File   // the log, positioned at its end; written only by the flushing writer
	// index is the current record of every key. Begin's in-progress record
	// enters it at once (so Begin is atomic); Complete and Abort change it
	// after their frame is synced.
	index map[string]Record
	// pending holds encoded frames not yet written; ops are the matching
	// Complete/Abort changes to apply after the sync; cur is the batch the
	// queued writers wait on. spare is the previous pending buffer, reused.
	pending, spare []byte
	pendingFrames  int
	ops            []pendingOp
	cur            *batch
	// flushing is true while one writer (the leader) writes and syncs a
	// batch; idle is closed and replaced each time a flush ends, waking the
	// writers queued for the next batch so one of them can lead it.
	flushing bool
	idle     chan struct{}
	failed   error // set on the first write or sync error
	closed   bool

	// published mirrors index with immutable *Record snapshots, replaced
	// under mu, so Get (the replay path) reads without taking mu, even
	// while a flush or a compaction holds it. unusable is set with closed
	// or failed, so Get notices them without the lock.
	published sync.Map
	unusable  atomic.Bool

	frames        int // frames in the log file
	compactFrames int // frames right after the last compaction (or open)
	stats         FileStats
}

// FileStats are counters of a FileStore.
type FileStats struct {
	Records        int    // records held (live or not yet purged)
	LogBytes       int64  // size of the log file
	Frames         int    // frames in the log file
	Syncs          uint64 // fsyncs of the log: each covers a batch of frames
	FramesWritten  uint64 // frames appended since open
	Compactions    uint64 // log rewrites
	TruncatedBytes int64  // torn or corrupt tail removed when the log was opened
}

type batch struct {
	done chan struct{} // closed when the batch is synced (or failed)
	err  error         // written before done is closed
}

type pendingOp struct {
	kind byte // frameComplete or frameAbort
	rec  Record
	errp *error // where to report ErrNotOwner; read by the caller after the batch is done
}

// ErrLocked is returned by OpenFileStore when another FileStore, in this
// process or another, has the log open. The error names the holder's pid
// when it is known.
var ErrLocked = errors.New("idempotency: file store is in use")

// lockSuffix names the lock file next to the log: path + lockSuffix.
const lockSuffix = ".lock"

// OpenFileStore opens (creating it if needed) the log at path, replays it and
// truncates a torn tail. It holds an exclusive lock on path+".lock" until
// Close: a second opener, in this process or another, gets ErrLocked.
// Damage a crash cannot explain fails with ErrCorrupt (see FileStore).
func OpenFileStore(path string, cfg FileConfig) (*FileStore, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if path == "" {
		return nil, fmt.Errorf("%w: empty file store path", ErrInvalidConfig)
	}
	s := &FileStore{
		cfg:   cfg,
		fs:    vfs.Or(cfg.FS),
		path:  path,
		log:   cfg.Logger,
		index: make(map[string]Record),
		idle:  make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	lock, err := s.fs.Lock(path + lockSuffix)
	if err != nil {
		if errors.Is(err, vfs.ErrLocked) {
			return nil, fmt.Errorf("%w: %s: %w", ErrLocked, path, err)
		}
		return nil, fmt.Errorf("idempotency: open file store: lock: %w", err)
	}
	// A crash during compaction can leave the temporary file; the log itself
	// is intact (the rename is atomic), so the leftover is garbage.
	if err := wal.RemoveTempFilesOfFS(s.fs, path); err != nil && !errors.Is(err, os.ErrNotExist) {
		lock.Close()
		return nil, fmt.Errorf("idempotency: remove stale compaction file: %w", err)
	}
	f, err := s.fs.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("idempotency: open file store: %w", err)
	}
	if err := s.load(f); err != nil {
		f.Close()
		lock.Close()
		return nil, err
	}
	s.f = f
	s.lock = lock
	return s, nil
}

// load replays the log in f and leaves f positioned at the end of its valid
// part.
func (s *FileStore) load(f vfs.File) error {
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("idempotency: read %s: %w", s.path, err)
	}
	if len(data) < len(logMagic) {
		// Empty, or torn while the header was being written: nothing in it
		// was ever acknowledged.
		if len(data) > 0 && string(data) != logMagic[:len(data)] {
			return fmt.Errorf("%w: %s is not an idempotency log", ErrCorrupt, s.path)
		}
		s.stats.TruncatedBytes = int64(len(data))
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("idempotency: init %s: %w", s.path, err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("idempotency: init %s: %w", s.path, err)
		}
		if _, err := f.Write([]byte(logMagic)); err != nil {
			return fmt.Errorf("idempotency: init %s: %w", s.path, err)
		}
		if err := s.fsync(f); err != nil {
			return fmt.Errorf("idempotency: init %s: %w", s.path, err)
		}
		if err := s.syncDir(); err != nil {
			return err
		}
		s.stats.LogBytes = int64(len(logMagic))
		return nil
	}
	if string(data[:len(logMagic)]) != logMagic {
		return fmt.Errorf("%w: %s is not an idempotency log (bad magic)", ErrCorrupt, s.path)
	}
	off := len(logMagic)
	for off < len(data) {
		e, n, err := decodeFrame(data[off:])
		if err != nil {
			if errors.Is(err, errUnparsable) {
				// The checksum passed: not a torn write but a frame this
				// version cannot read.
				return fmt.Errorf("%s at offset %d: %w", s.path, off, err)
			}
			if at, ok := wal.FindBatchStartFrame(data[off+1:]); ok {
				return fmt.Errorf("%w: %s at offset %d: %w, and a valid frame written after it was made durable follows at offset %d",
					ErrCorrupt, s.path, off, err, off+1+at)
			}
			s.log.Warn("idempotency: truncating torn log tail",
				"path", s.path, "offset", off, "bytes", len(data)-off, "err", err)
			s.stats.TruncatedBytes = int64(len(data) - off)
			break
		}
		s.replay(e)
		s.frames++
		off += n
	}
	if off < len(data) {
		if err := f.Truncate(int64(off)); err != nil {
			return fmt.Errorf("idempotency: truncate torn tail of %s: %w", s.path, err)
		}
		if err := s.fsync(f); err != nil {
			return fmt.Errorf("idempotency: truncate torn tail of %s: %w", s.path, err)
		}
	}
	if _, err := f.Seek(int64(off), io.SeekStart); err != nil {
		return fmt.Errorf("idempotency: seek %s: %w", s.path, err)
	}
	for k, r := range s.index {
		s.published.Store(k, &r)
	}
	// Measure growth from the live set, so a log full of dead frames is
	// compacted soon after opening.
	s.compactFrames = len(s.index)
	s.stats.LogBytes = int64(off)
	return nil
}

// replay applies one logged frame to the index with the same rules the
// live store used when it wrote it.
func (s *FileStore) replay(e logEntry) {
	switch e.kind {
	case framePut:
		s.index[e.rec.Key] = e.rec
	case frameComplete:
		if cur, ok := s.index[e.rec.Key]; ok && cur.Status == StatusInProgress && cur.Token == e.rec.Token {
			s.index[e.rec.Key] = e.rec
		}
	case frameAbort:
		if cur, ok := s.index[e.rec.Key]; ok && cur.Status == StatusInProgress && cur.Token == e.rec.Token {
			delete(s.index, e.rec.Key)
		}
	}
}

// usableLocked returns the error every call gets on a closed or failed store.
func (s *FileStore) usableLocked() error {
	if s.index == nil {
		return notConstructed("FileStore")
	}
	if s.closed {
		return ErrClosed
	}
	return s.failed
}

// Begin implements Store. It returns once the new in-progress record is
// durable.
func (s *FileStore) Begin(ctx context.Context, proposal Record) (Record, bool, error) {
	if err := checkProposal(proposal); err != nil {
		return Record{}, false, err
	}
	if err := ctx.Err(); err != nil {
		return Record{}, false, err
	}
	s.mu.Lock()
	if err := s.usableLocked(); err != nil {
		s.mu.Unlock()
		return Record{}, false, err
	}
	if cur, ok := s.index[proposal.Key]; ok && cur.live(proposal.Created) {
		s.mu.Unlock()
		return cur, false, nil
	}
	s.setLocked(proposal)
	s.pending = appendRecordFrameCont(s.pending, framePut, &proposal, len(s.pending) > 0)
	if err := s.commitLocked(); err != nil {
		return Record{}, false, err
	}
	return proposal, true, nil
}

// Get implements Store.
func (s *FileStore) Get(ctx context.Context, key string) (Record, bool, error) {
	if s.index == nil || s.unusable.Load() {
		s.mu.Lock()
		defer s.mu.Unlock()
		return Record{}, false, s.usableLocked()
	}
	v, ok := s.published.Load(key)
	if !ok {
		return Record{}, false, nil
	}
	return *v.(*Record), true, nil
}

// setLocked makes rec the current record of its key. s.mu must be held.
func (s *FileStore) setLocked(rec Record) {
	s.index[rec.Key] = rec
	s.published.Store(rec.Key, &rec)
}

// deleteLocked forgets key. s.mu must be held.
func (s *FileStore) deleteLocked(key string) {
	delete(s.index, key)
	s.published.Delete(key)
}

// Complete implements Store. The completed record becomes visible once it is
// durable.
func (s *FileStore) Complete(ctx context.Context, rec Record) error {
	if err := checkCompletion(rec); err != nil {
		return err
	}
	s.mu.Lock()
	if err := s.usableLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	if cur, ok := s.index[rec.Key]; !ok || cur.Status != StatusInProgress || cur.Token != rec.Token {
		s.mu.Unlock()
		return fmt.Errorf("%w: complete %q", ErrNotOwner, rec.Key)
	}
	if recordFrameBound(&rec) > wal.MaxFrameSize {
		rec.Result, rec.Omitted = nil, true
	}
	var opErr error
	s.pending = appendRecordFrameCont(s.pending, frameComplete, &rec, len(s.pending) > 0)
	s.ops = append(s.ops, pendingOp{kind: frameComplete, rec: rec, errp: &opErr})
	if err := s.commitLocked(); err != nil {
		return err
	}
	return opErr
}

// Abort implements Store.
func (s *FileStore) Abort(ctx context.Context, key string, token uint64) error {
	s.mu.Lock()
	if err := s.usableLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	if cur, ok := s.index[key]; !ok || cur.Status != StatusInProgress || cur.Token != token {
		s.mu.Unlock()
		return fmt.Errorf("%w: abort %q", ErrNotOwner, key)
	}
	var opErr error
	s.pending = appendAbortFrameCont(s.pending, key, token, len(s.pending) > 0)
	s.ops = append(s.ops, pendingOp{kind: frameAbort, rec: Record{Key: key, Token: token}, errp: &opErr})
	if err := s.commitLocked(); err != nil {
		return err
	}
	return opErr
}

// commitLocked waits until the frame just appended to s.pending is synced,
// leading the flush itself when no other writer is. s.mu must be held; it is
// released on return.
func (s *FileStore) commitLocked() error {
	if s.cur == nil {
		s.cur = &batch{done: make(chan struct{})}
	}
	b := s.cur
	s.pendingFrames++
	for {
		select {
		case <-b.done:
			s.mu.Unlock()
			return b.err
		default:
		}
		if !s.flushing {
			// b is still s.cur: a batch leaves s.cur only when a leader
			// takes it, and then it is done before flushing turns false.
			if s.failed != nil {
				// A write or fsync failed while this batch queued: the
				// kernel may have dropped the failed batch's pages, so
				// nothing written after it may be acknowledged (the
				// fsyncgate lesson). Fail the batch unwritten.
				s.failBatchLocked(b)
				continue
			}
			s.flushLocked()
			continue
		}
		idle := s.idle
		s.mu.Unlock()
		select {
		case <-b.done:
			return b.err
		case <-idle:
		}
		s.mu.Lock()
	}
}

// failBatchLocked fails the queued batch b (s.cur) with the store's error
// without writing it. s.mu must be held.
func (s *FileStore) failBatchLocked(b *batch) {
	b.err = s.failed
	s.cur, s.pending, s.ops, s.pendingFrames = nil, s.pending[:0], nil, 0
	close(b.done)
}

// flushLocked writes and syncs the current batch, applies its changes and,
// when due, compacts the log. s.mu is held on entry and on return but
// released during the write and sync, so other writers can queue.
func (s *FileStore) flushLocked() {
	s.flushing = true
	b, data, ops := s.cur, s.pending, s.ops
	s.cur, s.pending, s.ops = nil, s.spare[:0], nil
	nframes := s.pendingFrames
	s.pendingFrames = 0
	s.mu.Unlock()

	_, err := s.f.Write(data)
	if err == nil {
		err = s.fsync(s.f)
	}

	s.mu.Lock()
	s.spare = data[:0]
	if err != nil {
		s.failed = fmt.Errorf("%w: %w", ErrStoreFailed, err)
		s.unusable.Store(true)
		s.log.Error("idempotency: file store write failed; store is now unusable", "path", s.path, "err", err)
		b.err = s.failed
	} else {
		s.stats.Syncs++
		s.stats.FramesWritten += uint64(nframes)
		s.stats.LogBytes += int64(len(data))
		s.frames += nframes
		for _, op := range ops {
			s.applyLocked(op)
		}
		if s.frames >= s.cfg.CompactMinFrames && s.frames >= 2*s.compactFrames {
			s.compactLocked()
		}
	}
	close(b.done)
	s.flushing = false
	close(s.idle)
	s.idle = make(chan struct{})
}

// applyLocked makes a synced Complete or Abort visible, with the rule
// replay uses: only the owner of the current in-progress record may change it.
func (s *FileStore) applyLocked(op pendingOp) {
	cur, ok := s.index[op.rec.Key]
	if !ok || cur.Status != StatusInProgress || cur.Token != op.rec.Token {
		*op.errp = fmt.Errorf("%w: %q was taken over while its change was being synced", ErrNotOwner, op.rec.Key)
		return
	}
	if op.kind == frameAbort {
		s.deleteLocked(op.rec.Key)
		return
	}
	s.setLocked(op.rec)
}

// compactLocked rewrites the log with one framePut per live record. Frames
// still pending are appended to the new log by the next flush. On an error
// before the rename the old log stays in use; after it the store fails.
func (s *FileStore) compactLocked() {
	now := s.cfg.Clock.Now()
	for k, r := range s.index {
		if !r.live(now) {
			// An expired in-progress record may still have an unsynced
			// Complete queued; dropping it here and there (applyLocked finds
			// no owner; replay finds no record) keeps the two views equal.
			s.deleteLocked(k)
		}
	}
	// wal.WriteFileAtomic: temporary file, fsync, rename over the log,
	// fsync of the directory.
	err := wal.WriteFileAtomicFS(s.fs, s.path, func(w io.Writer) error {
		buf := append(make([]byte, 0, 64<<10), logMagic...)
		for _, r := range s.index {
			// Each frame starts its own batch: the file is fsynced
			// whole, so damage anywhere in it is corruption.
			buf = appendRecordFrame(buf, framePut, &r)
			if len(buf) >= 64<<10 {
				if _, err := w.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
		}
		_, err := w.Write(buf)
		return err
	})
	if err != nil && !errors.Is(err, wal.ErrDirNotSynced) {
		s.log.Warn("idempotency: compaction failed; keeping the old log", "path", s.path, "err", err)
		// Do not retry on every flush: wait until the log doubles again.
		s.compactFrames = s.frames
		return
	}
	// The rename is done: from here on the old descriptor points at an
	// unlinked file, so any error leaves the store unusable.
	if err != nil {
		s.failed = fmt.Errorf("%w: %w", ErrStoreFailed, err)
		s.unusable.Store(true)
		return
	}
	nf, err := s.fs.OpenFile(s.path, os.O_RDWR, 0o644)
	if err == nil {
		var size int64
		size, err = nf.Seek(0, io.SeekEnd)
		s.stats.LogBytes = size
	}
	if err != nil {
		s.failed = fmt.Errorf("%w: reopen after compaction: %w", ErrStoreFailed, err)
		s.unusable.Store(true)
		return
	}
	s.f.Close()
	s.f = nf
	s.frames = len(s.index)
	s.compactFrames = s.frames
	s.stats.Compactions++
}

// Stats returns the store's counters.
func (s *FileStore) Stats() FileStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Records = len(s.index)
	st.Frames = s.frames
	return st
}

// Close waits for a running flush, then closes the file. Records already
// acknowledged are durable; later calls return ErrClosed.
func (s *FileStore) Close() error {
	if s == nil {
		return notConstructed("FileStore")
	}
	s.mu.Lock()
	for s.flushing {
		idle := s.idle
		s.mu.Unlock()
		<-idle
		s.mu.Lock()
	}
	defer s.mu.Unlock()
	if err := s.usableLocked(); errors.Is(err, ErrClosed) || s.index == nil {
		return err
	}
	s.closed = true
	s.unusable.Store(true)
	if s.cur != nil { // writers queued behind the last flush
		s.cur.err = ErrClosed
		close(s.cur.done)
		s.cur = nil
	}
	err := s.f.Close()
	if lerr := s.lock.Close(); err == nil {
		err = lerr
	}
	if err != nil {
		return fmt.Errorf("idempotency: close %s: %w", s.path, err)
	}
	return nil
}

// fsync makes f's written data durable.
func (s *FileStore) fsync(f vfs.File) error {
	if s.cfg.skipFsync {
		return nil
	}
	return f.Sync()
}

// syncDir fsyncs the directory holding the log, making a create or rename
// in it durable.
func (s *FileStore) syncDir() error {
	if s.cfg.skipFsync {
		return nil
	}
	if err := wal.SyncDirFS(s.fs, filepath.Dir(s.path)); err != nil {
		return fmt.Errorf("idempotency: directory of %s: %w", s.path, err)
	}
	return nil
}

var _ Store = (*FileStore)(nil)
