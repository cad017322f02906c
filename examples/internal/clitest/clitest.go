// Package clitest checks an example's flag handling the same way for every
// example: no arguments run the demo, -h asks for help (exit 0), and an
// unknown flag or a stray argument is a usage error (exit 2).
package clitest

import (
	"bytes"
	"io"
	"testing"

	"github.com/distkit/distkit/examples/internal/cli"
)

// Check calls parse (an example's flag parser) with each case.
func Check(t *testing.T, parse func(args []string, stderr io.Writer) error) {
	t.Helper()
	tests := []struct {
		args     []string
		wantCode int // -1: accepted
	}{
		{nil, -1},
		{[]string{"-h"}, 0},
		{[]string{"-bogus"}, 2},
		{[]string{"extra"}, 2},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		err := parse(tt.args, &stderr)
		got := -1
		if err != nil {
			got = cli.ExitCode(err)
		}
		if got != tt.wantCode {
			t.Errorf("parse(%q): exit code %d (%v); want %d", tt.args, got, err, tt.wantCode)
		}
		if tt.wantCode >= 0 && !bytes.Contains(stderr.Bytes(), []byte("usage:")) {
			t.Errorf("parse(%q) printed %q; want the usage", tt.args, stderr.String())
		}
	}
}
