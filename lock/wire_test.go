package lock_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/distkit/distkit/lock"
)

// rawRequest encodes the fields of a request as AppendRequest lays them
// out, without its checks: op, session, name, owner, TTL, token.
func rawRequest(op uint64, name, owner string) []byte {
	b := binary.AppendUvarint(nil, op)
	b = binary.AppendUvarint(b, 7)
	b = binary.AppendUvarint(b, uint64(len(name)))
	b = append(b, name...)
	b = binary.AppendUvarint(b, uint64(len(owner)))
	b = append(b, owner...)
	b = binary.AppendVarint(b, 100)
	return binary.AppendUvarint(b, 3)
}

// decodeRequest calls lock.DecodeRequest and turns a panic into an error,
// so a decoder that panics on bad input fails the test by its assertion.
func decodeRequest(b []byte) (req lock.Request, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("DecodeRequest panicked: %v", r)
		}
	}()
	return lock.DecodeRequest(b)
}

// TestDecodeRequestRejectsMalformed: a service decodes requests from the
// network, so every malformed one fails with ErrCorrupt (never a panic),
// and the limits that keep one request from growing the table hold.
func TestDecodeRequestRejectsMalformed(t *testing.T) {
	good := rawRequest(uint64(lock.OpAcquire), "x", "n1")
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"op 0", rawRequest(0, "x", "n1")},
		{"the internal tick", rawRequest(uint64(lock.OpHolder)+1, "x", "n1")},
		{"an unknown op", rawRequest(uint64(lock.OpHolder)+2, "x", "n1")},
		{"a name over MaxNameLen", rawRequest(uint64(lock.OpAcquire), strings.Repeat("n", lock.MaxNameLen+1), "")},
		{"an owner over MaxOwnerLen", rawRequest(uint64(lock.OpOpen), "", strings.Repeat("o", lock.MaxOwnerLen+1))},
		{"a name running past the end", append(binary.AppendUvarint([]byte{byte(lock.OpAcquire), 7}, 50), "short"...)},
		{"a trailing byte", append(good[:len(good):len(good)], 0)},
		{"truncated", good[:len(good)-1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if req, err := decodeRequest(tt.b); !errors.Is(err, lock.ErrCorrupt) {
				t.Errorf("DecodeRequest(%x) = %+v, %v; want ErrCorrupt", tt.b, req, err)
			}
		})
	}
	want := lock.Request{Op: lock.OpAcquire, Session: 7, Name: "x", Owner: "n1", TTL: 100, Token: 3}
	if req, err := decodeRequest(good); err != nil || req != want {
		t.Errorf("DecodeRequest(good) = %+v, %v; want %+v", req, err, want)
	}
	atLimit := rawRequest(uint64(lock.OpAcquire), strings.Repeat("n", lock.MaxNameLen), strings.Repeat("o", lock.MaxOwnerLen))
	if _, err := decodeRequest(atLimit); err != nil {
		t.Errorf("DecodeRequest(name and owner at their limits) = %v; want success", err)
	}
}
