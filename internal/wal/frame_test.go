package wal_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/distkit/distkit/internal/wal"
)

func TestDecodeFrame(t *testing.T) {
	good := wal.AppendFrame(nil, []byte("hello"))
	flipped := bytes.Clone(good)
	flipped[len(flipped)-1] ^= 0x01
	badLen := bytes.Clone(good)
	badLen[4] ^= 0x01 // claims 4 bytes: still inside b, caught by the checksum
	huge := bytes.Clone(good)
	huge[7] = 0xff // length > MaxFrameSize
	tests := []struct {
		name        string
		in          []byte
		wantErr     error
		wantPayload string
		wantN       int
	}{
		{"valid", good, nil, "hello", len(good)},
		{"valid with trailing bytes", append(bytes.Clone(good), 1, 2, 3), nil, "hello", len(good)},
		{"empty payload", wal.AppendFrame(nil, nil), nil, "", wal.FrameSize(0)},
		{"empty", nil, wal.ErrTruncated, "", 0},
		{"short header", good[:5], wal.ErrTruncated, "", 0},
		{"short payload", good[:len(good)-1], wal.ErrTruncated, "", 0},
		{"flipped payload bit", flipped, wal.ErrCorrupt, "", 0},
		{"flipped length bit", badLen, wal.ErrCorrupt, "", 0},
		{"length over limit", huge, wal.ErrCorrupt, "", 0},
		{"zero header", make([]byte, 16), wal.ErrCorrupt, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, n, err := wal.DecodeFrame(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("DecodeFrame err = %v; want %v", err, tt.wantErr)
			}
			if string(p) != tt.wantPayload || n != tt.wantN {
				t.Fatalf("DecodeFrame = (%q, n=%d); want (%q, n=%d)", p, n, tt.wantPayload, tt.wantN)
			}
		})
	}
}

// TestSealFrameMatchesAppendFrame checks that encoding in place gives the
// same bytes as AppendFrame, after existing data.
func TestSealFrameMatchesAppendFrame(t *testing.T) {
	prefix := []byte("prefix")
	want := wal.AppendFrame(bytes.Clone(prefix), []byte("payload"))
	buf := bytes.Clone(prefix)
	start := len(buf)
	buf = append(buf, make([]byte, wal.FrameHeaderSize)...)
	buf = append(buf, "payload"...)
	if got := wal.SealFrame(buf, start); !bytes.Equal(got, want) {
		t.Fatalf("SealFrame = %x; want %x", got, want)
	}
}

// TestDecodeFrameTornTail cuts a run of frames at every byte: the frames
// wholly before the cut decode, and the one it cuts reports ErrTruncated.
func TestDecodeFrameTornTail(t *testing.T) {
	payloads := []string{"a", "", "three", "a longer fourth payload"}
	var all []byte
	for _, p := range payloads {
		all = wal.AppendFrame(all, []byte(p))
	}
	for cut := 0; cut <= len(all); cut++ {
		b := all[:cut]
		var got []string
		var err error
		for len(b) > 0 {
			var p []byte
			var n int
			if p, n, err = wal.DecodeFrame(b); err != nil {
				break
			}
			got = append(got, string(p))
			b = b[n:]
		}
		if err != nil && !errors.Is(err, wal.ErrTruncated) {
			t.Fatalf("cut %d: DecodeFrame err = %v; want ErrTruncated", cut, err)
		}
		for i, p := range got {
			if p != payloads[i] {
				t.Fatalf("cut %d: frame %d = %q; want %q", cut, i, p, payloads[i])
			}
		}
	}
}

func FuzzDecodeFrame(f *testing.F) {
	f.Add(wal.AppendFrame(nil, []byte("seed")))
	f.Add(wal.AppendFrame(nil, nil))
	f.Add(wal.AppendFrame(wal.AppendFrame(nil, []byte("x")), []byte("y"))[:12])
	f.Add([]byte{})
	f.Add(make([]byte, 8))
	f.Add([]byte{0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		payload, n, err := wal.DecodeFrame(b)
		if err != nil {
			if !errors.Is(err, wal.ErrCorrupt) && !errors.Is(err, wal.ErrTruncated) {
				t.Fatalf("DecodeFrame error %v is neither ErrCorrupt nor ErrTruncated", err)
			}
			if n != 0 || payload != nil {
				t.Fatalf("DecodeFrame failed with (%d bytes, n=%d); want (nil, 0)", len(payload), n)
			}
			return
		}
		if n > len(b) || n != wal.FrameSize(len(payload)) {
			t.Fatalf("DecodeFrame n = %d for %d bytes and a %d-byte payload", n, len(b), len(payload))
		}
		// A frame that decodes re-encodes to the same bytes.
		if again := wal.AppendFrame(nil, payload); !bytes.Equal(again, b[:n]) {
			t.Fatalf("re-encoding differs:\n got %x\nwant %x", again, b[:n])
		}
	})
}
