package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/distkit/distkit/internal/vfs"
)

// segmentExt is the extension of segment files. A segment is named after
// the index of its first record, zero-padded so names sort like indices.
const segmentExt = ".wal"

// segment is one file of the log: records first, first+1, ….
type segment struct {
	first   uint64
	path    string
	f       vfs.File
	offsets []int64 // offsets[i] is the byte offset of record first+i
	size    int64   // bytes of complete records
}

// last returns the index of the segment's last record (first-1 when empty).
func (s *segment) last() uint64 { return s.first + uint64(len(s.offsets)) - 1 }

func segmentName(first uint64) string { return fmt.Sprintf("%020d%s", first, segmentExt) }

// listSegments returns the first indices of the segment files in dir, in
// ascending order.
func listSegments(fsys vfs.FS, dir string) ([]uint64, error) {
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var firsts []uint64
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, segmentExt) {
			continue
		}
		first, err := strconv.ParseUint(strings.TrimSuffix(name, segmentExt), 10, 64)
		if err != nil || first == 0 || segmentName(first) != name {
			continue // not ours
		}
		firsts = append(firsts, first)
	}
	sort.Slice(firsts, func(i, j int) bool { return firsts[i] < firsts[j] })
	return firsts, nil
}

// loadSegment opens a segment file and indexes its records. A sealed
// segment (isLast false) must decode completely: its records were all
// fsynced before the next segment was started. The last one may end in a
// torn write, which is cut off and the truncation made durable: such
// records were never acknowledged, because Append returns only after the
// fsync that covers them.
//
// A damaged record of the last segment is a torn tail only if no valid
// record that starts a later write batch follows it: batches are written
// one after the other, each after the previous one's fsync, so such a
// record proves the damaged one had been fsynced (acknowledged) and has
// since gone bad. That is corruption, refused with a *CorruptError; a
// valid record of the damaged record's own batch may follow it (a crash
// persists the sectors of an interrupted write in any order).
func loadSegment(fsys vfs.FS, dir string, first uint64, isLast bool) (*segment, int64, error) {
	path := filepath.Join(dir, segmentName(first))
	// Every segment is opened for writing: TruncateBack can make a sealed
	// segment the active one again.
	f, err := fsys.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("wal: open segment: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("wal: read segment: %w", err)
	}
	s := &segment{first: first, path: path, f: f}
	var off int64
	for off < int64(len(data)) {
		index, _, n, err := DecodeRecord(data[off:])
		if err == nil && index != s.last()+1 {
			err = fmt.Errorf("%w: record %d where %d was expected", ErrCorrupt, index, s.last()+1)
		}
		if err != nil {
			if !isLast {
				f.Close()
				return nil, 0, &CorruptError{File: path, Offset: off, Err: fmt.Errorf("in a sealed segment: %w", err)}
			}
			if at, ok := findBatchStart(data[off+1:], s.last()); ok {
				f.Close()
				return nil, 0, &CorruptError{File: path, Offset: off, Err: fmt.Errorf(
					"%w, and a valid record written after it was made durable follows at offset %d", err, off+1+int64(at))}
			}
			break
		}
		s.offsets = append(s.offsets, off)
		off += int64(n)
	}
	s.size = off
	cut := int64(len(data)) - off
	if cut > 0 {
		// Before cutting acknowledged-looking data off for good, make sure
		// the damage is on the disk and not a read that went wrong: read
		// the file again and compare.
		again := make([]byte, len(data))
		if n, err := f.ReadAt(again, 0); n != len(data) || !bytes.Equal(again, data) {
			f.Close()
			return nil, 0, &CorruptError{File: path, Offset: off, Err: fmt.Errorf(
				"%w: two reads of the segment differ (read error %v): the storage is unreliable", ErrCorrupt, err)}
		}
		if err := f.Truncate(off); err != nil {
			f.Close()
			return nil, 0, fmt.Errorf("wal: truncate torn tail: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, 0, fmt.Errorf("wal: truncate torn tail: %w", err)
		}
	}
	if isLast {
		if _, err := f.Seek(off, 0); err != nil {
			f.Close()
			return nil, 0, fmt.Errorf("wal: seek: %w", err)
		}
	}
	return s, cut, nil
}

// createSegment creates an empty segment file and makes its name durable.
func createSegment(fsys vfs.FS, dir string, first uint64) (*segment, error) {
	path := filepath.Join(dir, segmentName(first))
	f, err := fsys.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("wal: create segment: %w", err)
	}
	if err := SyncDirFS(fsys, dir); err != nil {
		f.Close()
		return nil, err
	}
	return &segment{first: first, path: path, f: f}, nil
}

// remove closes and deletes the segment's file.
func (s *segment) remove(fsys vfs.FS) error {
	cerr := s.f.Close()
	if err := fsys.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("wal: remove segment: %w", err)
	}
	if cerr != nil && !errors.Is(cerr, os.ErrClosed) {
		return fmt.Errorf("wal: close segment: %w", cerr)
	}
	return nil
}
