//go:build !race

package txn_test

// raceEnabled reports whether the test binary runs under the race
// detector (see bubble).
const raceEnabled = false
