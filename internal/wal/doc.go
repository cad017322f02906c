// Package wal is a durable write-ahead log: records with consecutive
// indices, appended to segment files, each record checksummed, every append
// durable (fsynced) before it returns. distkit's consensus, txn and
// idempotency packages keep their durable state in it.
//
// # Usage
//
//	log, err := wal.Open(dir, wal.DefaultOptions())
//	if err != nil { … }
//	defer log.Close()
//	// Rebuild state from what survived the last run.
//	err = log.Replay(log.FirstIndex(), func(index uint64, rec []byte) error { … })
//	// One call, one fsync, however many records.
//	last, err := log.Append(rec1, rec2, rec3)
//
// Snapshot files and other small files that are replaced as a whole are
// written with WriteFileAtomic. Files that need checksummed pieces but no
// record index (checkpoints, compacted logs, simple append-only logs) are
// sequences of frames: AppendFrame (or SealFrame, to encode in place)
// writes one, DecodeFrame reads one and tells a torn tail (ErrTruncated)
// from damage (ErrCorrupt). txn and idempotency use both.
//
// # Format
//
// A directory holds segment files named after the index of their first
// record (00000000000000000001.wal, …). A segment is a sequence of records:
// a 16-byte header (CRC32C, payload length, index) followed by the payload;
// see DecodeRecord. A new segment is started once the active one exceeds
// Options.SegmentSize.
//
// A frame is a record without the index: an 8-byte header (CRC32C of the
// length and payload, payload length) followed by the payload; see
// DecodeFrame.
//
// # Guarantees
//
//  1. Append returns only after its records are written and fsynced.
//     Concurrent Appends share fsyncs (group commit): while one batch is
//     being synced the next one accumulates, and a single fsync then covers
//     all of it. One Append with many records is always one batch, so a
//     Raft step costs one fsync.
//  2. Open validates every checksum and the continuity of indices, and
//     tells a torn tail from corruption (see below). A torn tail is cut off
//     and the truncation fsynced (logged at WARN); such records were never
//     acknowledged. Corruption fails Open with a *CorruptError (matching
//     ErrCorrupt) naming the file and offset, rather than silently losing
//     acknowledged records.
//  3. TruncateBack (drop a suffix) is durable when it returns, so a crash
//     never brings the dropped records back behind newer ones.
//  4. DeleteBefore removes whole segments oldest first and TruncateBack and
//     Reset remove them newest first, so an interrupted call always leaves a
//     contiguous log.
//  5. WriteFileAtomic replaces a file via a temporary file, fsync, rename and
//     an fsync of the directory: after a crash the file is old or new, never
//     a mix.
//
// # Torn tail or corruption
//
// The records one flush writes and fsyncs form a write batch; every record
// but a batch's first carries a continuation flag (the top bit of its
// length). A crash during a flush can leave any subset of that batch's
// sectors on disk, but never anything of a later batch, which is written
// only after this one's fsync returned. So Open reads each segment up to
// its first bad record (incomplete, failing its checksum, or out of
// sequence) and decides:
//
//   - torn tail: the bad record is in the last segment and no valid record
//     that starts a later batch follows it (garbage, zeros, or records of
//     its own batch may): cut off;
//   - corruption: the bad record is in a sealed segment (all of which was
//     fsynced before the next segment was started), or a valid
//     batch-starting record follows it (proof that the bad one had been
//     fsynced and has gone bad since): refused with ErrCorrupt.
//
// The issue this answers: one flipped byte in the middle of a segment used
// to cut off every record after it, with only a warning.
//
// # Caller's duties
//
//  1. Open a directory from one Log at a time. The Log takes no lock
//     itself; the packages built on it (consensus.DiskStorage, txn.FileLog)
//     lock their directory before opening it.
//  2. After any error from Append, TruncateBack, DeleteBefore or Reset, treat
//     the Log as failed: it returns the same error from then on, because
//     after a failed fsync the kernel may have dropped dirty pages. Close it
//     and reopen it to recover what is on disk.
//  3. Do not run Replay concurrently with TruncateBack, DeleteBefore or
//     Reset.
//
// # Concurrency
//
// A Log is safe for concurrent use. Append blocks until its records are
// durable; the restructuring operations wait for in-flight appends and hold
// new ones back while they run.
//
// # Fault model
//
// Crashes (power loss, kill -9) at any instant, torn writes of the last
// batch (any subset of its sectors), failing fsyncs and writes (the Log
// stops), and bit flips detected by CRC32C (refused, not repaired). Not
// tolerated: an fsync that lies.
//
// All file access goes through Options.FS (package internal/vfs; nil is
// the OS, at no cost: the OS files are *os.File). The power-loss tests run
// the Log on vfs.CrashFS, which keeps only what was fsynced: unsynced data
// is lost, kept or torn at 512-byte sectors in any order, directory
// entries (a new segment, a removed one) survive only a directory fsync,
// and fsyncs and writes fail on demand. TestPowerLossKeepsAcknowledgedRecords
// checks, for many seeds, that every Append that returned survives a power
// cut, that TruncateBack and DeleteBefore are durable, that only records
// the failed call tried to write may appear past the acknowledged ones,
// that the Log refuses writes after a failed fsync, and that Open never
// mistakes what a crash left for corruption; FuzzOpenDamaged checks that
// any flips and truncations open with every kept record intact and no
// loss a torn tail cannot explain, or are refused.
package wal
