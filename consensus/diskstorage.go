package consensus

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/internal/vfs"
	"github.com/distkit/distkit/internal/wal"
)

// File names inside a DiskStorage directory.
const (
	walDirName    = "wal"
	hardStateFile = "hardstate"
	snapshotFile  = "snapshot"
	lockFileName  = "LOCK"
)

// DiskOptions configure a DiskStorage.
type DiskOptions struct {
	// SegmentSize is the WAL segment size in bytes (0: the wal default).
	SegmentSize int64
	// RetainEntries is how many entries before a new snapshot are kept in
	// the log, so that a follower slightly behind can catch up from the log
	// instead of receiving the whole snapshot.
	RetainEntries uint64
	// Logger receives recovery notices. nil is silent.
	Logger *slog.Logger
	// FS is the file system the storage lives on. Nil is the operating
	// system's (vfs.OS); tests pass a vfs.CrashFS to simulate power loss.
	FS vfs.FS
}

// DiskStorage is a durable raft.Storage: log entries in a write-ahead log
// (internal/wal, one fsync per Save), the hard state and the latest snapshot
// in files replaced atomically. Reads are served from memory: the log since
// the latest compaction is mirrored in a raft.MemoryStorage, which the
// snapshot threshold keeps bounded. The snapshot's data is not: Snapshot
// returns its metadata only (Data nil), and the data is read by streaming
// the file, verified first (the state machine's restore, a Node's snapshot
// stream to a follower; see the package documentation).
//
// Writes (Save, ApplySnapshot, CreateSnapshot) must come from one goroutine,
// the one driving the core; reads are safe from any goroutine.
//
// The commit index is persisted lazily (with the next term or vote change):
// it is volatile state in the Raft paper (Figure 2), a restarted node learns
// it again from the leader, and so Save needs no fsync when only the commit
// index moved. The commit index it does persist only ever covers entries
// already durable, so a log that ends before it is refused as corrupt.
//
// Faults. The directory is locked (a LOCK file, flock) while the storage
// is open: a second opener, in this process or another, gets ErrLocked
// naming the holder's pid. OpenDiskStorage tells a torn tail from
// corruption: the last write batch of the last WAL segment, damaged by a
// crash with nothing valid written after it, is cut off (logged at WARN);
// anything else fails with ErrCorrupt (see OpenDiskStorage). A node that
// refuses to start this way has lost data on its disk: move its data
// directory aside and start it empty with the same ID and peers, and it
// catches up from the leader by snapshot. TestDiskStoragePowerLoss runs
// it on vfs.CrashFS (package internal/vfs: unsynced data lost or torn at
// 512-byte sectors, directory entries durable only after a directory
// fsync, fsyncs that fail on demand) and checks that each acknowledged
// Save's term, vote and entries and each snapshot survive a power cut;
// FuzzOpenDamaged checks that a damaged directory opens with every entry
// intact or is refused.
type DiskStorage struct {
	fs     vfs.FS
	lock   io.Closer // the exclusive lock on dir, released by Close
	dir    string
	retain uint64
	logger *slog.Logger

	// mem is what is durable, for the core to read. Its snapshot is the
	// metadata only: the data stays in the snapshot file, read by
	// streaming (openSnapshotData, the snapshot stream).
	mem *raft.MemoryStorage
	log *wal.Log
	hs  raft.HardState // the hard state Save was last given
	// durableHS is the hard state in the hardstate file.
	durableHS raft.HardState
	records   [][]byte // reused by Save
	buf       []byte   // reused by Save

	// recvMu guards recv, the snapshot file a leader streamed to this
	// node (snapstream.go): written by the stream's receiver, claimed by
	// ApplySnapshot.
	recvMu sync.Mutex
	recv   receivedSnapshot
	// stream sends and receives snapshot files for the Node that owns
	// this storage (nil without one); Close stops it.
	stream *snapStreamer
}

// receivedSnapshot is a snapshot file received in full and verified,
// waiting under a temporary name for the core to install it.
type receivedSnapshot struct {
	index, term uint64
	path        string
}

var _ raft.Storage = (*DiskStorage)(nil)

// OpenDiskStorage opens (or creates) the storage in dir and rebuilds the
// state of the last run: the latest snapshot, the log after it and the hard
// state. A torn tail of the log (its last write batch, damaged by a crash,
// with nothing written after it) is cut off: those entries were never
// acknowledged. Any other damage fails with an error wrapping ErrCorrupt:
// a log record that went bad after it was made durable (the wal's
// *CorruptError names the file and offset), an unreadable hard state or
// snapshot file, or a hard state file missing from a directory that holds
// entries (ErrMissingHardState). A new directory gets its (empty) hard
// state file before anything else, so no crash during a first start can
// leave entries without one.
func OpenDiskStorage(dir string, opts DiskOptions) (*DiskStorage, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: empty storage directory", ErrInvalidConfig)
	}
	fsys := vfs.Or(opts.FS)
	lock, err := lockDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	s, err := openLocked(fsys, dir, opts)
	if err != nil {
		lock.Close()
		return nil, err
	}
	s.lock = lock
	return s, nil
}

// lockDir creates dir if needed and takes its exclusive lock (ErrLocked
// if another process, or another storage of this one, holds it).
func lockDir(fsys vfs.FS, dir string) (io.Closer, error) {
	if err := vfs.MkdirAllDurable(fsys, dir); err != nil {
		return nil, fmt.Errorf("consensus: open storage: %w", err)
	}
	lock, err := fsys.Lock(filepath.Join(dir, lockFileName))
	if err != nil {
		if errors.Is(err, vfs.ErrLocked) {
			return nil, fmt.Errorf("%w: %s: %w", ErrLocked, dir, err)
		}
		return nil, fmt.Errorf("consensus: open storage: lock: %w", err)
	}
	return lock, nil
}

// openLocked is OpenDiskStorage once the directory is locked.
func openLocked(fsys vfs.FS, dir string, opts DiskOptions) (*DiskStorage, error) {
	if err := wal.RemoveTempFilesFS(fsys, dir); err != nil {
		return nil, fmt.Errorf("consensus: open storage: %w", err)
	}
	s := &DiskStorage{fs: fsys, dir: dir, retain: opts.RetainEntries, logger: opts.Logger, mem: raft.NewMemoryStorage()}

	// The snapshot file is verified by streaming it; only its metadata
	// stays in memory.
	var snap raft.Snapshot
	if f, info, err := openSnapshotFile(fsys, filepath.Join(dir, snapshotFile)); err == nil {
		f.Close()
		snap.Meta = info.meta
	} else if errors.Is(err, ErrCorrupt) {
		return nil, fmt.Errorf("consensus: open storage %s: %w", dir, err)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("consensus: open storage: %w", err)
	}
	haveHS := false
	if b, err := vfs.ReadFile(fsys, filepath.Join(dir, hardStateFile)); err == nil {
		if s.durableHS, err = decodeHardState(b); err != nil {
			return nil, fmt.Errorf("consensus: open storage %s: %w", dir, err)
		}
		haveHS = true
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("consensus: open storage: %w", err)
	}

	log, err := wal.Open(filepath.Join(dir, walDirName), wal.Options{SegmentSize: opts.SegmentSize, Logger: opts.Logger, FS: fsys})
	if err != nil {
		if errors.Is(err, wal.ErrCorrupt) {
			return nil, fmt.Errorf("consensus: open storage %s: %w: %w", dir, ErrCorrupt, err)
		}
		return nil, fmt.Errorf("consensus: open storage: %w", err)
	}
	s.log = log
	if !haveHS {
		// The hard state file is written before anything else of a new
		// data directory (below), so entries without it mean it was lost.
		if log.LastIndex() >= log.FirstIndex() || !snap.IsZero() {
			log.Close()
			return nil, fmt.Errorf("consensus: open storage %s: %w (log [%d, %d], snapshot at %d)",
				dir, ErrMissingHardState, log.FirstIndex(), log.LastIndex(), snap.Meta.Index)
		}
		// A new data directory (or one whose first start crashed before
		// writing anything that matters): make the empty hard state
		// durable before any entry can be appended.
		if err := s.writeHardState(raft.HardState{}); err != nil {
			log.Close()
			return nil, fmt.Errorf("consensus: open storage: %w", err)
		}
	}
	if err := s.load(snap); err != nil {
		log.Close()
		if errors.Is(err, wal.ErrCorrupt) && !errors.Is(err, ErrCorrupt) {
			err = fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return nil, fmt.Errorf("consensus: open storage %s: %w", dir, err)
	}
	return s, nil
}

// load reconciles the WAL with the snapshot and fills mem.
func (s *DiskStorage) load(snap raft.Snapshot) error {
	si := snap.Meta.Index
	first, last := s.log.FirstIndex(), s.log.LastIndex()
	if first > si+1 {
		return fmt.Errorf("%w: log starts at %d but the snapshot ends at %d", errFormat, first, si)
	}
	if si > 0 {
		// The log must continue the snapshot. If it stops short of it, or
		// disagrees with it at si, it is a stale log from before the
		// snapshot was installed (a crash between writing the snapshot file
		// and resetting the log): start the log afresh after the snapshot.
		stale := last < si
		if !stale && first <= si {
			rec, err := s.log.Read(si)
			if err != nil {
				return err
			}
			e, err := decodeEntryRecord(si, rec)
			if err != nil {
				return err
			}
			stale = e.Term != snap.Meta.Term
		}
		if stale {
			if s.logger != nil {
				s.logger.Info("consensus: log does not continue the snapshot; resetting it", "snapshot", si, "logFirst", first, "logLast", last)
			}
			if err := s.log.Reset(si + 1); err != nil {
				return err
			}
		}
		if err := s.mem.ApplySnapshot(snap); err != nil {
			return err
		}
	}
	var batch []raft.Entry
	err := s.log.Replay(si+1, func(index uint64, rec []byte) error {
		e, err := decodeEntryRecord(index, rec)
		if err != nil {
			return err
		}
		batch = append(batch, e)
		if len(batch) == 1024 {
			err = s.mem.Append(batch)
			batch = nil
		}
		return err
	})
	if err != nil {
		return err
	}
	if err := s.mem.Append(batch); err != nil {
		return err
	}
	// The saved commit index may be older than the snapshot (it is written
	// lazily). It only ever covers entries that were durable when it was
	// written, so a log that ends before it has lost committed entries: a
	// torn tail cannot explain that, the disk lost acknowledged data.
	hs := s.durableHS
	lastIndex, _ := s.mem.LastIndex()
	if hs.Commit > max(lastIndex, si) {
		return fmt.Errorf("%w: the hard state's commit index %d is past the log's last entry %d: committed entries are missing", ErrCorrupt, hs.Commit, lastIndex)
	}
	hs.Commit = min(max(hs.Commit, si), lastIndex)
	s.hs = hs
	return s.mem.SetHardState(hs)
}

// errNotOpened is what every method of a DiskStorage not opened by
// OpenDiskStorage (the zero value or a nil pointer) reports.
var errNotOpened = fmt.Errorf("%w: DiskStorage not opened by OpenDiskStorage", ErrInvalidConfig)

// opened reports whether s was built by OpenDiskStorage.
func (s *DiskStorage) opened() bool { return s != nil && s.log != nil }

// InitialState implements raft.Storage.
func (s *DiskStorage) InitialState() (raft.HardState, raft.Membership, error) {
	if !s.opened() {
		return raft.HardState{}, raft.Membership{}, errNotOpened
	}
	return s.mem.InitialState()
}

// Entries implements raft.Storage.
func (s *DiskStorage) Entries(lo, hi, maxBytes uint64) ([]raft.Entry, error) {
	if !s.opened() {
		return nil, errNotOpened
	}
	return s.mem.Entries(lo, hi, maxBytes)
}

// Term implements raft.Storage.
func (s *DiskStorage) Term(i uint64) (uint64, error) {
	if !s.opened() {
		return 0, errNotOpened
	}
	return s.mem.Term(i)
}

// FirstIndex implements raft.Storage.
func (s *DiskStorage) FirstIndex() (uint64, error) {
	if !s.opened() {
		return 0, errNotOpened
	}
	return s.mem.FirstIndex()
}

// LastIndex implements raft.Storage.
func (s *DiskStorage) LastIndex() (uint64, error) {
	if !s.opened() {
		return 0, errNotOpened
	}
	return s.mem.LastIndex()
}

// Snapshot implements raft.Storage.
func (s *DiskStorage) Snapshot() (raft.Snapshot, error) {
	if !s.opened() {
		return raft.Snapshot{}, errNotOpened
	}
	return s.mem.Snapshot()
}

// Save makes one Ready's hard state and entries durable: the hard state file
// is rewritten when the term or vote changed (a vote must be durable before
// it is sent, §5.2), a conflicting suffix of the log is truncated (durably)
// and the entries are appended with one fsync. Call it before sending the
// Ready's messages.
func (s *DiskStorage) Save(hs raft.HardState, ents []raft.Entry) error {
	if !s.opened() {
		return errNotOpened
	}
	// A new term or vote goes to disk before the entries, so that a crash
	// in between never leaves entries of a term newer than the saved one.
	if !hs.IsZero() && (hs.Term != s.durableHS.Term || hs.Vote != s.durableHS.Vote) {
		durable := hs
		if len(ents) > 0 {
			// The commit index written now may only cover entries already
			// durable: those below ents[0]. If the crash comes before the
			// append, the log still holds whatever ents would have
			// overwritten (a deposed leader's suffix), and a commit index
			// covering it would make the restarted node apply it.
			durable.Commit = min(durable.Commit, ents[0].Index-1)
		}
		if err := s.writeHardState(durable); err != nil {
			return err
		}
	}
	if len(ents) > 0 {
		if err := s.appendEntries(ents); err != nil {
			return err
		}
	}
	if hs.IsZero() || hs == s.hs {
		return nil
	}
	s.hs = hs
	return s.mem.SetHardState(hs)
}

func (s *DiskStorage) appendEntries(ents []raft.Entry) error {
	snap, _ := s.mem.Snapshot()
	if last := ents[len(ents)-1].Index; last <= snap.Meta.Index {
		return nil // all covered by the snapshot
	}
	if ents[0].Index <= snap.Meta.Index {
		ents = ents[snap.Meta.Index+1-ents[0].Index:]
	}
	last := s.log.LastIndex()
	switch {
	case ents[0].Index > last+1:
		return fmt.Errorf("consensus: save: entry %d leaves a gap after %d", ents[0].Index, last)
	case ents[0].Index <= last:
		// §5.3: a conflicting entry and all that follow it are deleted.
		if err := s.log.TruncateBack(ents[0].Index - 1); err != nil {
			return err
		}
	}
	s.buf = s.buf[:0]
	s.records = s.records[:0]
	for i := range ents {
		start := len(s.buf)
		s.buf = appendEntryRecord(s.buf, &ents[i])
		s.records = append(s.records, s.buf[start:len(s.buf):len(s.buf)])
	}
	// Appending may grow s.buf into a new array; the slices already taken
	// keep pointing at the old one, whose contents are unchanged. So all
	// records stay valid.
	if _, err := s.log.Append(s.records...); err != nil {
		return err
	}
	clear(s.records)
	return s.mem.Append(ents)
}

func (s *DiskStorage) writeHardState(hs raft.HardState) error {
	b := encodeHardState(hs)
	err := wal.WriteFileAtomicFS(s.fs, filepath.Join(s.dir, hardStateFile), func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
	if err != nil {
		return err
	}
	s.durableHS = hs
	return nil
}

// ApplySnapshot installs a snapshot received from the leader
// (Ready.Snapshot): the snapshot file first, then the log restarts after it.
// A crash in between is repaired by OpenDiskStorage. A snapshot without
// data whose file the Node's snapshot stream received (complete, verified,
// fsynced) is installed by renaming that file into place and fsyncing the
// directory; one carrying its data has the file written from it.
func (s *DiskStorage) ApplySnapshot(snap raft.Snapshot) error {
	if !s.opened() {
		return errNotOpened
	}
	cur, _ := s.mem.Snapshot()
	if snap.Meta.Index <= cur.Meta.Index {
		return raft.ErrSnapshotOutOfDate
	}
	recv := s.claimReceived(snap.Meta)
	if recv != "" && len(snap.Data) > 0 {
		s.fs.Remove(recv) // the snapshot came with its data after all
		recv = ""
	}
	if recv != "" {
		// Streamed: the file is complete, verified and fsynced; the
		// rename is made durable before the log forgets what it covers.
		if err := s.fs.Rename(recv, filepath.Join(s.dir, snapshotFile)); err != nil {
			return fmt.Errorf("consensus: install snapshot: %w", err)
		}
		if err := wal.SyncDirFS(s.fs, s.dir); err != nil {
			return fmt.Errorf("consensus: install snapshot: %w", err)
		}
	} else if err := s.writeSnapshot(snap); err != nil {
		return err
	}
	if err := s.log.Reset(snap.Meta.Index + 1); err != nil {
		return err
	}
	return s.mem.ApplySnapshot(raft.Snapshot{Meta: snap.Meta})
}

// claimReceived returns the path of the received snapshot file for meta
// (and forgets it), or "" if there is none. A received file for another
// snapshot is removed.
func (s *DiskStorage) claimReceived(meta raft.SnapshotMeta) string {
	s.recvMu.Lock()
	defer s.recvMu.Unlock()
	recv := s.recv
	s.recv = receivedSnapshot{}
	if recv.path == "" {
		return ""
	}
	if recv.index != meta.Index || recv.term != meta.Term {
		s.fs.Remove(recv.path)
		return ""
	}
	return recv.path
}

// setReceived records a received snapshot file, replacing (and removing)
// any earlier one.
func (s *DiskStorage) setReceived(r receivedSnapshot) {
	s.recvMu.Lock()
	defer s.recvMu.Unlock()
	if s.recv.path != "" && s.recv.path != r.path {
		s.fs.Remove(s.recv.path)
	}
	s.recv = r
}

// openSnapshotData opens the data of the current snapshot, which must be
// meta's, for the state machine to restore from. The file's checksum is
// verified before the reader is returned (and its data again as it is
// read): a damaged file is refused with ErrCorrupt before the state
// machine sees a byte of it.
func (s *DiskStorage) openSnapshotData(meta raft.SnapshotMeta) (io.ReadCloser, error) {
	if !s.opened() {
		return nil, errNotOpened
	}
	f, info, err := openSnapshotFile(s.fs, filepath.Join(s.dir, snapshotFile))
	if err != nil {
		return nil, fmt.Errorf("consensus: read snapshot: %w", err)
	}
	if info.meta.Index != meta.Index || info.meta.Term != meta.Term {
		f.Close()
		return nil, fmt.Errorf("consensus: read snapshot: %w: the file holds snapshot %d/%d, want %d/%d",
			ErrCorrupt, info.meta.Index, info.meta.Term, meta.Index, meta.Term)
	}
	return &snapshotDataReader{f: f, r: io.LimitReader(f, info.dataLen), want: info.dataCRC}, nil
}

// CreateSnapshot records the state machine's snapshot data as of applied
// index i with membership m, writes it durably, and compacts the log up to
// RetainEntries before i.
func (s *DiskStorage) CreateSnapshot(i uint64, m raft.Membership, data []byte) (raft.Snapshot, error) {
	if !s.opened() {
		return raft.Snapshot{}, errNotOpened
	}
	snap, err := s.mem.CreateSnapshot(i, m, nil)
	if err != nil {
		return raft.Snapshot{}, err
	}
	snap.Data = data
	if err := s.writeSnapshot(snap); err != nil {
		return raft.Snapshot{}, err
	}
	snap.Data = nil // kept in the file only
	if i > s.retain {
		compact := i - s.retain
		if first, _ := s.mem.FirstIndex(); compact >= first {
			if err := s.mem.Compact(compact); err != nil {
				return raft.Snapshot{}, err
			}
			if err := s.log.DeleteBefore(compact + 1); err != nil {
				return raft.Snapshot{}, err
			}
		}
	}
	return snap, nil
}

func (s *DiskStorage) writeSnapshot(snap raft.Snapshot) error {
	b := encodeSnapshot(snap)
	return wal.WriteFileAtomicFS(s.fs, filepath.Join(s.dir, snapshotFile), func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// Close closes the log and releases the directory's lock. The storage must
// not be used afterwards.
func (s *DiskStorage) Close() error {
	if !s.opened() {
		return errNotOpened
	}
	if s.stream != nil {
		s.stream.close()
	}
	err := s.log.Close()
	if s.lock != nil {
		if lerr := s.lock.Close(); err == nil && lerr != nil {
			err = fmt.Errorf("consensus: unlock storage: %w", lerr)
		}
		s.lock = nil
	}
	return err
}

// stagedSnapshotName is where StageSnapshot writes; its name matches the
// temporary files OpenDiskStorage removes, so a staged file never
// committed is cleaned up at the next open.
const stagedSnapshotName = "." + snapshotFile + ".staged.tmp"

// StageSnapshot writes the snapshot of index i with membership m, its data
// produced by write, to a temporary file and fsyncs it. The data goes
// straight to the file (writeSnapshotFile): however large, it is never
// held in memory. It may run on
// another goroutine, concurrently with Save. The returned commit (to be
// called from the goroutine that calls Save) renames it into place, syncs
// the directory, and records the snapshot and compacts the log as
// CreateSnapshot does; it returns raft.ErrSnapshotOutOfDate, and drops the
// staged file, if a newer snapshot was installed meanwhile.
func (s *DiskStorage) StageSnapshot(i uint64, m raft.Membership, write func(io.Writer) error) (func() error, error) {
	if !s.opened() {
		return nil, errNotOpened
	}
	term, err := s.mem.Term(i)
	if err != nil {
		return nil, err
	}
	meta := raft.SnapshotMeta{Index: i, Term: term, Membership: m.Clone()}
	tmp := filepath.Join(s.dir, stagedSnapshotName)
	f, err := s.fs.OpenFile(tmp, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("consensus: stage snapshot: %w", err)
	}
	err = writeSnapshotFile(f, meta, write)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		s.fs.Remove(tmp)
		return nil, fmt.Errorf("consensus: stage snapshot: %w", err)
	}
	return func() error {
		if cur, _ := s.mem.Snapshot(); i <= cur.Meta.Index {
			s.fs.Remove(tmp)
			return raft.ErrSnapshotOutOfDate
		}
		if err := s.fs.Rename(tmp, filepath.Join(s.dir, snapshotFile)); err != nil {
			return fmt.Errorf("consensus: commit snapshot: %w", err)
		}
		if err := wal.SyncDirFS(s.fs, s.dir); err != nil {
			return fmt.Errorf("consensus: commit snapshot: %w", err)
		}
		if _, err := s.mem.CreateSnapshot(i, m, nil); err != nil {
			return err
		}
		if i > s.retain {
			compact := i - s.retain
			if first, _ := s.mem.FirstIndex(); compact >= first {
				if err := s.mem.Compact(compact); err != nil {
					return err
				}
				if err := s.log.DeleteBefore(compact + 1); err != nil {
					return err
				}
			}
		}
		return nil
	}, nil
}
