package election_test

import (
	"testing"

	"github.com/distkit/distkit/election"
	"github.com/distkit/distkit/internal/zerotest"
)

// TestZeroValuesDoNotPanic calls every exported method on nil pointers and
// zero values of the package's types: each returns an error or a harmless
// zero result, never a panic or a hang.
func TestZeroValuesDoNotPanic(t *testing.T) {
	zerotest.Sweep(t,
		(*election.BullyCore)(nil), new(election.BullyCore),
		(*election.Node)(nil), new(election.Node),
		(*election.Notifier)(nil), new(election.Notifier),
		(*election.RaftElector)(nil), new(election.RaftElector),
		(*election.RingCore)(nil), new(election.RingCore),
		election.Config{},
		election.RaftConfig{},
		election.Leader{},
		election.Member{},
		election.State{},
	)
}
