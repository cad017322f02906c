package idempotency_test

import (
	"testing"

	"github.com/distkit/distkit/idempotency"
	"github.com/distkit/distkit/internal/zerotest"
)

// TestZeroValuesDoNotPanic calls every exported method on nil pointers and
// zero values of the package's types: each returns an error or a harmless
// zero result, never a panic or a hang.
func TestZeroValuesDoNotPanic(t *testing.T) {
	zerotest.Sweep(t,
		(*idempotency.FileStore)(nil), new(idempotency.FileStore),
		(*idempotency.MemoryStore)(nil), new(idempotency.MemoryStore),
		(*idempotency.Middleware)(nil), new(idempotency.Middleware),
		(*idempotency.Runner[[]byte])(nil), new(idempotency.Runner[[]byte]),
		idempotency.Config{},
		idempotency.FileConfig{},
		idempotency.HTTPConfig{},
		idempotency.MemoryConfig{},
		idempotency.Record{},
		idempotency.Status(0),
		idempotency.Claim{},
		idempotency.BytesCodec{},
		idempotency.StringCodec{},
	)
}
