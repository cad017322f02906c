package idempotency

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// soak reports whether long runs were asked for (DISTKIT_SOAK=1).
func soak() bool { return os.Getenv("DISTKIT_SOAK") == "1" }
