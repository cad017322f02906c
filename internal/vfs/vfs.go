package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// File is an open file: what the durable components do with one.
// *os.File implements it.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.Seeker
	io.Closer
	// Sync makes the file's data durable (fsync). After a failed Sync
	// nothing written since the previous successful one can be trusted
	// to be on disk, whatever a later Sync reports.
	Sync() error
	// Truncate changes the file's size; it is durable after Sync.
	Truncate(size int64) error
}

// FS is a file system: the operations distkit's durable components use,
// and nothing else. Names are paths as the os package takes them. Changes
// to directory entries (a file created, renamed or removed, a directory
// made) are durable only once their parent directory is synced (SyncDir).
type FS interface {
	// OpenFile opens name with the flags of os.OpenFile (os.O_RDONLY,
	// os.O_RDWR, os.O_CREATE, os.O_EXCL, os.O_TRUNC).
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	// Remove removes the file name.
	Remove(name string) error
	// Rename renames oldname to newname, replacing newname atomically.
	Rename(oldname, newname string) error
	// ReadDir lists the directory name, sorted by file name.
	ReadDir(name string) ([]fs.DirEntry, error)
	// MkdirAll creates the directory name and any missing parents.
	MkdirAll(name string, perm fs.FileMode) error
	// SyncDir makes the entries of directory name durable (fsync of the
	// directory).
	SyncDir(name string) error
	// Lock takes an exclusive lock on the file name (created if missing)
	// for as long as the returned Closer is open. A second Lock of the
	// same file, from this process or another, fails with an error
	// matching ErrLocked (a *LockedError naming the holder's pid when it
	// is known).
	Lock(name string) (io.Closer, error)
}

// ErrLocked is matched (errors.Is) by the error of FS.Lock on a file that
// is already locked.
var ErrLocked = errors.New("vfs: locked by another opener")

// LockedError is the error FS.Lock returns for a file another opener
// holds.
type LockedError struct {
	// Path is the lock file.
	Path string
	// PID is the holder's process id, or 0 if it is not known.
	PID int
}

// Error names the lock file and the holder.
func (e *LockedError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("vfs: %s is locked by another opener", e.Path)
	}
	if e.PID == os.Getpid() {
		return fmt.Sprintf("vfs: %s is locked by this process (pid %d), through another open", e.Path, e.PID)
	}
	return fmt.Sprintf("vfs: %s is locked by process %d", e.Path, e.PID)
}

// Is reports whether target is ErrLocked.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// OS is the operating system's file system. Its OpenFile returns *os.File
// itself, so using it costs nothing over calling package os.
var OS FS = osFS{}

// Or returns fsys, or OS if fsys is nil: what a component does with an
// optional FS field.
func Or(fsys FS) FS {
	if fsys == nil {
		return OS
	}
	return fsys
}

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return f, nil
}

func (osFS) Remove(name string) error                     { return os.Remove(name) }
func (osFS) Rename(oldname, newname string) error         { return os.Rename(oldname, newname) }
func (osFS) ReadDir(name string) ([]fs.DirEntry, error)   { return os.ReadDir(name) }
func (osFS) MkdirAll(name string, perm fs.FileMode) error { return os.MkdirAll(name, perm) }
func (osFS) Lock(name string) (io.Closer, error)          { return lockFile(name) }

func (osFS) SyncDir(name string) error {
	d, err := os.Open(name)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// ReadFile returns the contents of the file name.
func ReadFile(fsys FS, name string) ([]byte, error) {
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// MkdirAllDurable creates the directory dir and any missing parents, like
// FS.MkdirAll, and syncs the parent of each directory it creates, so that
// the new directories survive a crash. Existing directories are left
// alone.
func MkdirAllDurable(fsys FS, dir string) error {
	dir = filepath.Clean(dir)
	if _, err := fsys.ReadDir(dir); err == nil {
		return nil
	}
	// Find the missing components, outermost first.
	var missing []string
	for d := dir; ; {
		if _, err := fsys.ReadDir(d); err == nil {
			break
		}
		missing = append(missing, d)
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := fsys.SyncDir(filepath.Dir(missing[i])); err != nil {
			return err
		}
	}
	return nil
}
