package detector

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// PhiConfig configures a PhiAccrual detector. Start from DefaultPhiConfig.
type PhiConfig struct {
	// Threshold is the φ at which the peer is suspected. φ = 8 means that,
	// if the heartbeat process keeps behaving as it has, the chance that the
	// next heartbeat is merely late is 10⁻⁸. Default 8 (see the table in the
	// package documentation).
	Threshold float64
	// WindowSize is how many recent inter-arrival times the distribution is
	// estimated from. Default 1000, at most 65536.
	WindowSize int
	// MinStdDev is a floor on the estimated standard deviation. Heartbeats
	// from a very regular peer would otherwise make φ explode after a few
	// milliseconds of delay. Default 100 ms.
	MinStdDev time.Duration
	// AcceptablePause is added to the mean before φ is computed: a silence
	// this much longer than usual (a GC pause, a burst of loss) costs no
	// suspicion. Default 0.
	AcceptablePause time.Duration
	// FirstHeartbeatEstimate is the expected inter-arrival time before any
	// has been measured. The window starts with two synthetic samples at
	// estimate ± estimate/4 (as Akka does), so the first real heartbeats are
	// judged against mean = estimate, σ = estimate/4 and the real ones take
	// over as they arrive. Default 1 s.
	FirstHeartbeatEstimate time.Duration
	// MaxInterval is the longest inter-arrival time that is sampled. A longer
	// silence is an outage (a crash, a partition), not a sample of the
	// heartbeat process; recording it would inflate the variance and blunt
	// the detector for the next WindowSize heartbeats, so it is left out (as
	// Cassandra does). Default 10 s; it must exceed FirstHeartbeatEstimate.
	MaxInterval time.Duration
}

// DefaultPhiConfig returns the defaults: threshold 8, a window of 1000
// samples, σ ≥ 100 ms, no acceptable pause, 1 s first estimate, samples up
// to 10 s.
func DefaultPhiConfig() PhiConfig {
	return PhiConfig{
		Threshold:              8,
		WindowSize:             1000,
		MinStdDev:              100 * time.Millisecond,
		AcceptablePause:        0,
		FirstHeartbeatEstimate: time.Second,
		MaxInterval:            10 * time.Second,
	}
}

// Validate reports the first invalid field, wrapping ErrInvalidConfig.
func (c PhiConfig) Validate() error {
	switch {
	case !(c.Threshold > 0) || math.IsInf(c.Threshold, 0):
		return fmt.Errorf("%w: Threshold %v must be positive and finite", ErrInvalidConfig, c.Threshold)
	case c.WindowSize < 2 || c.WindowSize > maxWindowSize:
		return fmt.Errorf("%w: WindowSize %d must be in [2, %d]", ErrInvalidConfig, c.WindowSize, maxWindowSize)
	case c.MinStdDev <= 0:
		return fmt.Errorf("%w: MinStdDev %v must be positive", ErrInvalidConfig, c.MinStdDev)
	case c.AcceptablePause < 0:
		return fmt.Errorf("%w: AcceptablePause %v must not be negative", ErrInvalidConfig, c.AcceptablePause)
	case c.FirstHeartbeatEstimate <= 0:
		return fmt.Errorf("%w: FirstHeartbeatEstimate %v must be positive", ErrInvalidConfig, c.FirstHeartbeatEstimate)
	case c.MaxInterval <= c.FirstHeartbeatEstimate:
		return fmt.Errorf("%w: MaxInterval %v must exceed FirstHeartbeatEstimate %v", ErrInvalidConfig, c.MaxInterval, c.FirstHeartbeatEstimate)
	case c.MaxInterval > maxWindowSample:
		return fmt.Errorf("%w: MaxInterval %v must be at most %v", ErrInvalidConfig, c.MaxInterval, time.Duration(maxWindowSample))
	}
	return nil
}

// PhiAccrual is the φ accrual failure detector of Hayashibara, Défago,
// Yared and Katayama, "The φ Accrual Failure Detector" (SRDS 2004), for one
// peer. Instead of a yes/no verdict it outputs a suspicion level
//
//	φ(now) = −log10(1 − F(now − last))
//
// where F is the CDF of a normal distribution fitted to the recent
// inter-arrival times (§4.1 of the paper) and shifted right by
// AcceptablePause. The caller records heartbeats with Heartbeat and reads φ
// with Phi; it decides what to do above a threshold, or uses Suspect.
//
// Both methods are O(1) and allocation-free: the window keeps exact running
// sums, Heartbeat refreshes the cached mean and standard deviation, and Phi
// interpolates in a shared table of the normal tail (see phiOf for the
// approximation and its error).
// Time is passed in, never read, so the detector is deterministic.
// A PhiAccrual is safe for concurrent use. The zero value is a detector with
// the settings of DefaultPhiConfig.
type PhiAccrual struct {
	// mu guards every field. The settings are written once, by
	// NewPhiAccrual or, for the zero value, by the first call (init).
	mu          sync.Mutex
	threshold   float64
	pause       float64 // AcceptablePause, ns
	minStdDev   float64 // ns
	maxInterval time.Duration
	tab         *phiTable // nil until set up

	heard bool      // a heartbeat has been recorded
	last  time.Time // latest heartbeat
	// skip is set by touch: the next interval starts at a sign of life that
	// was not a heartbeat, so it is not a sample of the heartbeat process.
	skip bool
	win  window
	mean float64 // of win, ns; refreshed by Heartbeat
	std  float64 // of win, ns, floored at minStdDev; refreshed by Heartbeat
}

// NewPhiAccrual returns a detector that has heard nothing yet; its φ is 0
// until the first heartbeat. It returns an error wrapping ErrInvalidConfig
// for a bad config.
func NewPhiAccrual(cfg PhiConfig) (*PhiAccrual, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := new(PhiAccrual)
	d.setup(cfg)
	return d, nil
}

// setup configures d from a valid cfg.
func (d *PhiAccrual) setup(cfg PhiConfig) {
	d.threshold = cfg.Threshold
	d.pause = float64(cfg.AcceptablePause)
	d.minStdDev = float64(cfg.MinStdDev)
	d.maxInterval = cfg.MaxInterval
	d.win = newWindow(cfg.WindowSize)
	d.tab = sharedPhiTable()
	est := uint64(cfg.FirstHeartbeatEstimate)
	d.win.add(est - est/4)
	d.win.add(est + est/4)
	d.refresh()
}

// init gives a zero PhiAccrual the settings of DefaultPhiConfig. d.mu is
// held.
func (d *PhiAccrual) init() {
	if d.tab == nil {
		d.setup(DefaultPhiConfig())
	}
}

// refresh recomputes the cached mean and standard deviation. d.mu is held.
func (d *PhiAccrual) refresh() {
	mean, variance := d.win.meanVariance()
	d.mean = mean
	d.std = math.Max(math.Sqrt(variance), d.minStdDev)
}

// Heartbeat records a heartbeat that arrived at at. The interval since the
// previous one joins the window unless it is longer than MaxInterval. A
// timestamp that is not after the latest one (a reordered or duplicated
// report) is ignored, so concurrent callers cannot corrupt the estimate.
func (d *PhiAccrual) Heartbeat(at time.Time) {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.init()
	if !d.heard {
		d.heard, d.last = true, at
		return
	}
	gap := at.Sub(d.last)
	if gap <= 0 {
		return
	}
	d.last = at
	if gap > d.maxInterval || d.skip {
		d.skip = false
		return
	}
	d.win.add(uint64(gap))
	d.refresh()
}

// touch records a sign of life at at that is not a heartbeat (an answer to
// a probe, a refutation): φ restarts from at, but neither this interval nor
// the next one is sampled. Feeding such irregular arrivals into the window
// would drag the mean down and make suspicions breed suspicions.
func (d *PhiAccrual) touch(at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.init()
	if d.heard && !at.After(d.last) {
		return
	}
	d.heard, d.last, d.skip = true, at, true
}

// Phi returns the suspicion level at now: 0 before the first heartbeat,
// otherwise −log10 of the probability that a heartbeat would be this late.
// It grows without bound as now moves away from the last heartbeat and is
// non-decreasing in now.
func (d *PhiAccrual) Phi(now time.Time) float64 {
	if d == nil {
		return 0
	}
	d.mu.Lock()
	phi, _ := d.phiLocked(now)
	d.mu.Unlock()
	return phi
}

// phiLocked returns Phi(now) and the threshold. d.mu is held.
func (d *PhiAccrual) phiLocked(now time.Time) (phi, threshold float64) {
	d.init()
	if !d.heard {
		return 0, d.threshold
	}
	elapsed := float64(now.Sub(d.last))
	y := (elapsed - d.mean - d.pause) / d.std
	return d.tab.at(y), d.threshold
}

// Suspect reports whether Phi(now) has reached the threshold.
func (d *PhiAccrual) Suspect(now time.Time) bool {
	if d == nil {
		return false
	}
	d.mu.Lock()
	phi, threshold := d.phiLocked(now)
	d.mu.Unlock()
	return phi >= threshold
}

// Threshold returns the configured threshold.
func (d *PhiAccrual) Threshold() float64 {
	if d == nil {
		return 0
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.init()
	return d.threshold
}

// PhiStats is a snapshot of a PhiAccrual's estimate.
type PhiStats struct {
	Heard         bool          // a heartbeat has been recorded
	LastHeartbeat time.Time     // the latest one
	Samples       int           // intervals in the window, the two synthetic ones included
	Mean          time.Duration // mean inter-arrival time
	StdDev        time.Duration // standard deviation, after the MinStdDev floor
}

// Stats returns the current estimate.
func (d *PhiAccrual) Stats() PhiStats {
	if d == nil {
		return PhiStats{}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.init()
	return PhiStats{
		Heard:         d.heard,
		LastHeartbeat: d.last,
		Samples:       d.win.n,
		Mean:          time.Duration(d.mean),
		StdDev:        time.Duration(d.std),
	}
}

// tailCutoff is where phiOf switches from math.Erfc to the asymptotic
// expansion of the normal tail; erfc(y/√2) underflows float64 near y = 38.
const tailCutoff = 30

// halfLn2Pi is ln(√(2π)).
var halfLn2Pi = 0.5 * math.Log(2*math.Pi)

// phiOf returns −log10 Q(y), where Q(y) = 1 − Φ(y) is the upper tail of the
// standard normal distribution.
//
// For y < 30 it evaluates Q(y) = erfc(y/√2)/2 with math.Erfc, Go's port of
// the FreeBSD/fdlibm rational approximations, whose source bounds the
// approximation error below 2⁻⁵⁷ on each sub-interval: φ is exact to a few
// units in the last place, including deep in the tail where φ is large.
// (The logistic approximation Akka uses, F(y) ≈ 1/(1+e^(−y(1.5976+0.070566y²))),
// has an absolute error up to 1.4·10⁻⁴, which is larger than 1 − F itself
// once φ > 4, so its φ = 8 is not a 10⁻⁸ event.)
//
// For y ≥ 30, Q(y) = e^(−y²/2)/(y√(2π)) · (1 − 1/y² + 3/y⁴ − 15/y⁶ + 105/y⁸ − …),
// the asymptotic series; stopping after the y⁻⁸ term leaves a relative error
// below 945/y¹⁰ ≤ 1.6·10⁻¹², that is an absolute error in φ below 10⁻¹², and
// φ keeps growing instead of becoming +Inf.
func phiOf(y float64) float64 {
	if y < tailCutoff {
		return -math.Log10(0.5 * math.Erfc(y/math.Sqrt2))
	}
	y2 := y * y
	r := 1 / y2
	lnQ := -y2/2 - math.Log(y) - halfLn2Pi + math.Log1p(r*(-1+r*(3+r*(-15+r*105))))
	return -lnQ / math.Ln10
}
