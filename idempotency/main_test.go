package idempotency

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// soak reports whether long runs were asked for (DISTKIT_SOAK=1).
func soak() bool { return os.Getenv("DISTKIT_SOAK") == "1" }

// forSeeds runs check for seeds 0..n-1 (soakN under DISTKIT_SOAK=1), each as
// a subtest that prints its seed for replay if it fails.
func forSeeds(t *testing.T, n, soakN int, check func(t *testing.T, seed uint64)) {
	t.Helper()
	if soak() {
		n = soakN
	}
	for seed := range n {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("replay with seed %d", seed)
				}
			}()
			check(t, uint64(seed))
		})
	}
}
