package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/distkit/distkit/detector"
)

// The textbook's heartbeat detectors (§6.3) next to φ-accrual, on one
// timeline: heartbeats with ±20 % jitter and 1 % loss, a 4-second
// GC-like pause of the peer (alive, but silent) at 60 s, and a real crash
// at 100 s. Each detector is fed the heartbeats its own sender would send
// and checked at its own cadence; the same seed gives the same trace.

const (
	pauseAt   = 60 * time.Second
	pauseLen  = 4 * time.Second
	crashAt   = 100 * time.Second
	traceEnd  = 130 * time.Second
	lossRate  = 0.01
	jitterPct = 0.2
)

// setup is one detector configuration of the comparison.
type setup struct {
	name     string
	interval time.Duration // the sender's heartbeat interval
	check    time.Duration // how often the detector is consulted
	fixed    *detector.TimeoutConfig
}

// outcome is what one setup did over the trace.
type outcome struct {
	falseSuspicions int           // Alive → Suspect while the peer was alive
	falseFailures   int           // → Failed while the peer was alive
	suspectAfter    time.Duration // crash → first Suspect (or Failed); -1 if never
	failedAfter     time.Duration // crash → Failed; -1 if never (φ alone never says Failed)
}

// heartbeats returns the arrival times of the heartbeats a sender with the
// given interval gets through: jittered, 1 % lost, none during the pause
// and none after the crash.
func heartbeats(seed uint64, interval time.Duration) []time.Duration {
	rng := rand.New(rand.NewPCG(seed, uint64(interval)))
	var out []time.Duration
	for t := time.Duration(0); t < crashAt; {
		jitter := 1 + jitterPct*(2*rng.Float64()-1)
		t += time.Duration(float64(interval) * jitter)
		if t >= crashAt {
			break
		}
		if t >= pauseAt && t < pauseAt+pauseLen {
			t = pauseAt + pauseLen // the paused process sends nothing until it resumes
		}
		if rng.Float64() < lossRate {
			continue
		}
		out = append(out, t)
	}
	return out
}

// play feeds one setup its heartbeats and checks it at its cadence.
func play(seed uint64, s setup, threshold float64) (outcome, error) {
	epoch := time.Unix(0, 0)
	beats := heartbeats(seed, s.interval)
	var fixed *detector.FixedTimeout
	var phi *detector.PhiAccrual
	var err error
	if s.fixed != nil {
		fixed, err = detector.NewFixedTimeout(*s.fixed)
	} else {
		cfg := detector.DefaultPhiConfig()
		cfg.Threshold = threshold
		cfg.FirstHeartbeatEstimate = s.interval
		phi, err = detector.NewPhiAccrual(cfg)
	}
	if err != nil {
		return outcome{}, err
	}
	o := outcome{suspectAfter: -1, failedAfter: -1}
	prev := detector.Alive
	next := 0
	for now := s.check; now <= traceEnd; now += s.check {
		for next < len(beats) && beats[next] <= now {
			if fixed != nil {
				fixed.Heartbeat(epoch.Add(beats[next]))
			} else {
				phi.Heartbeat(epoch.Add(beats[next]))
			}
			next++
		}
		var st detector.Status
		if fixed != nil {
			st = fixed.Probe(epoch.Add(now))
		} else if phi.Suspect(epoch.Add(now)) {
			st = detector.Suspect
		} else {
			st = detector.Alive
		}
		alive := now < crashAt
		switch {
		case st == prev:
		case alive && st == detector.Suspect && prev == detector.Alive:
			o.falseSuspicions++
		case alive && st == detector.Failed:
			o.falseFailures++
		}
		if !alive && st != detector.Alive && o.suspectAfter < 0 {
			o.suspectAfter = now - crashAt
		}
		if !alive && st == detector.Failed && o.failedAfter < 0 {
			o.failedAfter = now - crashAt
		}
		prev = st
	}
	return o, nil
}

// compareDetectors prints the textbook's fixed-timeout setups and φ side by
// side on the same trace.
func compareDetectors(out io.Writer, seed int64) error {
	oneSec := detector.TimeoutConfig{Timeout: 3 * time.Second, Confirmations: 3, RecoveryConfirmations: 2}
	twoSec := detector.TimeoutConfig{Timeout: 6 * time.Second, Confirmations: 3, RecoveryConfirmations: 3}
	setups := []setup{
		{name: "fixed: 1 s beats, 3 s timeout", interval: time.Second, check: time.Second, fixed: &oneSec},
		{name: "fixed: 2 s beats, 6 s timeout", interval: 2 * time.Second, check: 2 * time.Second, fixed: &twoSec},
		{name: "φ-accrual: 1 s beats, φ ≥ 8", interval: time.Second, check: 250 * time.Millisecond},
	}
	fmt.Fprintln(out, "\n== the textbook's fixed timeouts next to φ, on one trace ==")
	fmt.Fprintf(out, "  heartbeats ±%.0f%% jitter, %.0f%% lost; the peer pauses (GC) for %v at %v, then crashes at %v (seed %d)\n",
		100*jitterPct, 100*lossRate, pauseLen, pauseAt, crashAt, seed)
	fmt.Fprintln(out, "  fixed timeouts: Failed after 3 missed probes in a row (one probe per interval),")
	fmt.Fprintln(out, "  Alive again after 2 (1 s) or 3 (2 s) heartbeats; φ is checked every 0.25 s and only suspects.")
	fmt.Fprintf(out, "  %-32s  %16s  %14s  %13s  %12s\n", "detector", "false suspicions", "false failures", "suspect after", "failed after")
	results := make([]outcome, len(setups))
	for i, s := range setups {
		o, err := play(uint64(seed), s, 8)
		if err != nil {
			return err
		}
		results[i] = o
		fmt.Fprintf(out, "  %-32s  %16d  %14d  %13s  %12s\n", s.name, o.falseSuspicions, o.falseFailures, since(o.suspectAfter), since(o.failedAfter))
	}
	// "suspect/failed after" counts from the crash; the last heartbeat came
	// up to one interval before it.
	one, two, phi := results[0], results[1], results[2]
	fmt.Fprintf(out, "  The longer timeout trades speed for fewer mistakes: %d false suspicion(s) against %d, but the\n",
		one.falseSuspicions, two.falseSuspicions)
	fmt.Fprintf(out, "  crash is declared failed after %s instead of %s. φ adapts to the rhythm it has seen\n",
		since(two.failedAfter), since(one.failedAfter))
	fmt.Fprintf(out, "  (1 s ± 0.2 s): it suspected the crash after %s, and the pause too (%d false suspicion(s)),\n",
		since(phi.suspectAfter), phi.falseSuspicions)
	fmt.Fprintln(out, "  which is why distkit's Membership confirms a φ suspicion with direct and indirect probes")
	fmt.Fprintln(out, "  before it declares a member failed.")
	return nil
}

// since prints a duration after the crash, or "never".
func since(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}
