package tcp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

func encodeFrame(service string, payload []byte) []byte {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	writeFrame(w, service, payload)
	w.Flush()
	return buf.Bytes()
}

func TestFrameRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		service string
		payload []byte
	}{
		{"empty payload", "raft", nil},
		{"empty service", "", []byte("x")},
		{"small", "detector", []byte("heartbeat")},
		{"max service", strings.Repeat("s", maxServiceLen), []byte{1, 2, 3}},
		{"larger than one body chunk", "big", bytes.Repeat([]byte{7}, 3*bodyChunk+5)},
	}
	var stream []byte
	for _, tt := range tests {
		stream = append(stream, encodeFrame(tt.service, tt.payload)...)
	}
	fr := frameReader{r: bufio.NewReader(bytes.NewReader(stream)), max: 1 << 20}
	for _, tt := range tests {
		service, payload, err := fr.next()
		if err != nil || service != tt.service || !bytes.Equal(payload, tt.payload) {
			t.Errorf("%s: next() = %q, %d bytes, %v; want %q, %d bytes, nil", tt.name, service, len(payload), err, tt.service, len(tt.payload))
		}
	}
	if _, _, err := fr.next(); err != io.EOF {
		t.Errorf("next() at the end = %v; want io.EOF", err)
	}
}

func TestFrameErrors(t *testing.T) {
	header := func(n uint32, rest ...byte) []byte {
		return append(binary.BigEndian.AppendUint32(nil, n), rest...)
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty body", header(0), errMalformedFrame},
		{"over the limit", header(4097), errFrameTooLarge},
		{"claims 4 GiB", header(1<<32 - 1), errFrameTooLarge},
		{"service longer than body", header(3, 5, 'a', 'b'), errMalformedFrame},
		{"truncated header", []byte{0, 0}, io.ErrUnexpectedEOF},
		{"truncated service", header(10, 5, 'a'), io.ErrUnexpectedEOF},
		{"truncated payload", header(10, 1, 'a', 'b'), io.ErrUnexpectedEOF},
		{"missing service length", header(10), io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fr := frameReader{r: bufio.NewReader(bytes.NewReader(tt.in)), max: 4096}
			if _, _, err := fr.next(); !errors.Is(err, tt.want) {
				t.Errorf("next(%x) = %v; want %v", tt.in, err, tt.want)
			}
		})
	}
}

// TestFrameLimitBoundary checks that a frame whose body is exactly the
// limit is read, and one byte more is refused, so that both ends agree on
// what MaxFrameSize allows.
func TestFrameLimitBoundary(t *testing.T) {
	const limit = 4096
	tests := []struct {
		name string
		body int // service-name length byte + "svc" + payload
		want error
	}{
		{"one below the limit", limit - 1, nil},
		{"at the limit", limit, nil},
		{"one over the limit", limit + 1, errFrameTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload := bytes.Repeat([]byte{9}, tt.body-1-len("svc"))
			fr := frameReader{r: bufio.NewReader(bytes.NewReader(encodeFrame("svc", payload))), max: limit}
			service, got, err := fr.next()
			if !errors.Is(err, tt.want) {
				t.Fatalf("next() of a %d-byte body with limit %d = %v; want %v", tt.body, limit, err, tt.want)
			}
			if err == nil && (service != "svc" || !bytes.Equal(got, payload)) {
				t.Errorf("next() = %q, %d bytes; want %q, %d bytes", service, len(got), "svc", len(payload))
			}
		})
	}
}

// TestFrameClaimDoesNotAllocate checks that a frame claiming a huge body
// that never arrives costs memory in proportion to the bytes received, not
// to the claim.
func TestFrameClaimDoesNotAllocate(t *testing.T) {
	in := append(binary.BigEndian.AppendUint32(nil, 512<<20), 1, 's')
	in = append(in, make([]byte, 1000)...)
	fr := frameReader{r: bufio.NewReader(bytes.NewReader(in)), max: 1 << 30}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := fr.next()
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("next() = %v; want io.ErrUnexpectedEOF", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("reading a truncated 512 MiB frame allocated %d bytes; want under 1 MiB", got)
	}
}

// FuzzReadFrame checks that the frame decoder never panics, and that the
// frames it accepts re-encode to exactly the bytes they were read from.
func FuzzReadFrame(f *testing.F) {
	f.Add(encodeFrame("raft", []byte("entry")))
	f.Add(append(encodeFrame("a", nil), encodeFrame("bb", []byte{1, 2})...))
	f.Add(binary.BigEndian.AppendUint32(nil, 1<<31))
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		fr := frameReader{r: bufio.NewReader(bytes.NewReader(in)), max: 4096}
		consumed := 0
		for {
			service, payload, err := fr.next()
			if err != nil {
				return
			}
			enc := encodeFrame(service, payload)
			if !bytes.Equal(enc, in[consumed:consumed+len(enc)]) {
				t.Fatalf("frame %q/%x re-encodes as %x; read from %x", service, payload, enc, in[consumed:consumed+len(enc)])
			}
			consumed += len(enc)
		}
	})
}
