package txn_test

import (
	"testing"

	"github.com/distkit/distkit/txn"
	"github.com/distkit/distkit/txn/rmtest"
)

// TestStoreContract runs the exported ResourceManager contract (rmtest)
// against the built-in Store. Its durable state is the Participant's log,
// so a restart is an empty Store that Recover fills.
func TestStoreContract(t *testing.T) {
	rmtest.Run(t, rmtest.Harness{Open: func(t *testing.T) rmtest.Instance {
		cur := txn.NewStore()
		return rmtest.Instance{
			RM: cur,
			Get: func(t *testing.T, key string) (int64, bool) {
				return cur.Get(key)
			},
			Restart: func(t *testing.T) txn.ResourceManager {
				cur = txn.NewStore()
				return cur
			},
		}
	}})
}
