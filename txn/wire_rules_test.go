package txn_test

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/distkit/distkit/txn"
)

// wireFrame builds a message frame field by field (see the layout in
// wire.go), so that a test can break one field while the rest stay valid.
type wireFrame struct {
	outcome      byte
	coordinator  string
	participants []string
	replicas     []string // appended with its count when not nil
	tail         []byte   // raw bytes after everything
	lenOverride  int      // > 0: the coordinator's length field, whatever its bytes
}

func (f wireFrame) bytes() []byte {
	b := []byte{1, byte(txn.MsgPrepare)}
	b = append(b, someID[:]...)
	b = append(b, f.outcome)
	n := len(f.coordinator)
	if f.lenOverride > 0 {
		n = f.lenOverride
	}
	b = binary.AppendUvarint(b, uint64(n))
	b = append(b, f.coordinator...)
	b = binary.AppendUvarint(b, uint64(len(f.participants)))
	for _, p := range f.participants {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	b = append(b, 0, 0, 0) // data, reason, duration
	if f.replicas != nil {
		b = binary.AppendUvarint(b, uint64(len(f.replicas)))
		for _, p := range f.replicas {
			b = binary.AppendUvarint(b, uint64(len(p)))
			b = append(b, p...)
		}
	}
	b = append(b, f.tail...)
	return slices.Clip(b) // no spare capacity: a slice past the end panics
}

// TestUnmarshalRejectsFields: each field's bound is checked, and a frame
// that breaks one is refused with ErrMalformed (never a panic, never
// decoded into something else), while the same frame within bounds
// decodes.
func TestUnmarshalRejectsFields(t *testing.T) {
	many := make([]string, txn.MaxParticipants+1)
	for i := range many {
		many[i] = "p"
	}
	valid := wireFrame{coordinator: "c", participants: []string{"p1", "p2"}, replicas: []string{"r1"}}
	tests := []struct {
		name string
		f    wireFrame
		ok   bool
	}{
		{"valid", valid, true},
		{"outcome aborted", wireFrame{outcome: byte(txn.Aborted), coordinator: "c", participants: []string{"p1"}}, true},
		{"outcome beyond aborted", wireFrame{outcome: byte(txn.Aborted) + 1, coordinator: "c", participants: []string{"p1"}}, false},
		{"empty participant", wireFrame{coordinator: "c", participants: []string{"p1", ""}}, false},
		{"most participants", wireFrame{coordinator: "c", participants: many[1:]}, true},
		{"too many participants", wireFrame{coordinator: "c", participants: many}, false},
		{"coordinator length past the end", wireFrame{coordinator: "c", lenOverride: 200}, false},
		{"byte after the replicas", wireFrame{coordinator: "c", participants: []string{"p1"}, replicas: []string{"r1"}, tail: []byte{0}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.f.bytes()
			m, err := unmarshalNoPanic(b)
			if tt.ok && err != nil || !tt.ok && !errors.Is(err, txn.ErrMalformed) {
				t.Fatalf("UnmarshalMessage(%x) = %v, %v; want ok = %v (else ErrMalformed)", b, m, err, tt.ok)
			}
		})
	}
}

// unmarshalNoPanic turns a panic of the decoder into an error that is not
// ErrMalformed, so that it fails the test by an assertion.
func unmarshalNoPanic(b []byte) (m txn.Message, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = errors.New("panic")
		}
	}()
	return txn.UnmarshalMessage(b)
}
