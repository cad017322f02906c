package wal_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/distkit/distkit/internal/wal"
)

func TestDecodeRecord(t *testing.T) {
	good := wal.AppendRecord(nil, 7, []byte("hello"))
	flipped := bytes.Clone(good)
	flipped[len(flipped)-1] ^= 0x01
	badIndex := bytes.Clone(good)
	badIndex[8] ^= 0x01
	huge := bytes.Clone(good)
	huge[7] = 0xff // length > MaxRecordSize
	tests := []struct {
		name    string
		in      []byte
		wantErr error
		wantIdx uint64
		wantN   int
	}{
		{"valid", good, nil, 7, len(good)},
		{"valid with trailing bytes", append(bytes.Clone(good), 1, 2, 3), nil, 7, len(good)},
		{"empty", nil, wal.ErrTruncated, 0, 0},
		{"short header", good[:10], wal.ErrTruncated, 0, 0},
		{"short payload", good[:len(good)-1], wal.ErrTruncated, 0, 0},
		{"flipped payload bit", flipped, wal.ErrCorrupt, 0, 0},
		{"flipped index bit", badIndex, wal.ErrCorrupt, 0, 0},
		{"length over limit", huge, wal.ErrCorrupt, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idx, _, n, err := wal.DecodeRecord(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("DecodeRecord err = %v; want %v", err, tt.wantErr)
			}
			if idx != tt.wantIdx || n != tt.wantN {
				t.Fatalf("DecodeRecord = (%d, n=%d); want (%d, n=%d)", idx, n, tt.wantIdx, tt.wantN)
			}
		})
	}
}

func TestRecordRoundTripEmptyPayload(t *testing.T) {
	b := wal.AppendRecord(nil, 1, nil)
	idx, p, n, err := wal.DecodeRecord(b)
	if err != nil || idx != 1 || len(p) != 0 || n != wal.RecordSize(0) {
		t.Fatalf("DecodeRecord = (%d, %q, %d, %v); want (1, \"\", %d, nil)", idx, p, n, err, wal.RecordSize(0))
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(wal.AppendRecord(nil, 1, []byte("seed")))
	f.Add(wal.AppendRecord(nil, 1<<40, nil))
	f.Add([]byte{})
	f.Add(make([]byte, 16))
	f.Fuzz(func(t *testing.T, b []byte) {
		idx, payload, n, err := wal.DecodeRecord(b)
		if err != nil {
			if !errors.Is(err, wal.ErrCorrupt) && !errors.Is(err, wal.ErrTruncated) {
				t.Fatalf("DecodeRecord error %v is neither ErrCorrupt nor ErrTruncated", err)
			}
			return
		}
		if n > len(b) || n != wal.RecordSize(len(payload)) {
			t.Fatalf("DecodeRecord n = %d for %d bytes and a %d-byte payload", n, len(b), len(payload))
		}
		// A record that decodes re-encodes to the same bytes.
		if again := wal.AppendRecord(nil, idx, payload); !bytes.Equal(again, b[:n]) {
			t.Fatalf("re-encoding differs:\n got %x\nwant %x", again, b[:n])
		}
	})
}
