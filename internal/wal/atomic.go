package wal

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// tempSuffix marks the temporary files WriteFileAtomic creates; a crash can
// leave one behind, and RemoveTempFiles deletes them.
const tempSuffix = ".tmp"

// WriteFileAtomic replaces the file at path with the bytes write produces,
// so that after a crash the file holds either its old contents or all of the
// new ones, never a mix. It writes a temporary file in the same directory,
// fsyncs it, renames it over path and fsyncs the directory so the rename
// itself is durable. If write or any step fails, the temporary file is
// removed and path is left untouched.
func WriteFileAtomic(path string, write func(w io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*"+tempSuffix)
	if err != nil {
		return fmt.Errorf("wal: atomic write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
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
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("wal: atomic write %s: rename: %w", path, err)
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory, making the creation, removal or renaming of
// the files in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("wal: sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("wal: sync dir %s: %w", dir, err)
	}
	return nil
}

// RemoveTempFiles deletes the temporary files an interrupted WriteFileAtomic
// left in dir. Call it when opening a directory, before anyone writes to it.
func RemoveTempFiles(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("wal: remove temp files: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.Type().IsRegular() && strings.HasPrefix(name, ".") && strings.HasSuffix(name, tempSuffix) {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
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
func RemoveTempFilesOf(path string) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("wal: remove temp files of %s: %w", path, err)
	}
	prefix := "." + base + "."
	for _, e := range entries {
		name := e.Name()
		if e.Type().IsRegular() && len(name) > len(prefix)+len(tempSuffix) &&
			strings.HasPrefix(name, prefix) && strings.HasSuffix(name, tempSuffix) {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("wal: remove temp files of %s: %w", path, err)
			}
		}
	}
	return nil
}
