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
//  2. Open validates every checksum and the continuity of indices. A torn or
//     corrupt tail of the last segment (a crash during a write) is cut off
//     and the truncation fsynced; such records were never acknowledged.
//     Damage anywhere else fails Open with ErrCorrupt rather than silently
//     losing acknowledged records.
//  3. TruncateBack (drop a suffix) is durable when it returns, so a crash
//     never brings the dropped records back behind newer ones.
//  4. DeleteBefore removes whole segments oldest first and TruncateBack and
//     Reset remove them newest first, so an interrupted call always leaves a
//     contiguous log.
//  5. WriteFileAtomic replaces a file via a temporary file, fsync, rename and
//     an fsync of the directory: after a crash the file is old or new, never
//     a mix.
//
// # Caller's duties
//
//  1. Open a directory from one Log at a time (nothing locks it against a
//     second process).
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
// records, and bit flips detected by CRC32C. Not tolerated: an fsync that
// lies, or damage to sealed segments (reported, not repaired).
package wal
