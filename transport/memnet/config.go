package memnet

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/distkit/distkit/internal/netfault"
)

// Faults describes how the network misbehaves on a link. The zero value is a
// perfect network: every message delivered once, at once, and in order.
//
// The field names and meanings are the same as sim.Faults, so a scenario
// reads the same on the in-memory network and in the simulator.
type Faults struct {
	// Drop is the probability that a message is lost.
	Drop float64
	// Duplicate is the probability that a message is delivered twice; the
	// copies share one payload slice and get independent delays.
	Duplicate float64
	// MinDelay and MaxDelay bound the latency of a message, drawn uniformly
	// in [MinDelay, MaxDelay]; the spread is the jitter. Messages with
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

// Config configures a Network.
type Config struct {
	// Seed decides every random fault. Each link draws from its own stream
	// derived from Seed and the two node IDs, so the fate of the k-th
	// message on a link depends only on the seed, k and the faults in force.
	Seed int64
	// Faults is the default behaviour of every link.
	Faults Faults
	// QueueSize bounds the messages waiting to be delivered to one node
	// (including delayed ones); Send fails with ErrQueueFull beyond it.
	QueueSize int
	// MaxPayload is the largest payload Send accepts.
	MaxPayload int
	// Logger receives handler panics and fault changes; nil is silent.
	Logger *slog.Logger
}

// DefaultConfig returns a perfect network with seed 1, 4096-message queues
// and a 16 MiB payload limit (the tcp transport's default frame size).
func DefaultConfig() Config {
	return Config{Seed: 1, QueueSize: 4096, MaxPayload: 16 << 20}
}

// Validate reports whether the configuration can be used.
func (c Config) Validate() error {
	if err := c.Faults.Validate(); err != nil {
		return fmt.Errorf("%w: Faults: %w", ErrInvalidConfig, err)
	}
	if c.QueueSize < 1 {
		return fmt.Errorf("%w: QueueSize %d; want at least 1", ErrInvalidConfig, c.QueueSize)
	}
	if c.MaxPayload < 0 {
		return fmt.Errorf("%w: MaxPayload %d; want at least 0", ErrInvalidConfig, c.MaxPayload)
	}
	return nil
}

// Errors returned by memnet, besides the transport sentinels. Compare with
// errors.Is.
var (
	// ErrInvalidConfig is returned by New for a Config that fails Validate.
	ErrInvalidConfig = errors.New("memnet: invalid config")
	// ErrInvalidFaults is wrapped by the errors of Faults.Validate (and so
	// of SetFaults and SetLinkFaults).
	ErrInvalidFaults = errors.New("memnet: invalid faults")
	// ErrDuplicateNode is returned by Join for an ID whose transport is open.
	ErrDuplicateNode = errors.New("memnet: duplicate node")
)

// Errors for the zero values of Network and Transport, which are not usable:
// make them with New and Network.Join.
var (
	errNetworkNotNew   = fmt.Errorf("%w: Network used without New", ErrInvalidConfig)
	errTransportNotNew = fmt.Errorf("%w: Transport used without Network.Join", ErrInvalidConfig)
)
