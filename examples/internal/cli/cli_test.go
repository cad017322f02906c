package cli

import (
	"bytes"
	"flag"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantErr   bool
		wantCode  int
		wantUsage bool
	}{
		{"no arguments", nil, false, 0, false},
		{"a known flag", []string{"-seed", "3"}, false, 0, false},
		{"help", []string{"-h"}, true, 0, true},
		{"unknown flag", []string{"-bogus"}, true, 2, true},
		{"stray argument", []string{"extra"}, true, 2, true},
		{"argument after a flag", []string{"-seed", "3", "extra"}, true, 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			fs := flag.NewFlagSet("demo", flag.ContinueOnError)
			fs.SetOutput(&out)
			fs.Int("seed", 1, "seed")
			fs.Usage = func() { out.WriteString("usage: demo\n") }
			err := Parse(fs, tt.args)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Parse(%q) = %v; want error %v", tt.args, err, tt.wantErr)
			}
			if err != nil && ExitCode(err) != tt.wantCode {
				t.Errorf("ExitCode(%v) = %d; want %d", err, ExitCode(err), tt.wantCode)
			}
			if got := strings.Contains(out.String(), "usage: demo"); got != tt.wantUsage {
				t.Errorf("Parse(%q) printed %q; usage shown = %v, want %v", tt.args, out.String(), got, tt.wantUsage)
			}
		})
	}
}
