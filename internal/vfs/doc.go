// Package vfs is the file-system seam of distkit's durable components:
// internal/wal, consensus.DiskStorage, txn.FileLog, idempotency.FileStore
// and election.FileEpochStore do every file access through an FS, so that
// tests can run them on CrashFS, a file system that loses power.
//
// # Usage
//
// Production code leaves the FS field of a component's options nil, which
// means OS, the operating system's file system (its files are *os.File
// themselves: the seam costs an interface call, no allocation):
//
//	wal.Open(dir, wal.Options{})                          // FS nil: vfs.OS
//	consensus.OpenDiskStorage(dir, consensus.DiskOptions{FS: fsys})
//	txn.OpenFileLogWith(dir, txn.FileLogOptions{FS: fsys})
//	idempotency.OpenFileStore(path, idempotency.FileConfig{…, FS: fsys})
//	election.OpenFileEpochStore(path, election.EpochStoreOptions{FS: fsys})
//
// A power-loss test runs a component on a CrashFS, cuts the power at an
// arbitrary point and reopens it on what the disk kept:
//
//	fsys := vfs.NewCrashFS(seed)
//	log, _ := wal.Open("/data/wal", wal.Options{FS: fsys})
//	… appends, some acknowledged …
//	after := fsys.Crash() // fsys and its open files are dead from now on
//	log2, err := wal.Open("/data/wal", wal.Options{FS: after})
//	// every acknowledged record must be there; nothing else may be garbage
//
// Print the seed when such a test fails (t.Logf("seed %d", seed)): the
// same operations on a CrashFS of the same seed crash the same way.
//
// # What CrashFS checks
//
// The rules a durable component must follow on a real disk, enforced
// strictly:
//
//  1. Data written to a file and not fsynced (File.Sync) may be lost, kept,
//     or torn at a crash: the file's size and each 512-byte sector of its
//     unsynced part are chosen by the seed, old or new, so a crash can
//     leave a later sector of a write on disk and an earlier one not.
//  2. A directory entry (a file created, renamed or removed, a directory
//     made) survives a crash only if its parent directory was fsynced
//     (FS.SyncDir) after the change. Use MkdirAllDurable to create
//     directories that survive.
//  3. Faults on demand: InjectSyncError (an fsync that fails; the
//     component must stop acknowledging writes, since the kernel may have
//     dropped the data: the "fsyncgate" lesson), InjectWriteError (a write
//     torn at a sector boundary that returns an error), FlipBitsOnRead
//     and FlipBitOnReadAt (reads that return a flipped bit, to check that
//     checksums catch it and that no read error truncates a log)
//     and Corrupt (bits flipped on the medium).
//
// Not modelled: reordering of fsyncs themselves (an fsync that returned
// is durable), a disk that acknowledges an fsync it did not do, and
// metadata other than names and sizes (permissions, times).
//
// # Locks
//
// FS.Lock takes an exclusive lock on a file for as long as the returned
// Closer is open. On OS it is flock(2) (on unix; elsewhere it only creates
// the file), which belongs to the open file description, so a second Lock
// in the same process is refused too; the holder writes its pid into the
// file and a refused Lock returns a *LockedError naming it (matching
// ErrLocked). The durable components lock their directory or file when
// they open it and release it on Close, so two processes (or two opens in
// one) never write the same log.
//
// # Concurrency
//
// OS and CrashFS are safe for concurrent use; a File is used by one
// goroutine at a time, except ReadAt, which may run concurrently with
// anything. CrashFS serializes all operations under one lock, which also
// makes its random choices reproducible when the operations are.
//
// # Caller's duties
//
//  1. Sync a file before acknowledging what was written to it, and sync
//     the parent directory before relying on a create, rename or remove.
//  2. After a failed Sync, treat everything written since the last
//     successful one as lost, and stop: do not retry the fsync and carry
//     on.
//  3. Do not use a CrashFS, or files opened from it, after its Crash; use
//     the CrashFS Crash returned.
package vfs
