package idempotency

import (
	"bytes"
	"testing"
	"time"

	"github.com/distkit/distkit/internal/wal"
)

// FuzzDecodeFrame feeds arbitrary bytes to the log decoder. It must never
// panic, and a frame it accepts must re-encode to exactly the bytes it
// consumed (so recovery cannot invent or alter a record).
func FuzzDecodeFrame(f *testing.F) {
	at := time.Unix(1700000000, 123)
	rec := Record{Key: "order-1", Status: StatusCompleted, Token: 42, Fingerprint: "fp",
		Result: []byte(`{"ok":true}`), Created: at, Expires: at.Add(time.Hour)}
	f.Add(appendRecordFrame(nil, framePut, &rec))
	f.Add(appendRecordFrame(nil, frameComplete, &rec))
	rec.Status, rec.Failed, rec.Result = StatusInProgress, false, nil
	f.Add(appendRecordFrame(nil, framePut, &rec))
	f.Add(appendAbortFrame(nil, "order-1", 42))
	f.Add([]byte{})
	f.Add(wal.AppendFrame(nil, []byte{frameAbort, 1, 'k'}))
	f.Add([]byte{0, 0, 0, 0, 1, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFrameRoundTrip(t, data)
		// Also treat the input as a body with a valid checksum, so the
		// fuzzer reaches the parser without having to forge CRCs.
		if len(data) > 0 && len(data) <= wal.MaxFrameSize {
			checkFrameRoundTrip(t, wal.AppendFrame(nil, data))
		}
	})
}

func checkFrameRoundTrip(t *testing.T, data []byte) {
	t.Helper()
	e, n, err := decodeFrame(data)
	if err != nil {
		return
	}
	if n <= 0 || n > len(data) {
		t.Fatalf("decodeFrame consumed %d of %d bytes", n, len(data))
	}
	var again []byte
	if e.kind == frameAbort {
		again = appendAbortFrame(nil, e.rec.Key, e.rec.Token)
	} else {
		again = appendRecordFrame(nil, e.kind, &e.rec)
	}
	if !bytes.Equal(again, data[:n]) {
		t.Fatalf("re-encoding changed the frame:\n got %x\nwant %x", again, data[:n])
	}
}

func TestDecodeFrameRejects(t *testing.T) {
	rec := Record{Key: "k", Status: StatusCompleted, Token: 1, Created: time.Unix(1, 0), Expires: time.Unix(2, 0)}
	good := appendRecordFrame(nil, framePut, &rec)
	flip := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 1; return b }
	// reseal recomputes the checksum so the body checks are reached.
	reseal := func(body []byte) []byte {
		return wal.AppendFrame(nil, body)
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"short header", good[:5]},
		{"cut body", good[:len(good)-1]},
		{"bad checksum", flip(len(good) - 1)},
		{"zero length", make([]byte, 16)},
		{"huge length", []byte{0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}},
		{"empty body", wal.AppendFrame(nil, nil)},
		{"unknown type", reseal([]byte{9, 1, 'k', 0, 0, 0, 0, 0, 0, 0, 0})},
		{"bad key", reseal(append([]byte{frameAbort, 2, 'a', ' '}, make([]byte, 8)...))},
		{"empty key", reseal(append([]byte{frameAbort, 0}, make([]byte, 8)...))},
		{"trailing bytes", reseal(append(append([]byte{frameAbort, 1, 'k'}, make([]byte, 8)...), 0))},
		{"bad status", reseal(append([]byte{framePut, 1, 'k', 7, 0}, make([]byte, 26)...))},
		{"complete not completed", reseal(append([]byte{frameComplete, 1, 'k', 1, 0}, make([]byte, 26)...))},
		{"unknown flag", reseal(append([]byte{framePut, 1, 'k', 2, 8}, make([]byte, 26)...))},
		{"key longer than the body", reseal([]byte{frameAbort, 0x7f, 'k'})},
		{"token cut short", reseal([]byte{frameAbort, 1, 'k', 0, 0, 0})},
		{"times cut short", reseal([]byte{framePut, 1, 'k', 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if p := recover(); p != nil {
					t.Errorf("decodeFrame(%x) panicked: %v; want an error", tt.data, p)
				}
			}()
			if e, n, err := decodeFrame(tt.data); err == nil {
				t.Errorf("decodeFrame(%x) = %+v, %d, nil; want an error", tt.data, e, n)
			}
		})
	}
	if _, n, err := decodeFrame(good); err != nil || n != len(good) {
		t.Fatalf("decodeFrame(good) = %d, %v; want %d, nil", n, err, len(good))
	}
}
