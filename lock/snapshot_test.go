package lock_test

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/distkit/distkit/lock"
)

// snapSession and snapLock are the fields of a snapshot's records, written
// by rawSnapshot as Table.Snapshot lays them out, without its invariants.
type snapSession struct {
	id           uint64
	ttl, expires int64
}

type snapLock struct {
	name          string
	holder, token uint64
	delayUntil    int64
	waiters       []uint64
}

func rawSnapshot(version, lastToken uint64, sessions []snapSession, locks []snapLock) []byte {
	b := binary.AppendUvarint(nil, version)
	b = binary.AppendVarint(b, t0.UnixNano())
	b = binary.AppendUvarint(b, lastToken)
	b = binary.AppendUvarint(b, uint64(len(sessions)))
	for _, s := range sessions {
		b = binary.AppendUvarint(b, s.id)
		b = binary.AppendUvarint(b, 1)
		b = append(b, 'o')
		b = binary.AppendVarint(b, s.ttl)
		b = binary.AppendVarint(b, s.expires)
	}
	b = binary.AppendUvarint(b, uint64(len(locks)))
	for _, l := range locks {
		b = binary.AppendUvarint(b, uint64(len(l.name)))
		b = append(b, l.name...)
		b = binary.AppendUvarint(b, l.holder)
		b = binary.AppendUvarint(b, l.token)
		b = binary.AppendVarint(b, l.delayUntil)
		b = binary.AppendUvarint(b, uint64(len(l.waiters)))
		for _, w := range l.waiters {
			b = binary.AppendUvarint(b, w)
		}
	}
	return b
}

// TestRestoreRejectsInconsistentSnapshots: Restore refuses, with
// ErrCorrupt and without changing the table, a well-formed snapshot whose
// state breaks the table's invariants; restored, each would break a
// promise (a token handed out twice, a lock held by nobody the service
// can expire, a waiter that can never be granted).
func TestRestoreRejectsInconsistentSnapshots(t *testing.T) {
	exp := t0.UnixNano() + int64(ttl)
	two := []snapSession{{1, int64(ttl), exp}, {2, int64(ttl), exp}}
	held := snapLock{name: "x", holder: 1, token: 5, waiters: []uint64{2}}
	tests := []struct {
		name     string
		version  uint64
		last     uint64
		sessions []snapSession
		locks    []snapLock
	}{
		{"a version from the future", 2, 5, two, []snapLock{held}},
		{"a token above the counter", 1, 4, two, []snapLock{held}},
		{"a holder that is no session", 1, 5, two, []snapLock{{name: "x", holder: 3, token: 5}}},
		{"a holder without a token", 1, 5, two, []snapLock{{name: "x", holder: 1}}},
		{"a token without a holder", 1, 5, two, []snapLock{{name: "x", token: 5, delayUntil: exp}}},
		{"a held lock in lock-delay", 1, 5, two, []snapLock{{name: "x", holder: 1, token: 5, delayUntil: exp}}},
		{"a free lock not in lock-delay", 1, 5, two, []snapLock{{name: "x", waiters: []uint64{2}}}},
		{"a waiter that is no session", 1, 5, two, []snapLock{{name: "x", holder: 1, token: 5, waiters: []uint64{3}}}},
		{"the holder waiting for its own lock", 1, 5, two, []snapLock{{name: "x", holder: 1, token: 5, waiters: []uint64{1}}}},
		{"a waiter queued twice", 1, 5, two, []snapLock{{name: "x", holder: 1, token: 5, waiters: []uint64{2, 2}}}},
		{"a lock listed twice", 1, 5, two, []snapLock{held, held}},
		{"an empty lock name", 1, 5, two, []snapLock{{holder: 1, token: 5}}},
		{"session 0", 1, 5, []snapSession{{0, int64(ttl), exp}}, nil},
		{"a session without a TTL", 1, 5, []snapSession{{1, 0, exp}}, nil},
		{"a session listed twice", 1, 5, []snapSession{{1, int64(ttl), exp}, {1, int64(ttl), exp}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := newTestTable(t, 0, 1)
			before := tbl.Snapshot()
			b := rawSnapshot(tt.version, tt.last, tt.sessions, tt.locks)
			if err := tbl.Restore(b); !errors.Is(err, lock.ErrCorrupt) {
				t.Errorf("Restore(%x) = %v; want ErrCorrupt", b, err)
			}
			if after := tbl.Snapshot(); string(after) != string(before) {
				t.Errorf("a refused Restore changed the table")
			}
		})
	}
	// The same encoder, with the invariants kept, gives a snapshot Restore
	// accepts: the refusals above are the invariants', not the encoding's.
	tbl := newTestTable(t, 0, 0)
	if err := tbl.Restore(rawSnapshot(1, 5, two, []snapLock{held})); err != nil {
		t.Fatalf("Restore(a consistent snapshot) = %v", err)
	}
	if got, want := holder(tbl, "x"), "s1 t5"; got != want {
		t.Errorf("restored holder of x = %s; want %s", got, want)
	}
}
