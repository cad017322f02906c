package detector

import (
	"fmt"
	"sync"
	"time"
)

// TimeoutConfig configures a FixedTimeout detector. Start from
// DefaultTimeoutConfig.
type TimeoutConfig struct {
	// Timeout is how long after the latest heartbeat a probe counts as
	// missed. Usually 3 to 5 heartbeat intervals. Default 3 s.
	Timeout time.Duration
	// Confirmations is how many consecutive missed probes turn Suspect into
	// Failed, so a single late heartbeat is not a verdict. Default 3.
	Confirmations int
	// RecoveryConfirmations is how many consecutive heartbeats, with no
	// missed probe in between, bring a Failed peer back to Alive, so a
	// flapping peer does not flap the verdict. Default 2.
	RecoveryConfirmations int
}

// DefaultTimeoutConfig returns a 3 s timeout, 3 confirmations and 2 recovery
// confirmations, suited to a 1 s heartbeat probed once per interval.
func DefaultTimeoutConfig() TimeoutConfig {
	return TimeoutConfig{Timeout: 3 * time.Second, Confirmations: 3, RecoveryConfirmations: 2}
}

// Validate reports the first invalid field, wrapping ErrInvalidConfig.
func (c TimeoutConfig) Validate() error {
	switch {
	case c.Timeout <= 0:
		return fmt.Errorf("%w: Timeout %v must be positive", ErrInvalidConfig, c.Timeout)
	case c.Confirmations < 1:
		return fmt.Errorf("%w: Confirmations %d must be at least 1", ErrInvalidConfig, c.Confirmations)
	case c.RecoveryConfirmations < 1:
		return fmt.Errorf("%w: RecoveryConfirmations %d must be at least 1", ErrInvalidConfig, c.RecoveryConfirmations)
	}
	return nil
}

// FixedTimeout is the classic heartbeat failure detector for one peer: a
// peer not heard from within Timeout is suspected, and Confirmations
// consecutive missed probes make it Failed.
//
// The caller records arrivals with Heartbeat and calls Probe at its probing
// cadence (typically once per heartbeat interval); a probe is missed when
// nothing arrived within Timeout before it. A Suspect peer is Alive again at
// its next heartbeat; a Failed one needs RecoveryConfirmations consecutive
// heartbeats with no missed probe in between.
//
// Time is passed in, never read. A FixedTimeout is safe for concurrent use;
// Heartbeat is O(1) and allocation-free. The zero value is a detector with
// the settings of DefaultTimeoutConfig.
type FixedTimeout struct {
	// mu guards every field. cfg and the initial status are written once,
	// by NewFixedTimeout or, for the zero value, by the first call (init).
	mu     sync.Mutex
	cfg    TimeoutConfig
	heard  bool
	last   time.Time // latest heartbeat
	status Status    // 0 until set up
	missed int       // consecutive missed probes
	streak int       // consecutive heartbeats since the peer was Failed
}

// NewFixedTimeout returns a detector whose peer is Alive and whose timeout
// runs from the first heartbeat or, before it, from the first probe. It
// returns an error wrapping ErrInvalidConfig for a bad config.
func NewFixedTimeout(cfg TimeoutConfig) (*FixedTimeout, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &FixedTimeout{cfg: cfg, status: Alive}, nil
}

// init gives a zero FixedTimeout the settings of DefaultTimeoutConfig.
// d.mu is held.
func (d *FixedTimeout) init() {
	if d.status == 0 {
		d.cfg, d.status = DefaultTimeoutConfig(), Alive
	}
}

// Heartbeat records a heartbeat that arrived at at. Timestamps that are not
// after the latest one are ignored.
func (d *FixedTimeout) Heartbeat(at time.Time) {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.init()
	if d.heard && !at.After(d.last) {
		return
	}
	d.heard, d.last = true, at
	d.missed = 0
	switch d.status {
	case Suspect:
		d.status = Alive
	case Failed:
		d.streak++
		if d.streak >= d.cfg.RecoveryConfirmations {
			d.status, d.streak = Alive, 0
		}
	}
}

// Probe checks the peer at now and returns its status. A peer not heard
// from for longer than Timeout misses the probe: it becomes Suspect, and
// Failed after Confirmations consecutive misses.
func (d *FixedTimeout) Probe(now time.Time) Status {
	if d == nil {
		return 0
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.init()
	if !d.heard {
		// The timeout runs from the first look at the peer.
		d.heard, d.last = true, now
	}
	if now.Sub(d.last) <= d.cfg.Timeout {
		return d.status
	}
	d.missed++
	d.streak = 0
	switch {
	case d.missed >= d.cfg.Confirmations:
		d.status = Failed
	case d.status == Alive:
		d.status = Suspect
	}
	return d.status
}

// Status returns the status decided by the latest Probe or Heartbeat.
func (d *FixedTimeout) Status() Status {
	if d == nil {
		return 0
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.init()
	return d.status
}

// Missed returns the number of consecutive missed probes.
func (d *FixedTimeout) Missed() int {
	if d == nil {
		return 0
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.init()
	return d.missed
}
