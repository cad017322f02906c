package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// SectorSize is the unit in which CrashFS tears unsynced data at a crash
// and torn writes: a disk persists whole sectors, in any order.
const SectorSize = 512

// ErrInjected is returned by a CrashFS operation failed on purpose
// (InjectSyncError, InjectWriteError).
var ErrInjected = errors.New("vfs: injected fault")

// ErrCrashed is returned by every operation on a CrashFS, and on the files
// opened from it, after its Crash: the machine is off.
var ErrCrashed = errors.New("vfs: file system crashed")

// CrashFS is an in-memory FS for tests that models what a power cut keeps
// (after Pebble's StrictMem and errorfs):
//
//   - File data is durable only once the file is synced. At Crash, each
//     file's unsynced changes are lost, kept, or torn: a seeded choice of
//     new size (between the synced and the current one, on a sector
//     boundary) and, sector by sector, the old or the new contents.
//   - Directory entries (a file created, renamed or removed, a directory
//     made) are durable only once their parent directory is synced
//     (SyncDir). At Crash, each directory holds the entries it had at its
//     last sync, however its files were synced.
//   - Faults on demand: a failing Sync or SyncDir (InjectSyncError), a
//     torn write (InjectWriteError: a sector-aligned prefix is written and
//     an error returned), reads that return a flipped bit
//     (FlipBitsOnRead, FlipBitOnReadAt), and bits flipped on the medium
//     (Corrupt).
//
// Everything random is drawn from one generator seeded by NewCrashFS's
// seed, under one lock, so a test that performs the same operations in
// the same order gets the same crash; print Seed when a test fails.
//
// A CrashFS is safe for concurrent use. Locks (FS.Lock) are held in
// memory and vanish at Crash with everything else that was not on disk.
type CrashFS struct {
	// mu guards everything below and the state of every file.
	mu   sync.Mutex
	seed uint64
	rng  *rand.Rand
	root *inode
	dead bool

	locks     map[string]bool
	syncFail  int              // fail the syncFail-th Sync/SyncDir from now (0: none)
	writeFail int              // tear the writeFail-th write from now (0: none)
	readFlips map[string]int   // path -> reads left that flip a bit
	flipAt    map[string]int64 // path -> offset whose next read is flipped
	syncs     int              // Sync and SyncDir calls that succeeded
	failed    []string         // names of the syncs InjectSyncError failed
	syncHook  func(name string)
}

// inode is a file or a directory.
type inode struct {
	dir bool
	// A directory's entries now, and as of its last sync.
	entries, durable map[string]*inode
	// A file's contents as read now, and as of its last sync. dirty is
	// the lowest offset changed since the last sync, or -1.
	data, synced []byte
	dirty        int64
	modTime      time.Time
}

func newDir() *inode {
	return &inode{dir: true, entries: map[string]*inode{}, durable: map[string]*inode{}}
}

// NewCrashFS returns an empty CrashFS (only the root directory "/", and
// durable) whose random choices come from seed.
func NewCrashFS(seed uint64) *CrashFS {
	return &CrashFS{
		seed:      seed,
		rng:       rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		root:      newDir(),
		locks:     map[string]bool{},
		readFlips: map[string]int{},
		flipAt:    map[string]int64{},
	}
}

// Seed returns the seed the CrashFS was made with.
func (c *CrashFS) Seed() uint64 { return c.seed }

// Syncs returns the number of Sync and SyncDir calls that succeeded.
func (c *CrashFS) Syncs() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.syncs
}

// FailedSyncs returns the names of the files and directories whose Sync
// or SyncDir failed by InjectSyncError, oldest first. Unlike a count kept
// by a sync hook, it names exactly the calls that failed, whatever runs
// concurrently with InjectSyncError.
func (c *CrashFS) FailedSyncs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.failed)
}

// Crash cuts the power: it returns a new CrashFS holding what was durable,
// with unsynced file data lost or torn (see CrashFS), and leaves c dead:
// every later operation on c or on files opened from it fails with
// ErrCrashed, so goroutines of the "old process" cannot touch the new
// disk. The new CrashFS's seed is drawn from c's generator, so a run is
// reproducible from the first seed.
func (c *CrashFS) Crash() *CrashFS {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := NewCrashFS(c.rng.Uint64())
	if !c.dead {
		n.root = c.crashCopy(c.root, map[*inode]*inode{})
	}
	c.dead = true
	return n
}

// crashCopy returns what survives of ino. mu must be held.
func (c *CrashFS) crashCopy(ino *inode, seen map[*inode]*inode) *inode {
	if n, ok := seen[ino]; ok {
		return n // one inode under two durable names (a hard link, in effect)
	}
	if ino.dir {
		n := newDir()
		seen[ino] = n
		names := make([]string, 0, len(ino.durable))
		for name := range ino.durable {
			names = append(names, name)
		}
		sort.Strings(names) // draw from rng in a fixed order
		for _, name := range names {
			child := c.crashCopy(ino.durable[name], seen)
			n.entries[name], n.durable[name] = child, child
		}
		return n
	}
	data := c.tear(ino)
	n := &inode{data: data, synced: append([]byte(nil), data...), dirty: -1, modTime: ino.modTime}
	seen[ino] = n
	return n
}

// tear returns the contents of a file after a crash. mu must be held.
func (c *CrashFS) tear(ino *inode) []byte {
	if ino.dirty < 0 {
		return append([]byte(nil), ino.synced...)
	}
	switch c.rng.IntN(4) {
	case 0: // nothing unsynced reached the disk
		return append([]byte(nil), ino.synced...)
	case 1: // everything did
		return append([]byte(nil), ino.data...)
	}
	// Torn: a size between the old and the new one, on a sector boundary
	// (or one of them), and each sector from the first changed one either
	// old or new.
	lo, hi := int64(len(ino.synced)), int64(len(ino.data))
	if lo > hi {
		lo, hi = hi, lo
	}
	size := lo
	if hi > lo {
		cands := []int64{lo, hi}
		for b := (lo/SectorSize + 1) * SectorSize; b < hi; b += SectorSize {
			cands = append(cands, b)
		}
		size = cands[c.rng.IntN(len(cands))]
	}
	out := make([]byte, size)
	copy(out, ino.synced)
	from := min(ino.dirty, int64(len(ino.synced))) / SectorSize * SectorSize
	for s := from; s < size; s += SectorSize {
		e := min(s+SectorSize, size)
		if c.rng.IntN(2) == 0 {
			continue // the old sector (zeros past the old end)
		}
		for i := s; i < e; i++ {
			if i < int64(len(ino.data)) {
				out[i] = ino.data[i]
			} else {
				out[i] = 0
			}
		}
	}
	return out
}

// SetSyncHook makes every later Sync and SyncDir call h (with the file or
// directory name) before it does anything, without holding the CrashFS's
// lock: a test can hold an fsync back to let concurrent writers queue
// behind it (group commit) at a point it chooses. nil removes the hook.
func (c *CrashFS) SetSyncHook(h func(name string)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.syncHook = h
}

// runSyncHook calls the sync hook, if any, without the lock held.
func (c *CrashFS) runSyncHook(name string) {
	c.mu.Lock()
	h := c.syncHook
	c.mu.Unlock()
	if h != nil {
		h(name)
	}
}

// InjectSyncError makes the n-th Sync or SyncDir from now (1: the next)
// fail with ErrInjected, changing nothing on disk. n <= 0 cancels it.
func (c *CrashFS) InjectSyncError(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.syncFail = max(n, 0)
}

// InjectWriteError makes the n-th write from now (1: the next) torn: only
// a prefix of it ending on a sector boundary of the file (possibly empty)
// is written, and it returns ErrInjected. n <= 0 cancels it.
func (c *CrashFS) InjectWriteError(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writeFail = max(n, 0)
}

// FlipBitsOnRead makes the next n reads of the file name that return data
// flip one bit (at a seeded position) of what they return. The file is not
// changed.
func (c *CrashFS) FlipBitsOnRead(name string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readFlips[clean(name)] = n
}

// FlipBitOnReadAt makes the next read of the file name that returns the
// byte at offset off return it with its lowest bit flipped. The file is
// not changed.
func (c *CrashFS) FlipBitOnReadAt(name string, off int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flipAt[clean(name)] = off
}

// Corrupt XORs mask into the byte at offset off of the file name, both as
// read now and as durable: media corruption.
func (c *CrashFS) Corrupt(name string, off int64, mask byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ino, err := c.lookup(name)
	if err != nil {
		return err
	}
	if ino.dir || off < 0 || off >= int64(len(ino.data)) {
		return &fs.PathError{Op: "corrupt", Path: name, Err: syscall.EINVAL}
	}
	ino.data[off] ^= mask
	if off < int64(len(ino.synced)) {
		ino.synced[off] ^= mask
	}
	return nil
}

// clean turns name into a slash-separated absolute path.
func clean(name string) string {
	p := path.Clean("/" + filepath.ToSlash(name))
	return p
}

// split returns the parent directory and the base name of a clean path.
func split(p string) (string, string) { return path.Dir(p), path.Base(p) }

// lookup returns the inode at name. mu must be held.
func (c *CrashFS) lookup(name string) (*inode, error) {
	if c.dead {
		return nil, ErrCrashed
	}
	p := clean(name)
	ino := c.root
	if p == "/" {
		return ino, nil
	}
	for _, part := range strings.Split(p[1:], "/") {
		if !ino.dir {
			return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.ENOTDIR}
		}
		next, ok := ino.entries[part]
		if !ok {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		ino = next
	}
	return ino, nil
}

// parent returns the directory that holds name and name's base. mu must be
// held.
func (c *CrashFS) parent(op, name string) (*inode, string, error) {
	dir, base := split(clean(name))
	d, err := c.lookup(dir)
	if err != nil {
		return nil, "", err
	}
	if !d.dir {
		return nil, "", &fs.PathError{Op: op, Path: name, Err: syscall.ENOTDIR}
	}
	return d, base, nil
}

// OpenFile implements FS.
func (c *CrashFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return nil, ErrCrashed
	}
	d, base, err := c.parent("open", name)
	if err != nil {
		return nil, err
	}
	ino, ok := d.entries[base]
	switch {
	case ok && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrExist}
	case !ok && flag&os.O_CREATE == 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	case ok && ino.dir:
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EISDIR}
	case !ok:
		ino = &inode{dirty: -1, modTime: time.Unix(0, 0)}
		d.entries[base] = ino
	}
	writable := flag&(os.O_WRONLY|os.O_RDWR) != 0
	if flag&os.O_TRUNC != 0 && writable && len(ino.data) > 0 {
		ino.markDirty(0)
		ino.data = ino.data[:0]
	}
	return &crashFile{c: c, ino: ino, name: clean(name), writable: writable, readable: flag&os.O_WRONLY == 0, append: flag&os.O_APPEND != 0}, nil
}

func (ino *inode) markDirty(off int64) {
	if ino.dirty < 0 || off < ino.dirty {
		ino.dirty = off
	}
}

// Remove implements FS.
func (c *CrashFS) Remove(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return ErrCrashed
	}
	d, base, err := c.parent("remove", name)
	if err != nil {
		return err
	}
	ino, ok := d.entries[base]
	if !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	if ino.dir && len(ino.entries) > 0 {
		return &fs.PathError{Op: "remove", Path: name, Err: syscall.ENOTEMPTY}
	}
	delete(d.entries, base)
	return nil
}

// Rename implements FS.
func (c *CrashFS) Rename(oldname, newname string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return ErrCrashed
	}
	od, obase, err := c.parent("rename", oldname)
	if err != nil {
		return err
	}
	nd, nbase, err := c.parent("rename", newname)
	if err != nil {
		return err
	}
	ino, ok := od.entries[obase]
	if !ok {
		return &fs.PathError{Op: "rename", Path: oldname, Err: fs.ErrNotExist}
	}
	if cur, ok := nd.entries[nbase]; ok && cur.dir != ino.dir {
		return &fs.PathError{Op: "rename", Path: newname, Err: syscall.EEXIST}
	}
	delete(od.entries, obase)
	nd.entries[nbase] = ino
	return nil
}

// ReadDir implements FS.
func (c *CrashFS) ReadDir(name string) ([]fs.DirEntry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, err := c.lookup(name)
	if err != nil {
		return nil, err
	}
	if !d.dir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: syscall.ENOTDIR}
	}
	out := make([]fs.DirEntry, 0, len(d.entries))
	for n, ino := range d.entries {
		out = append(out, dirEntry{name: n, dir: ino.dir, size: int64(len(ino.data)), mod: ino.modTime})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

// MkdirAll implements FS.
func (c *CrashFS) MkdirAll(name string, perm fs.FileMode) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return ErrCrashed
	}
	p := clean(name)
	ino := c.root
	if p == "/" {
		return nil
	}
	for _, part := range strings.Split(p[1:], "/") {
		next, ok := ino.entries[part]
		if !ok {
			next = newDir()
			ino.entries[part] = next
		} else if !next.dir {
			return &fs.PathError{Op: "mkdir", Path: name, Err: syscall.ENOTDIR}
		}
		ino = next
	}
	return nil
}

// SyncDir implements FS.
func (c *CrashFS) SyncDir(name string) error {
	c.runSyncHook(name)
	c.mu.Lock()
	defer c.mu.Unlock()
	d, err := c.lookup(name)
	if err != nil {
		return err
	}
	if !d.dir {
		return &fs.PathError{Op: "syncdir", Path: name, Err: syscall.ENOTDIR}
	}
	if err := c.syncFaultLocked(name); err != nil {
		return err
	}
	clear(d.durable)
	for n, ino := range d.entries {
		d.durable[n] = ino
	}
	c.syncs++
	return nil
}

// syncFaultLocked counts a sync and fails it if it is the one injected.
func (c *CrashFS) syncFaultLocked(name string) error {
	if c.syncFail == 0 {
		return nil
	}
	c.syncFail--
	if c.syncFail == 0 {
		c.failed = append(c.failed, name)
		return &fs.PathError{Op: "sync", Path: name, Err: ErrInjected}
	}
	return nil
}

// Lock implements FS. The lock lives in memory: it is released by the
// Closer or by Crash.
func (c *CrashFS) Lock(name string) (io.Closer, error) {
	f, err := c.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	p := clean(name)
	c.mu.Lock()
	held := c.locks[p]
	c.locks[p] = true
	c.mu.Unlock()
	if held {
		f.Close()
		return nil, &LockedError{Path: name, PID: os.Getpid()}
	}
	return &crashLock{c: c, path: p, f: f}, nil
}

type crashLock struct {
	c    *CrashFS
	path string
	f    File
	once sync.Once
}

func (l *crashLock) Close() error {
	l.once.Do(func() {
		l.c.mu.Lock()
		delete(l.c.locks, l.path)
		l.c.mu.Unlock()
		l.f.Close()
	})
	return nil
}

// crashFile is an open file of a CrashFS.
type crashFile struct {
	c                          *CrashFS
	ino                        *inode
	name                       string
	pos                        int64
	readable, writable, append bool
	closed                     bool
}

func (f *crashFile) check(op string) error {
	if f.c.dead {
		return ErrCrashed
	}
	if f.closed {
		return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrClosed}
	}
	return nil
}

func (f *crashFile) Read(p []byte) (int, error) {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	n, err := f.readAtLocked(p, f.pos)
	f.pos += int64(n)
	return n, err
}

func (f *crashFile) ReadAt(p []byte, off int64) (int, error) {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	return f.readAtLocked(p, off)
}

func (f *crashFile) readAtLocked(p []byte, off int64) (int, error) {
	if err := f.check("read"); err != nil {
		return 0, err
	}
	if !f.readable {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: syscall.EBADF}
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: syscall.EINVAL}
	}
	if off >= int64(len(f.ino.data)) {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := copy(p, f.ino.data[off:])
	if at, ok := f.c.flipAt[f.name]; ok && off <= at && at < off+int64(n) {
		delete(f.c.flipAt, f.name)
		p[at-off] ^= 1
	}
	if left := f.c.readFlips[f.name]; left > 0 && n > 0 {
		f.c.readFlips[f.name] = left - 1
		p[f.c.rng.IntN(n)] ^= 1 << f.c.rng.IntN(8)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *crashFile) Write(p []byte) (int, error) {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if f.append {
		f.pos = int64(len(f.ino.data))
	}
	n, err := f.writeAtLocked(p, f.pos)
	f.pos += int64(n)
	return n, err
}

func (f *crashFile) writeAtLocked(p []byte, off int64) (int, error) {
	if err := f.check("write"); err != nil {
		return 0, err
	}
	if !f.writable {
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: syscall.EBADF}
	}
	var fault error
	if f.c.writeFail > 0 {
		f.c.writeFail--
		if f.c.writeFail == 0 {
			// Keep a prefix ending on a sector boundary of the file.
			var cuts []int
			for b := (off/SectorSize + 1) * SectorSize; b < off+int64(len(p)); b += SectorSize {
				cuts = append(cuts, int(b-off))
			}
			keep := 0
			if len(cuts) > 0 {
				keep = cuts[f.c.rng.IntN(len(cuts))]
			}
			p = p[:keep]
			fault = &fs.PathError{Op: "write", Path: f.name, Err: ErrInjected}
		}
	}
	ino := f.ino
	if len(p) > 0 {
		old := int64(len(ino.data))
		ino.markDirty(min(off, old))
		if end := off + int64(len(p)); end > old {
			ino.data = append(ino.data, make([]byte, end-old)...)
		}
		copy(ino.data[off:], p)
	}
	return len(p), fault
}

func (f *crashFile) Seek(offset int64, whence int) (int64, error) {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if err := f.check("seek"); err != nil {
		return 0, err
	}
	switch whence {
	case io.SeekCurrent:
		offset += f.pos
	case io.SeekEnd:
		offset += int64(len(f.ino.data))
	}
	if offset < 0 {
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: syscall.EINVAL}
	}
	f.pos = offset
	return offset, nil
}

func (f *crashFile) Truncate(size int64) error {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if err := f.check("truncate"); err != nil {
		return err
	}
	if !f.writable || size < 0 {
		return &fs.PathError{Op: "truncate", Path: f.name, Err: syscall.EINVAL}
	}
	ino := f.ino
	old := int64(len(ino.data))
	if size == old {
		return nil
	}
	ino.markDirty(min(size, old))
	if size < old {
		ino.data = ino.data[:size]
	} else {
		ino.data = append(ino.data, make([]byte, size-old)...)
	}
	return nil
}

func (f *crashFile) Sync() error {
	f.c.runSyncHook(f.name)
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if err := f.check("sync"); err != nil {
		return err
	}
	if err := f.c.syncFaultLocked(f.name); err != nil {
		return err
	}
	ino := f.ino
	if ino.dirty >= 0 {
		d := min(ino.dirty, int64(len(ino.synced)))
		ino.synced = append(ino.synced[:d], ino.data[d:]...)
		ino.dirty = -1
	}
	f.c.syncs++
	return nil
}

func (f *crashFile) Close() error {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	f.closed = true
	return nil
}

// dirEntry is a CrashFS directory entry.
type dirEntry struct {
	name string
	dir  bool
	size int64
	mod  time.Time
}

func (e dirEntry) Name() string { return e.name }
func (e dirEntry) IsDir() bool  { return e.dir }
func (e dirEntry) Type() fs.FileMode {
	if e.dir {
		return fs.ModeDir
	}
	return 0
}
func (e dirEntry) Info() (fs.FileInfo, error) { return e, nil }
func (e dirEntry) Size() int64                { return e.size }
func (e dirEntry) Mode() fs.FileMode {
	if e.dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}
func (e dirEntry) ModTime() time.Time { return e.mod }
func (e dirEntry) Sys() any           { return nil }

// String describes the CrashFS for failure messages.
func (c *CrashFS) String() string { return fmt.Sprintf("vfs.CrashFS(seed %d)", c.seed) }
