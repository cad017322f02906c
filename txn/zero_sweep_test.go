package txn_test

import (
	"testing"

	"github.com/distkit/distkit/internal/zerotest"
	"github.com/distkit/distkit/txn"
)

// TestZeroValuesDoNotPanic calls every exported method on nil pointers and
// zero values of the package's types: each returns an error or a harmless
// zero result, never a panic or a hang.
func TestZeroValuesDoNotPanic(t *testing.T) {
	zerotest.Sweep(t,
		(*txn.Coordinator)(nil), new(txn.Coordinator),
		(*txn.ReplicatedCoordinator)(nil), new(txn.ReplicatedCoordinator),
		(*txn.FileLog)(nil), new(txn.FileLog),
		(*txn.MemoryLog)(nil), new(txn.MemoryLog),
		(*txn.Participant)(nil), new(txn.Participant),
		(*txn.RawCoordinator)(nil), new(txn.RawCoordinator),
		(*txn.RawParticipant)(nil), new(txn.RawParticipant),
		(*txn.Store)(nil), new(txn.Store),
		txn.Config{},
		txn.AbortError{},
		txn.Message{},
		txn.Op{},
		txn.Work{},
		txn.Record{},
		txn.Envelope{},
	)
}
