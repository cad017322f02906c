package sim

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Environment variables read by Seeds.
const (
	// EnvSeed, when set to an integer, makes Seeds run only that seed, to
	// replay a failure.
	EnvSeed = "DISTKIT_SEED"
	// EnvSoak, when set to 1, makes Seeds run SoakFactor times as many
	// seeds, starting from a random base that is logged.
	EnvSoak = "DISTKIT_SOAK"
)

// SoakFactor is how many times more seeds Seeds runs under DISTKIT_SOAK=1.
const SoakFactor = 50

// Seeds runs fn once per seed as subtests named "seed=N", for a property
// that must hold whatever the seed. By default it runs seeds 1..n, so a
// plain `go test` is repeatable. Under DISTKIT_SOAK=1 it runs n*SoakFactor
// seeds starting from a random base, to explore; under DISTKIT_SEED=N it
// runs only seed N.
//
// It stops at the first failing seed and logs how to replay it:
//
//	replay with: DISTKIT_SEED=N go test -run '^TestName$'
//
// A panic inside fn fails that seed (with the stack) instead of killing the
// test binary, so the replay line is still printed.
func Seeds(t *testing.T, n int, fn func(t *testing.T, seed int64)) {
	t.Helper()
	if v := os.Getenv(EnvSeed); v != "" {
		seed, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("sim: %s=%q is not an integer: %v", EnvSeed, v, err)
		}
		runSeed(t, seed, fn)
		return
	}
	first := int64(1)
	if os.Getenv(EnvSoak) == "1" {
		n *= SoakFactor
		first = time.Now().UnixNano() & (1<<40 - 1) // exploring, so the wall clock is fine
		t.Logf("sim: soak: %d seeds from %d", n, first)
	}
	for seed := first; seed < first+int64(n); seed++ {
		if !runSeed(t, seed, fn) {
			return
		}
	}
}

func runSeed(t *testing.T, seed int64, fn func(t *testing.T, seed int64)) bool {
	t.Helper()
	ok := t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
		defer func() {
			if r := recover(); r != nil {
				t.Errorf("panic: %v\n%s", r, debug.Stack())
			}
		}()
		fn(t, seed)
	})
	if !ok {
		t.Errorf("replay with: %s=%d go test -run '%s'", EnvSeed, seed, runPattern(t.Name()))
	}
	return ok
}

// runPattern turns a test name such as "TestX/case" into a -run pattern that
// selects exactly it.
func runPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + p + "$"
	}
	return strings.Join(parts, "/")
}
