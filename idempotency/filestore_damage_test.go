package idempotency

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distkit/distkit/clock"
)

// TestFileStoreTornTailVersusCorruption: a damaged frame with nothing valid
// of a later write batch after it is a torn tail and is cut off; one
// followed by a valid later batch is corruption and OpenFileStore refuses
// it with ErrCorrupt naming the file and offset, as it refuses a frame that
// passes its checksum but does not parse.
func TestFileStoreTornTailVersusCorruption(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewManual(epoch)
	cfg := FileConfig{Clock: clk, CompactMinFrames: 1 << 20}
	src := filepath.Join(t.TempDir(), "log")
	s := mustFileStore(t, src, cfg)
	var ends []int // ends[i] = log size after the i-th Begin (one batch each)
	for i := range 10 {
		p := inProgress(fmt.Sprint("key-", i), "fp", uint64(i+1), clk.Now(), time.Hour)
		if _, created, err := s.Begin(ctx, p); !created || err != nil {
			t.Fatalf("Begin = %v, %v", created, err)
		}
		ends = append(ends, int(s.Stats().LogBytes))
	}
	s.Close()
	orig, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	start := func(i int) int { // offset of the i-th frame
		if i == 0 {
			return len(logMagic)
		}
		return ends[i-1]
	}
	unparsable := appendRecordFrame(nil, framePut, &Record{Key: "bad key with spaces", Status: StatusInProgress})
	tests := []struct {
		name    string
		damage  func(b []byte) []byte
		keep    int // records left after a successful open
		corrupt int // if > 0, the offset OpenFileStore must name in its ErrCorrupt
	}{
		{"flip in a middle frame", func(b []byte) []byte { b[start(4)+12] ^= 0x20; return b }, 0, start(4)},
		{"flip in a middle frame's length", func(b []byte) []byte { b[start(2)+5] ^= 0x01; return b }, 0, start(2)},
		{"flip in the last frame", func(b []byte) []byte { b[start(9)+12] ^= 0x20; return b }, 9, 0},
		{"cut inside the last frame", func(b []byte) []byte { return b[:start(9)+10] }, 9, 0},
		{"zeros after the last frame", func(b []byte) []byte { return append(b, make([]byte, 600)...) }, 10, 0},
		{"valid checksum, bad body", func(b []byte) []byte { return append(b, unparsable...) }, 0, ends[9]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "log")
			if err := os.WriteFile(path, tt.damage(append([]byte(nil), orig...)), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := OpenFileStore(path, cfg)
			if tt.corrupt > 0 {
				if err == nil {
					s.Close()
				}
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), fmt.Sprintf("%s at offset %d", path, tt.corrupt)) {
					t.Fatalf("OpenFileStore = %v; want ErrCorrupt naming %s at offset %d", err, path, tt.corrupt)
				}
				return
			}
			if err != nil {
				t.Fatalf("OpenFileStore = %v; want the torn tail cut off", err)
			}
			defer s.Close()
			if got := s.Stats().Records; got != tt.keep {
				t.Fatalf("records after open = %d; want %d", got, tt.keep)
			}
		})
	}
}
