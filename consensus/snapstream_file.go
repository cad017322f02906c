package consensus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/internal/vfs"
)

// A snapshot file (storagecodec.go) is read by streaming: its checksum
// covers the whole body, so it is verified by one pass over the file
// before anything of it is used, and its data is then handed out as a
// reader over the file. No step holds more than maxSnapshotHead bytes.

// maxSnapshotHead bounds the part of a snapshot body read into memory to
// decode its metadata (the index, term and membership before the data).
const maxSnapshotHead = 1 << 20

// snapshotFileInfo describes a snapshot file whose checksum was verified.
type snapshotFileInfo struct {
	meta    raft.SnapshotMeta
	size    int64  // of the whole file
	dataOff int64  // where the state machine's data starts
	dataLen int64  // its length
	dataCRC uint32 // CRC32C of the data alone, to check a later read
}

// verifySnapshotFile reads f from its start, checks its magic and checksum
// and decodes its metadata. Any damage fails with an error wrapping
// ErrCorrupt (errFormat), as decodeSnapshot does for a file in memory.
func verifySnapshotFile(f vfs.File) (snapshotFileInfo, error) {
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return snapshotFileInfo{}, fmt.Errorf("snapshot: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return snapshotFileInfo{}, fmt.Errorf("snapshot: %w", err)
	}
	var hdr [8]byte
	if size < int64(len(hdr)) {
		return snapshotFileInfo{}, fmt.Errorf("snapshot: %w: bad magic", errFormat)
	}
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return snapshotFileInfo{}, fmt.Errorf("snapshot: %w", err)
	}
	if [4]byte(hdr[:4]) != snapshotMagic {
		return snapshotFileInfo{}, fmt.Errorf("snapshot: %w: bad magic", errFormat)
	}
	bodyLen := size - int64(len(hdr))
	head := make([]byte, min(bodyLen, maxSnapshotHead))
	if _, err := io.ReadFull(f, head); err != nil {
		return snapshotFileInfo{}, fmt.Errorf("snapshot: %w", err)
	}
	crc := crc32.Update(0, castagnoli, head)
	// The metadata is decoded before the rest is read (to know where the
	// data starts), but a decoding error is reported only once the
	// checksum matched: damage is reported as a bad checksum first.
	info, headErr := decodeSnapshotHead(head, bodyLen)
	var dataCRC uint32
	if headErr == nil {
		dataCRC = crc32.Update(0, castagnoli, head[info.dataOff-8:])
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := f.Read(buf)
		crc = crc32.Update(crc, castagnoli, buf[:n])
		if headErr == nil {
			dataCRC = crc32.Update(dataCRC, castagnoli, buf[:n])
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return snapshotFileInfo{}, fmt.Errorf("snapshot: %w", err)
		}
	}
	if want := binary.LittleEndian.Uint32(hdr[4:]); crc != want {
		return snapshotFileInfo{}, fmt.Errorf("snapshot: %w: checksum %08x, want %08x", errFormat, crc, want)
	}
	if headErr != nil {
		return snapshotFileInfo{}, headErr
	}
	info.size, info.dataCRC = size, dataCRC
	return info, nil
}

// decodeSnapshotHead decodes the metadata at the start of a snapshot body
// of bodyLen bytes, of which head is the beginning.
func decodeSnapshotHead(head []byte, bodyLen int64) (snapshotFileInfo, error) {
	if len(head) == 0 {
		return snapshotFileInfo{}, fmt.Errorf("snapshot: %w: unknown version", errFormat)
	}
	d := reader{b: head[1:]}
	meta, err := decodeSnapshotMeta(head[0], &d)
	if err != nil {
		return snapshotFileInfo{}, err
	}
	n := d.uvarint()
	if d.err != nil {
		return snapshotFileInfo{}, fmt.Errorf("snapshot: %w", d.err)
	}
	off := int64(len(head) - len(d.b)) // within the body
	if n != uint64(bodyLen-off) {
		return snapshotFileInfo{}, fmt.Errorf("snapshot: %w: data of %d bytes in %d", errFormat, n, bodyLen-off)
	}
	return snapshotFileInfo{meta: meta, dataOff: 8 + off, dataLen: int64(n)}, nil
}

// snapshotDataReader reads a verified snapshot file's data and checks it
// again at its end: a file that changed since it was verified fails the
// last Read with ErrCorrupt instead of ending quietly.
type snapshotDataReader struct {
	f    vfs.File
	r    io.Reader
	crc  uint32
	want uint32
}

func (r *snapshotDataReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.crc = crc32.Update(r.crc, castagnoli, p[:n])
	if errors.Is(err, io.EOF) && r.crc != r.want {
		return n, fmt.Errorf("consensus: snapshot: %w: data changed after it was verified", ErrCorrupt)
	}
	return n, err
}

func (r *snapshotDataReader) Close() error { return r.f.Close() }

// openSnapshotFile opens and verifies the snapshot file at path; the
// returned file is positioned at the start of the data.
func openSnapshotFile(fsys vfs.FS, path string) (vfs.File, snapshotFileInfo, error) {
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, snapshotFileInfo{}, err
	}
	info, err := verifySnapshotFile(f)
	if err == nil {
		_, err = f.Seek(info.dataOff, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, snapshotFileInfo{}, err
	}
	return f, info, nil
}

// stageSyncBytes is how much of a snapshot file is written between two
// fsyncs while it is staged, so that the page cache never holds much of
// it dirty: a 100 MB flush at the end would stall the fsyncs of the WAL
// behind it for the whole write-back.
const stageSyncBytes = 4 << 20

// writeSnapshotFile writes the snapshot file of meta to f (empty, open
// for reading and writing), its data produced by write, without holding
// the data in memory: the data's length goes in a fixed-width (padded)
// uvarint reserved before it and filled in afterwards, and the checksum,
// which covers the body, is computed by reading the file back. The file
// is fsynced when it returns nil.
func writeSnapshotFile(f vfs.File, meta raft.SnapshotMeta, write func(io.Writer) error) error {
	prefix := encodeSnapshot(raft.Snapshot{Meta: meta}) // header and metadata, then a 1-byte length (0)
	prefix = prefix[:len(prefix)-1]
	lenOff := int64(len(prefix))
	prefix = append(prefix, make([]byte, binary.MaxVarintLen64)...)
	if _, err := f.Write(prefix); err != nil {
		return err
	}
	w := &syncingWriter{f: f}
	if err := write(w); err != nil {
		return err
	}
	if err := w.flush(); err != nil {
		return err
	}
	var n [binary.MaxVarintLen64]byte
	putPaddedUvarint(n[:], w.n)
	if err := writeAt(f, n[:], lenOff); err != nil {
		return err
	}
	if _, err := f.Seek(8, io.SeekStart); err != nil {
		return err
	}
	crc := crc32.New(castagnoli)
	if _, err := io.Copy(crc, f); err != nil {
		return err
	}
	var sum [4]byte
	binary.LittleEndian.PutUint32(sum[:], crc.Sum32())
	if err := writeAt(f, sum[:], 4); err != nil {
		return err
	}
	return f.Sync()
}

func writeAt(f vfs.File, b []byte, off int64) error {
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return err
	}
	_, err := f.Write(b)
	return err
}

// putPaddedUvarint writes v as a uvarint of exactly len(b) ==
// binary.MaxVarintLen64 bytes (continuation bits on all but the last),
// which binary.Uvarint reads like the shortest encoding.
func putPaddedUvarint(b []byte, v uint64) {
	for i := range len(b) - 1 {
		b[i] = byte(v>>(7*i))&0x7f | 0x80
	}
	b[len(b)-1] = byte(v >> (7 * (len(b) - 1)))
}

// syncingWriter writes to a file through a buffer and fsyncs every
// stageSyncBytes.
type syncingWriter struct {
	f        vfs.File
	buf      []byte
	n        uint64 // bytes written through it
	unsynced int
}

func (w *syncingWriter) Write(p []byte) (int, error) {
	if w.buf == nil {
		w.buf = make([]byte, 0, 256<<10)
	}
	written := len(p)
	for len(p) > 0 {
		k := min(len(p), cap(w.buf)-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == cap(w.buf) {
			if err := w.flush(); err != nil {
				return 0, err
			}
		}
	}
	w.n += uint64(written)
	return written, nil
}

// flush writes the buffer out, and fsyncs once stageSyncBytes are
// unsynced.
func (w *syncingWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	if _, err := w.f.Write(w.buf); err != nil {
		return err
	}
	w.unsynced += len(w.buf)
	w.buf = w.buf[:0]
	if w.unsynced >= stageSyncBytes {
		w.unsynced = 0
		return w.f.Sync()
	}
	return nil
}
