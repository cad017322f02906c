package sim

import (
	"fmt"
	"time"

	"github.com/distkit/distkit/internal/netfault"
)

// Faults describes how the virtual network misbehaves. The zero value is a
// perfect network that delivers every message once, at the instant it is
// sent (after the events already scheduled for that instant).
//
// The field names and meanings are the same as memnet.Faults, so a scenario
// reads the same in the simulator and on the in-memory network.
type Faults struct {
	// Drop is the probability that a message is lost.
	Drop float64
	// Duplicate is the probability that a message is delivered twice; the
	// copies share one payload slice and get independent delays.
	Duplicate float64
	// MinDelay and MaxDelay bound the latency of a message, drawn uniformly
	// in [MinDelay, MaxDelay]. The spread is the jitter, and messages with
	// different latencies overtake each other, so any spread reorders.
	MinDelay, MaxDelay time.Duration
	// Reorder is the probability that a message is held back by an extra
	// delay drawn uniformly in (0, ReorderDelay], so later messages overtake it.
	Reorder float64
	// ReorderDelay bounds the extra delay of a reordered message. Zero means
	// MaxDelay, or 1ms when MaxDelay is zero too.
	ReorderDelay time.Duration
}

// Validate reports whether f is meaningful: probabilities in [0, 1],
// non-negative delays and MinDelay <= MaxDelay. Errors wrap
// ErrInvalidFaults.
func (f Faults) Validate() error {
	if err := netfault.Faults(f).Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidFaults, err)
	}
	return nil
}
