// Package crashtest is a black-box crash test of examples/kvstore: it builds
// the kvstore binary, runs a three-node cluster as three real processes on
// loopback, drives it with concurrent HTTP clients while it SIGKILLs and
// restarts nodes and SIGSTOP/SIGCONT-pauses the leader, records every
// operation and checks the history for linearizability with porcupine.
//
// TestMembershipWalkthrough runs the README's membership walkthrough with
// real processes (grow 3 -> 5 -> 3 through the admin API, then a rolling
// restart with SIGTERM) and checks linearizability and that no restart
// costs an election timeout.
//
// The package has no API; it is all tests:
//
//	go test ./examples/kvstore/crashtest                   # the short run and the walkthrough (about 40 s)
//	DISTKIT_SOAK=1 go test -timeout 0 ./examples/kvstore/crashtest -run Soak -v
//
// Knobs (environment variables):
//
//	DISTKIT_SOAK=1                 run the soak: DISTKIT_CRASHTEST_RUNS runs (default 20)
//	                               of DISTKIT_CRASHTEST_DURATION (default 60s) each
//	DISTKIT_CRASHTEST_SEED=N       the fault and client schedule's seed (printed by every run)
//	DISTKIT_CRASHTEST_DURATION=D   the fault phase's length (a Go duration)
//	DISTKIT_CRASHTEST_KEEP=1       keep the run directory even when the run passes
//
// What a run checks:
//
//   - Safety: the history of every operation that returned, and of every write
//     whose outcome is unknown (a timeout, a 5xx, a connection that broke after
//     the request was sent), is linearizable against a map of registers (GET,
//     PUT and DELETE per key, DELETE answering the previous value). A write of
//     unknown outcome may have been applied at any time after it was invoked,
//     even after the run ended; porcupine is free to place it or not.
//     Requests whose connection was refused and reads without an answer had
//     no effect and are left out (and counted).
//   - Progress: after the faults stop and every node is running again, a
//     read through each node succeeds within a bound, and the run acknowledged
//     some writes (a run where nothing succeeded proves nothing).
//
// A seed fixes the schedule of faults and client operations, not the run:
// processes, the network and the scheduler still vary, so a failing seed
// reproduces a run's shape rather than the run itself.
//
// On failure the run directory is kept and its path printed. It holds each
// node's log (nN.log; every restart is marked), its data directory, the fault
// schedule (faults.log), the history (history.txt, one operation a line) and
// porcupine's visualization (linearizability.html, open it in a browser; the
// faults appear as annotations on their own row).
//
// The harness manages processes only on Unix-like systems (process groups,
// SIGSTOP); every process it starts is killed when the test ends, pass or
// fail.
package crashtest
