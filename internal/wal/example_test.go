package wal_test

import (
	"fmt"
	"os"

	"github.com/distkit/distkit/internal/wal"
)

func Example() {
	dir, _ := os.MkdirTemp("", "wal-example")
	defer os.RemoveAll(dir)

	log, _ := wal.Open(dir, wal.DefaultOptions())
	last, _ := log.Append([]byte("set x=1"), []byte("set y=2")) // one fsync
	fmt.Println("last index:", last)
	log.Close()

	// After a restart, replay what is on disk.
	log, _ = wal.Open(dir, wal.DefaultOptions())
	defer log.Close()
	log.Replay(log.FirstIndex(), func(index uint64, rec []byte) error {
		fmt.Printf("%d: %s\n", index, rec)
		return nil
	})
	// Output:
	// last index: 2
	// 1: set x=1
	// 2: set y=2
}
