//go:build !unix

package vfs

import (
	"io"
	"os"
)

// lockFile creates name and holds it open, but takes no OS lock: on this
// platform a second opener is not refused. Closing releases nothing more.
func lockFile(name string) (io.Closer, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	return f, nil
}
