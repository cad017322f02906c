package vfs_test

import (
	"errors"
	"fmt"
	"os"

	"github.com/distkit/distkit/internal/vfs"
)

// A power cut keeps what was fsynced, and a new file's name only once its
// directory was fsynced too.
func ExampleCrashFS() {
	fsys := vfs.NewCrashFS(42)
	vfs.MkdirAllDurable(fsys, "/data")

	f, _ := fsys.OpenFile("/data/synced", os.O_RDWR|os.O_CREATE, 0o644)
	f.Write([]byte("durable"))
	f.Sync()
	fsys.SyncDir("/data") // the name "synced" is durable now

	g, _ := fsys.OpenFile("/data/unsynced-name", os.O_RDWR|os.O_CREATE, 0o644)
	g.Write([]byte("lost"))
	g.Sync() // the data is durable, but not the directory entry

	after := fsys.Crash()
	b, _ := vfs.ReadFile(after, "/data/synced")
	fmt.Printf("synced: %s\n", b)
	_, err := vfs.ReadFile(after, "/data/unsynced-name")
	fmt.Println("unsynced name exists:", !errors.Is(err, os.ErrNotExist))
	_, err = f.Write([]byte("x"))
	fmt.Println("old file after the crash:", err)
	// Output:
	// synced: durable
	// unsynced name exists: false
	// old file after the crash: vfs: file system crashed
}
