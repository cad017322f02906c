//go:build race

package sim_test

// raceEnabled is set when the race detector (which slows the event loop
// about fifty times) is on, so the long tests can shorten themselves.
const raceEnabled = true
