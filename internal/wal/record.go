package wal

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Record layout on disk (little endian):
//
//	offset  size  field
//	0       4     CRC32C (Castagnoli) of bytes [4, 16+length)
//	4       4     length of the payload; the top bit is the continuation flag
//	8       8     index of the record
//	16      n     payload
//
// The continuation flag is set on every record of a write batch except the
// first: a batch is what one flush writes and fsyncs at once. It is what
// tells a torn tail from corruption at Open (see loadSegment): records of
// one batch reach the disk in any order when a crash interrupts the write,
// but a batch is written only after the previous one was fsynced, so a
// valid batch-starting record after a damaged one proves the damaged one
// was durable and has since gone bad.
//
// The checksum covers the length and the index as well as the payload, so a
// torn header is caught as surely as a torn payload, and a stale record left
// behind at the right offset (after a truncation that did not reach the disk)
// is caught by its index.
const headerSize = 16

// contFlag is the continuation flag in a record's or a frame's length
// field. Lengths never reach it (MaxRecordSize is far below 1<<31).
const contFlag = 1 << 31

// MaxRecordSize is the largest payload a record may carry. The decoder
// rejects larger lengths before allocating, so a corrupt length field cannot
// make it allocate gigabytes.
const MaxRecordSize = 64 << 20

// castagnoli is the CRC32C table; the hardware-accelerated polynomial on
// amd64 and arm64.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// RecordSize returns the number of bytes a record with a payload of n bytes
// occupies on disk.
func RecordSize(n int) int { return headerSize + n }

// AppendRecord appends the encoding of one record to dst and returns the
// extended slice. The payload must not exceed MaxRecordSize (Append checks
// this before calling it).
func AppendRecord(dst []byte, index uint64, payload []byte) []byte {
	return appendRecord(dst, index, payload, false)
}

// appendRecord is AppendRecord with the continuation flag: cont marks a
// record that is not the first of its write batch.
func appendRecord(dst []byte, index uint64, payload []byte, cont bool) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, headerSize)...)
	dst = append(dst, payload...)
	rec := dst[start:]
	length := uint32(len(payload))
	if cont {
		length |= contFlag
	}
	binary.LittleEndian.PutUint32(rec[4:8], length)
	binary.LittleEndian.PutUint64(rec[8:16], index)
	binary.LittleEndian.PutUint32(rec[0:4], crc32.Checksum(rec[4:], castagnoli))
	return dst
}

// DecodeRecord decodes the record at the start of b. It returns the record's
// index, its payload (a sub-slice of b, not a copy) and the number of bytes
// the record occupies. A record that is cut short returns ErrTruncated; one
// whose length is out of range or whose checksum does not match returns
// ErrCorrupt. DecodeRecord never panics, whatever b holds.
func DecodeRecord(b []byte) (index uint64, payload []byte, n int, err error) {
	index, payload, n, _, err = decodeRecord(b)
	return index, payload, n, err
}

// decodeRecord is DecodeRecord that also reports the continuation flag.
func decodeRecord(b []byte) (index uint64, payload []byte, n int, cont bool, err error) {
	if len(b) < headerSize {
		return 0, nil, 0, false, fmt.Errorf("%w: %d header bytes of %d", ErrTruncated, len(b), headerSize)
	}
	raw := binary.LittleEndian.Uint32(b[4:8])
	length := raw &^ contFlag
	if length > MaxRecordSize {
		return 0, nil, 0, false, fmt.Errorf("%w: record length %d exceeds %d", ErrCorrupt, length, MaxRecordSize)
	}
	n = headerSize + int(length)
	if len(b) < n {
		return 0, nil, 0, false, fmt.Errorf("%w: %d record bytes of %d", ErrTruncated, len(b), n)
	}
	want := binary.LittleEndian.Uint32(b[0:4])
	if got := crc32.Checksum(b[4:n], castagnoli); got != want {
		return 0, nil, 0, false, fmt.Errorf("%w: checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	return binary.LittleEndian.Uint64(b[8:16]), b[headerSize:n:n], n, raw&contFlag != 0, nil
}

// findBatchStart returns the offset of the first valid record in b (tried
// at every byte offset) that starts a write batch and has an index above
// after, and whether there is one. Such a record was written after
// everything before it was fsynced.
func findBatchStart(b []byte, after uint64) (int, bool) {
	for i := 0; i+headerSize <= len(b); i++ {
		index, _, _, cont, err := decodeRecord(b[i:])
		if err == nil && !cont && index > after {
			return i, true
		}
	}
	return 0, false
}
