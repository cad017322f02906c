// Package detector decides which nodes of a cluster are up: heartbeat
// failure detectors (fixed timeout and φ accrual), and a membership layer
// that probes suspects through other members, as SWIM does, before it
// declares them Failed.
//
// It has three layers; use the one you need.
//
//   - PhiAccrual and FixedTimeout judge one peer from the arrival times of
//     its heartbeats. They are pure (time is an argument, never read), O(1)
//     and allocation-free per heartbeat and per query, and safe for
//     concurrent use.
//   - Membership is the deterministic core for one node: it schedules
//     heartbeats, keeps a detector per member, probes suspects directly and
//     through k other members, refutes rumours about itself with a higher
//     incarnation, and reports Events. No goroutines, no I/O, no clock, no
//     unseeded randomness: it runs unchanged in the sim package (package
//     detectorsim makes it a sim.Node).
//   - Monitor runs a Membership over a transport.Transport with real timers
//     and delivers Events on a channel.
//
// # Usage
//
// A node that watches three peers over any transport:
//
//	mon, err := detector.NewMonitor(tr, detector.DefaultConfig(), detector.MonitorOptions{Logger: logger})
//	if err != nil { … }
//	defer mon.Close()
//	for _, p := range []transport.NodeID{"n2", "n3", "n4"} {
//		if err := mon.AddMember(ctx, p); err != nil { … }
//	}
//	for e := range mon.Events() {
//		log.Printf("%s is %s (phi %.1f)", e.Member, e.Kind, e.Phi) // suspect, failed, recovered…
//	}
//
// A single φ accrual detector fed by your own heartbeats:
//
//	d, _ := detector.NewPhiAccrual(detector.DefaultPhiConfig())
//	d.Heartbeat(arrival)        // on each heartbeat
//	if d.Suspect(time.Now()) {  // φ ≥ 8
//		…
//	}
//
// # Driving a Membership
//
// A Membership does nothing on its own. Its driver (Monitor, a sim.Node, or
// your own event loop) must, calling it from one goroutine at a time:
//
//  1. Call Tick(now) no later than NextTick(); earlier or extra calls are
//     harmless.
//  2. Pass every message that arrives on Service to Receive(now, from,
//     payload). Malformed payloads are rejected with ErrMalformed and
//     change nothing.
//  3. After every Tick, Receive, AddMember or RemoveMember, call Ready and
//     send each Envelope best effort (loss is expected and tolerated), then
//     act on the Events.
//  4. After a crash, start a new Membership. Its incarnation starts at the
//     boot time in Unix nanoseconds, so it outranks its previous life
//     without stable storage. If the wall clock moved back by more than the
//     downtime, its first messages look stale to the others; their next
//     probe carries the old incarnation and the new node refutes past it.
//
// # What a failure detector can and cannot promise
//
// In an asynchronous system a crashed node and a slow one look the same
// from outside: messages can take arbitrarily long. So no detector is both
// complete (every crash is eventually detected) and accurate (no live node
// is ever suspected); that is the core of the FLP impossibility result, and
// Chandra and Toueg's failure detector hierarchy (JACM 1996) names what can
// be had instead. This package promises completeness: a node that stops
// sending is declared Failed by every live member within a bounded time
// (the threshold delay plus ProbeTimeout plus CheckInterval). Accuracy is
// probabilistic: a live node that is cut off, paused or on a lossy path
// for long enough will be declared Failed, and is reported Recovered when
// it is heard from again. Treat Failed as "stop waiting for it", never as
// proof that it stopped acting: a node declared Failed may still be
// running, so anything that must not happen twice needs fencing (see the
// lock package) or consensus.
//
// Speed and accuracy trade against each other. A detector that suspects
// early detects crashes quickly and raises more false suspicions; one that
// waits is rarely wrong and slow. φ accrual (Hayashibara et al., SRDS 2004)
// makes the trade explicit and adaptive: the threshold sets how unlikely a
// late heartbeat must be before it is taken as a failure, and the
// distribution it is judged against is learned from the peer's own
// heartbeats, so the same threshold suits a quiet LAN and a jittery WAN.
// Indirect probes (Das, Gupta and Motivala, SWIM, DSN 2002, §3.1) then buy
// accuracy without giving up speed: before declaring a suspect Failed, the
// node asks k others to reach it, so one bad link or a few lost packets do
// not condemn a live node, and the suspect itself, on hearing the rumour,
// refutes it with a higher incarnation (§4.2), which outranks the rumour
// wherever both are seen. Probes are sent twice within ProbeTimeout, and a
// Failed member is probed through the others again every five heartbeat
// intervals, so a node that can no longer reach this one directly (a
// one-way cut) is still taken back.
//
// # Choosing the parameters
//
// HeartbeatInterval sets the time scale: detection takes a few intervals,
// and the traffic is one small message per member per interval. In
// DefaultConfig, Phi.FirstHeartbeatEstimate, Phi.MaxInterval and
// Timeout.Timeout are left zero and follow it (1, 10 and 3 intervals);
// scale ProbeTimeout (about one interval, enough for two round trips) and
// CheckInterval (a tenth) with it yourself. Raise
// Phi.AcceptablePause to tolerate known pauses (GC, VM migration) and
// Phi.MinStdDev on very regular networks, where σ would otherwise shrink to
// nothing. Keep IndirectProbes at 3 or so; more buys little. Use
// KindFixedTimeout when you need a predictable, explainable bound rather
// than the fastest detection.
//
// φ is −log10 of the probability that a heartbeat would be as late as this
// one if the peer were alive, under the fitted normal distribution:
//
//	threshold  P(false suspicion per judgement)  delay beyond mean + pause
//	   1        10⁻¹   (1 in 10)                 1.28 σ
//	   2        10⁻²                              2.33 σ
//	   3        10⁻³                              3.09 σ
//	   5        10⁻⁵                              4.27 σ
//	   8        10⁻⁸   (the default)              5.61 σ
//	  12        10⁻¹²                             7.03 σ
//	  16        10⁻¹⁶                             8.22 σ
//
// Read these probabilities with care: the normal model knows nothing of
// message loss, so on a network that loses 1 % of packets a lost heartbeat
// is a 10⁻² event that φ scores far above 8. That is why suspicion is
// followed by probes here, and why Failed needs the probes to fail too.
//
// # Measured
//
// Produced by TestDetectionTable (DISTKIT_DETECTOR_TABLE=1 go test -run
// TestDetectionTable -v ./detector): 8 nodes in the simulator, heartbeats
// every 1 s ± 20 %, 1 % loss, 1–10 ms latency, 10,000 simulated seconds;
// one node crashes every 100 s and restarts 30 s later (100 crashes, 700
// detections per row). Latency is from the crash to each live node's
// Failed verdict; "missed" counts (crash, observer) pairs with no verdict
// before the restart; "false" verdicts are about running nodes, out of
// 560,000 heartbeats per row. Default settings otherwise (ProbeTimeout 1 s,
// CheckInterval 100 ms, no acceptable pause); k is IndirectProbes; the
// fixed-timeout rows use a 3 s timeout and 3 confirmations, probed once
// per interval. The last four rows add one bad link.
//
//	detector                      latency p50  p99    missed  false Failed  false Suspect
//	phi 1,  k=3                   1.7 s        2.2 s  0       0             28994
//	phi 3,  k=3                   1.9 s        2.4 s  0       0              4605
//	phi 8,  k=3 (default)         2.3 s        2.8 s  0       0              3853
//	phi 12, k=3                   2.5 s        3.2 s  0       0              2482
//	fixed 3 s ×3, k=3             6.1 s        7.2 s  0       0                 0
//	phi 1,  k=0                   1.8 s        2.2 s  0       0             35303
//	phi 3,  k=0                   2.0 s        2.4 s  0       0              5047
//	phi 8,  k=0                   2.4 s        2.8 s  0       0              4418
//	phi 12, k=0                   2.6 s        3.2 s  0       0              2662
//	fixed 3 s ×3, k=0             6.1 s        7.0 s  0       0                 0
//	phi 8, k=3, 30 % loss n1↔n2   2.2 s        5.7 s  0       0              4043
//	phi 8, k=0, 30 % loss n1↔n2   2.4 s        6.2 s  0       4              4395
//	phi 8, k=3, n2→n1 cut         2.1 s        2.7 s  0       0              6891
//	phi 8, k=0, n2→n1 cut         2.3 s        2.8 s  13      14             4308
//
// What it shows. On the uniform network every crash is detected by every
// live node within 3.2 s at p99 with φ accrual and 7.2 s with the fixed
// timeout, which never suspects anyone on this network but is twice as
// slow. At φ ≥ 3 nearly
// every suspicion is one lost heartbeat (about 0.7 % of them): φ's
// probabilities assume no loss (see above). A suspicion costs a ping and k
// ping requests, sent twice, and is refuted within a round trip, so on a
// uniformly lossy network even k = 0 made no false Failed verdict. The
// indirect probes earn their keep on a bad path: over a link losing 30 %,
// or cut in one direction, probing only directly condemns live nodes
// (4 and 14 false verdicts; with the cut, n1 holds n2 Failed all along and
// so "misses" its real crashes), while k = 3 reaches them through others
// and never errs. φ's adaptation shows on the flaky link too: it learns
// the longer gaps and waits longer there (p99 5.7 s) instead of raising
// false alarms. An AcceptablePause of one interval would remove most
// suspicions at the price of one interval of latency.
//
// # Concurrency
//
// PhiAccrual and FixedTimeout are safe for concurrent use. A Membership is
// not; its driver serializes calls. A Monitor is safe for concurrent use;
// it owns two goroutines (one ticks the core, one delivers events), and
// Close stops them and waits. A reader that stops draining Events never
// blocks detection: past MonitorOptions.EventBuffer undelivered events, the
// oldest are dropped and counted.
//
// # Fault model
//
// Crash-stop and crash-recover nodes; a network that loses, duplicates,
// delays and reorders messages, and partitions that heal. Each message is
// stamped with its sender's (incarnation, sequence), so duplicates and
// delayed copies are recognised and carry no weight, and old rumours lose
// to newer incarnations. Byzantine nodes are out of scope: a member can lie
// about itself or relay false acknowledgements about others.
//
// # Tests
//
// The default test run simulates 1,000 seconds for the no-false-failure
// property (about 450 suspicions, each refuted) and 200 seconds per row of
// the detection table (two crashes per row), so that the package stays
// quick under the race detector; DISTKIT_SOAK=1 runs the full
// 10,000 seconds, the full table and 50 times as many seeds of each
// scenario. DISTKIT_SEED=N replays one seed. Every simulation runs under
// an event budget (sim.Config.MaxEvents), so a broken rule that makes the
// cores busy-loop fails with the seed and the step instead of hanging.
//
// Clocks: a Membership measures only intervals between arrivals on its
// own clock, so clock offsets between nodes never matter, and a member
// whose clock runs slow or fast just heartbeats at a different rate, which
// φ learns. TestSimClockSkew runs 8 nodes with offsets of up to an hour
// and rates up to 5% apart (sim.Clock): no false Failed verdict, and
// crashes still detected within 10 s.
package detector
