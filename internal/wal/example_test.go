package wal_test

import (
	"errors"
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

// Frames carry checksummed payloads without an index, for files such as
// checkpoints; a torn tail is told apart from corruption.
func ExampleDecodeFrame() {
	var file []byte
	file = wal.AppendFrame(file, []byte("first"))
	file = wal.AppendFrame(file, []byte("second"))
	file = file[:len(file)-2] // a crash tore the last write
	for len(file) > 0 {
		payload, n, err := wal.DecodeFrame(file)
		if errors.Is(err, wal.ErrTruncated) {
			fmt.Println("torn tail of", len(file), "bytes")
			break
		}
		fmt.Printf("%s\n", payload)
		file = file[n:]
	}
	// Output:
	// first
	// torn tail of 12 bytes
}
