package sim

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"slices"
	"sort"
)

// Disk is a node's simulated storage: named files that survive Crash and
// Restart. Reads see every write at once, but a write is durable only after
// Sync of that file: a crash puts each file back to its last synced contents
// (with Config.TornWrites, a file that was only appended to since keeps a
// seeded prefix of the unsynced bytes, tearing the write in progress).
// Remove is durable at once, like a rename on a journaling file system.
//
// Like the Sim, a Disk is not safe for concurrent use. Errors wrap
// fs.ErrNotExist or fs.ErrInvalid; the methods of a nil Disk (what Sim.Disk
// returns for an unknown node) return errors wrapping ErrUnknownNode.
type Disk struct {
	files map[string]*diskFile
	rng   *rand.Rand // picks where a torn write ends
}

// diskFile is one file: what reads see and what a crash would leave.
//
// While the file has only grown since the last Sync (appendOnly), its
// durable contents are data[:syncedLen] and Sync costs O(1), which keeps a
// log that syncs after every append linear rather than quadratic. The first
// other change copies the durable contents into saved.
type diskFile struct {
	data         []byte // current contents
	syncedLen    int    // length at the last Sync
	saved        []byte // durable contents once appendOnly is false
	syncedExists bool   // whether the file existed at the last Sync
	appendOnly   bool   // only appends since the last Sync
}

// durable returns the contents a crash would leave (before any tearing).
func (f *diskFile) durable() []byte {
	if f.appendOnly {
		return f.data[:f.syncedLen]
	}
	return f.saved
}

// overwrite records that the file is about to change other than by an
// append, saving the durable contents first.
func (f *diskFile) overwrite() {
	if f.appendOnly {
		f.saved = slices.Clone(f.data[:f.syncedLen])
		f.appendOnly = false
	}
}

func newDisk(rng *rand.Rand) *Disk { return &Disk{files: make(map[string]*diskFile), rng: rng} }

func (d *Disk) file(op, name string, create bool) (*diskFile, error) {
	if d == nil || d.files == nil {
		return nil, fmt.Errorf("sim: disk %s %q: no such disk (Sim.Disk returns nil for an unknown node): %w", op, name, ErrUnknownNode)
	}
	if name == "" {
		return nil, fmt.Errorf("sim: disk %s: empty file name: %w", op, fs.ErrInvalid)
	}
	f := d.files[name]
	if f == nil {
		if !create {
			return nil, fmt.Errorf("sim: disk %s %q: %w", op, name, fs.ErrNotExist)
		}
		f = &diskFile{appendOnly: true}
		d.files[name] = f
	}
	return f, nil
}

// Append adds data to the end of file, creating it if needed. It copies
// data. The bytes are not durable until Sync.
func (d *Disk) Append(file string, data []byte) error {
	f, err := d.file("append", file, true)
	if err != nil {
		return err
	}
	f.data = append(f.data, data...)
	return nil
}

// WriteFile replaces the contents of file, creating it if needed. It copies
// data. The new contents are not durable until Sync; a crash before then
// brings back the old ones.
func (d *Disk) WriteFile(file string, data []byte) error {
	f, err := d.file("write", file, true)
	if err != nil {
		return err
	}
	f.overwrite()
	f.data = append([]byte{}, data...)
	return nil
}

// Sync makes the current contents of file durable.
func (d *Disk) Sync(file string) error {
	f, err := d.file("sync", file, false)
	if err != nil {
		return err
	}
	f.syncedLen = len(f.data)
	f.saved = nil
	f.syncedExists = true
	f.appendOnly = true
	return nil
}

// ReadFile returns a copy of the current contents of file.
func (d *Disk) ReadFile(file string) ([]byte, error) {
	f, err := d.file("read", file, false)
	if err != nil {
		return nil, err
	}
	out := slices.Clone(f.data)
	if out == nil {
		out = []byte{}
	}
	return out, nil
}

// Truncate changes the size of file, cutting it or extending it with zero
// bytes as os.Truncate does. The change is not durable until Sync.
func (d *Disk) Truncate(file string, size int64) error {
	f, err := d.file("truncate", file, false)
	if err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("sim: disk truncate %q to %d: negative size: %w", file, size, fs.ErrInvalid)
	}
	if size < int64(f.syncedLen) {
		f.overwrite() // cutting into the synced part is not an append
	}
	if int64(len(f.data)) >= size {
		// Cap the slice so a later append copies instead of writing over
		// bytes that durable() or saved may still refer to.
		f.data = f.data[:size:size]
	} else {
		f.data = append(f.data, make([]byte, size-int64(len(f.data)))...)
	}
	return nil
}

// Remove deletes file. Unlike writes it is durable at once.
func (d *Disk) Remove(file string) error {
	if _, err := d.file("remove", file, false); err != nil {
		return err
	}
	delete(d.files, file)
	return nil
}

// List returns the names of the files, sorted (none for a nil Disk).
func (d *Disk) List() []string {
	if d == nil {
		return nil
	}
	names := make([]string, 0, len(d.files))
	for name := range d.files {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Size returns the current size of file.
func (d *Disk) Size(file string) (int64, error) {
	f, err := d.file("size", file, false)
	if err != nil {
		return 0, err
	}
	return int64(len(f.data)), nil
}

// crash throws away everything that was not synced. Files are visited in
// sorted order so the torn-write choices depend only on the seed.
func (d *Disk) crash(torn bool) {
	for _, name := range d.List() {
		f := d.files[name]
		keep := 0
		if unsynced := len(f.data) - f.syncedLen; torn && f.appendOnly && unsynced > 0 {
			// Any prefix of the unsynced tail may have reached the platter,
			// but not all of it: tear somewhere in [0, unsynced).
			keep = d.rng.IntN(unsynced)
		}
		if keep == 0 && !f.syncedExists {
			delete(d.files, name) // created after the last Sync and nothing survived
			continue
		}
		durable := f.durable()
		if keep > 0 {
			durable = f.data[:f.syncedLen+keep]
		}
		f.data = append(make([]byte, 0, len(durable)), durable...)
		f.syncedLen = len(f.data)
		f.saved = nil
		f.appendOnly = true
	}
}
