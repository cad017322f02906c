//go:build race

package detector

// raceEnabled shortens the long simulations under the race detector, which
// slows them tenfold without exploring anything new: the runs are
// deterministic, so the same code paths are exercised either way.
const raceEnabled = true
