package detector

import (
	"fmt"
	"time"
)

// Kind selects the per-member detector a Membership or Monitor uses.
type Kind uint8

const (
	// KindPhiAccrual suspects a member when its φ reaches Phi.Threshold.
	KindPhiAccrual Kind = iota + 1
	// KindFixedTimeout suspects a member after Timeout.Confirmations
	// consecutive probes (one per heartbeat interval) found it silent for
	// longer than Timeout.Timeout.
	KindFixedTimeout
)

// String returns "phi-accrual" or "fixed-timeout".
func (k Kind) String() string {
	switch k {
	case KindPhiAccrual:
		return "phi-accrual"
	case KindFixedTimeout:
		return "fixed-timeout"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Config configures a Membership and a Monitor. Start from DefaultConfig.
type Config struct {
	// HeartbeatInterval is how often a node sends a heartbeat to every
	// member. Default 1 s.
	HeartbeatInterval time.Duration
	// Jitter spreads heartbeats uniformly over HeartbeatInterval·(1 ± Jitter)
	// so that nodes do not fall into lockstep. In [0, 1); default 0.1.
	Jitter float64
	// CheckInterval is how often the detectors are consulted; it bounds the
	// extra detection delay. Default 100 ms.
	CheckInterval time.Duration
	// IndirectProbes is k, the number of other members asked to probe a
	// suspect on this node's behalf (SWIM §3.1), so a lossy or cut link
	// between two nodes does not get a live node declared Failed. 0 turns
	// indirect probing off. Default 3.
	IndirectProbes int
	// ProbeTimeout is how long a suspect has to answer the direct and
	// indirect probes (or send anything newer) before it is declared
	// Failed. The probes go out when the suspicion starts and again halfway
	// through. Default 1 s.
	ProbeTimeout time.Duration
	// Detector selects the per-member detector. Default KindPhiAccrual.
	Detector Kind
	// Phi configures the φ accrual detectors (KindPhiAccrual). Zero
	// FirstHeartbeatEstimate and MaxInterval follow HeartbeatInterval: they
	// mean HeartbeatInterval and 10·HeartbeatInterval.
	Phi PhiConfig
	// Timeout configures the fixed-timeout detectors (KindFixedTimeout). A
	// zero Timeout.Timeout means 3·HeartbeatInterval.
	Timeout TimeoutConfig
}

// resolved returns c with the zero fields that follow HeartbeatInterval
// filled in.
func (c Config) resolved() Config {
	if c.Phi.FirstHeartbeatEstimate == 0 {
		c.Phi.FirstHeartbeatEstimate = c.HeartbeatInterval
	}
	if c.Phi.MaxInterval == 0 {
		c.Phi.MaxInterval = min(10*c.HeartbeatInterval, maxWindowSample)
	}
	if c.Timeout.Timeout == 0 {
		c.Timeout.Timeout = 3 * c.HeartbeatInterval
	}
	return c
}

// DefaultConfig returns 1 s heartbeats with 10 % jitter, checks every
// 100 ms, 3 indirect probes with a 1 s probe timeout, and φ accrual
// detection with DefaultPhiConfig (threshold 8) whose first estimate and
// longest sampled interval follow HeartbeatInterval. Changing only
// HeartbeatInterval rescales the detectors with it; ProbeTimeout and
// CheckInterval stay as set.
func DefaultConfig() Config {
	phi := DefaultPhiConfig()
	phi.FirstHeartbeatEstimate, phi.MaxInterval = 0, 0
	timeout := DefaultTimeoutConfig()
	timeout.Timeout = 0
	return Config{
		HeartbeatInterval: time.Second,
		Jitter:            0.1,
		CheckInterval:     100 * time.Millisecond,
		IndirectProbes:    3,
		ProbeTimeout:      time.Second,
		Detector:          KindPhiAccrual,
		Phi:               phi,
		Timeout:           timeout,
	}
}

// maxIndirectProbes bounds k; more helpers than this add traffic, not accuracy.
const maxIndirectProbes = 64

// Validate reports the first invalid field, wrapping ErrInvalidConfig.
func (c Config) Validate() error {
	if c.HeartbeatInterval <= 0 {
		return fmt.Errorf("%w: HeartbeatInterval %v must be positive", ErrInvalidConfig, c.HeartbeatInterval)
	}
	c = c.resolved()
	switch {
	case !(c.Jitter >= 0 && c.Jitter < 1):
		return fmt.Errorf("%w: Jitter %v must be in [0, 1)", ErrInvalidConfig, c.Jitter)
	case c.CheckInterval <= 0:
		return fmt.Errorf("%w: CheckInterval %v must be positive", ErrInvalidConfig, c.CheckInterval)
	case c.IndirectProbes < 0 || c.IndirectProbes > maxIndirectProbes:
		return fmt.Errorf("%w: IndirectProbes %d must be in [0, %d]", ErrInvalidConfig, c.IndirectProbes, maxIndirectProbes)
	case c.ProbeTimeout <= 0:
		return fmt.Errorf("%w: ProbeTimeout %v must be positive", ErrInvalidConfig, c.ProbeTimeout)
	}
	switch c.Detector {
	case KindPhiAccrual:
		if err := c.Phi.Validate(); err != nil {
			return fmt.Errorf("%w (Config.Phi)", err)
		}
		longest := time.Duration(float64(c.HeartbeatInterval) * (1 + c.Jitter))
		if c.Phi.MaxInterval <= longest {
			return fmt.Errorf("%w: Phi.MaxInterval %v must exceed the longest heartbeat interval %v, or no interval is ever sampled",
				ErrInvalidConfig, c.Phi.MaxInterval, longest)
		}
	case KindFixedTimeout:
		if err := c.Timeout.Validate(); err != nil {
			return fmt.Errorf("%w (Config.Timeout)", err)
		}
	default:
		return fmt.Errorf("%w: Detector %v is not a known Kind", ErrInvalidConfig, c.Detector)
	}
	return nil
}
