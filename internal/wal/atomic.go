package wal

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/distkit/distkit/internal/vfs"
)

// tempSuffix marks the temporary files WriteFileAtomic creates; a crash can
// leave one behind, and RemoveTempFiles deletes them.
const tempSuffix = ".tmp"

// ErrDirNotSynced is wrapped by the error of WriteFileAtomic when
// everything succeeded but the final fsync of the directory: the new file
// is in place and visible, but a crash may still bring the old one back.
// A caller that already switched to the new file (reopened it) must treat
// its state as failed; one that did not can keep using the old contents.
var ErrDirNotSynced = errors.New("wal: renamed into place but the directory sync failed")

// tempSeq numbers temporary files, so that names are unique in a process;
// an exclusive create retries past names left by an earlier process.
var tempSeq atomic.Uint64

// WriteFileAtomic replaces the file at path with the bytes write produces,
// so that after a crash the file holds either its old contents or all of the
// new ones, never a mix. It writes a temporary file in the same directory,
// fsyncs it, renames it over path and fsyncs the directory so the rename
// itself is durable. If write or any step before the rename fails, the
// temporary file is removed and path is left untouched; if only the last
// directory fsync fails, the error wraps ErrDirNotSynced.
func WriteFileAtomic(path string, write func(w io.Writer) error) error {
	return WriteFileAtomicFS(nil, path, write)
}

// WriteFileAtomicFS is WriteFileAtomic on the file system fsys (nil: the
// OS).
func WriteFileAtomicFS(fsys vfs.FS, path string, write func(w io.Writer) error) (err error) {
	fsys = vfs.Or(fsys)
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	var f vfs.File
	var tmp string
	for range 1000 {
		tmp = filepath.Join(dir, "."+base+"."+strconv.FormatUint(tempSeq.Add(1), 10)+tempSuffix)
		f, err = fsys.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if !errors.Is(err, os.ErrExist) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("wal: atomic write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			fsys.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 256<<10)
	if err = write(bw); err != nil {
		return fmt.Errorf("wal: atomic write %s: %w", path, err)
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("wal: atomic write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("wal: atomic write %s: sync: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("wal: atomic write %s: close: %w", path, err)
	}
	if err = fsys.Rename(tmp, path); err != nil {
		return fmt.Errorf("wal: atomic write %s: rename: %w", path, err)
	}
	if serr := SyncDirFS(fsys, dir); serr != nil {
		return fmt.Errorf("%w: %w", ErrDirNotSynced, serr)
	}
	return nil
}

// SyncDir fsyncs a directory, making the creation, removal or renaming of
// the files in it durable.
func SyncDir(dir string) error { return SyncDirFS(nil, dir) }

// SyncDirFS is SyncDir on the file system fsys (nil: the OS).
func SyncDirFS(fsys vfs.FS, dir string) error {
	if err := vfs.Or(fsys).SyncDir(dir); err != nil {
		return fmt.Errorf("wal: sync dir %s: %w", dir, err)
	}
	return nil
}

// RemoveTempFiles deletes the temporary files an interrupted WriteFileAtomic
// left in dir. Call it when opening a directory, before anyone writes to it.
func RemoveTempFiles(dir string) error { return RemoveTempFilesFS(nil, dir) }

// RemoveTempFilesFS is RemoveTempFiles on the file system fsys (nil: the
// OS).
func RemoveTempFilesFS(fsys vfs.FS, dir string) error {
	fsys = vfs.Or(fsys)
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("wal: remove temp files: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.Type().IsRegular() && strings.HasPrefix(name, ".") && strings.HasSuffix(name, tempSuffix) {
			if err := fsys.Remove(filepath.Join(dir, name)); err != nil {
				return fmt.Errorf("wal: remove temp files: %w", err)
			}
		}
	}
	return nil
}

// RemoveTempFilesOf deletes the temporary files an interrupted
// WriteFileAtomic(path, …) left next to path, and nothing else: unlike
// RemoveTempFiles it is safe in a directory that holds other programs'
// files. Call it when opening path, before anyone writes to it.
func RemoveTempFilesOf(path string) error { return RemoveTempFilesOfFS(nil, path) }

// RemoveTempFilesOfFS is RemoveTempFilesOf on the file system fsys (nil:
// the OS).
func RemoveTempFilesOfFS(fsys vfs.FS, path string) error {
	fsys = vfs.Or(fsys)
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("wal: remove temp files of %s: %w", path, err)
	}
	prefix := "." + base + "."
	for _, e := range entries {
		name := e.Name()
		if e.Type().IsRegular() && len(name) > len(prefix)+len(tempSuffix) &&
			strings.HasPrefix(name, prefix) && strings.HasSuffix(name, tempSuffix) {
			if err := fsys.Remove(filepath.Join(dir, name)); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("wal: remove temp files of %s: %w", path, err)
			}
		}
	}
	return nil
}
