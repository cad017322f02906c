package clock

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// seedCount returns how many seeds a property test runs: a short default
// run, and many more with DISTKIT_SOAK=1.
func seedCount(short, soak int) int {
	if os.Getenv("DISTKIT_SOAK") == "1" {
		return soak
	}
	return short
}
