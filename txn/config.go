package txn

import (
	"fmt"
	"log/slog"
	"time"
)

// Config configures the cores and the runtime drivers. Start from
// DefaultConfig.
type Config struct {
	// VoteTimeout is how long a coordinator waits for every vote before it
	// aborts a transaction (ErrTimeout). Begin may set a per-transaction
	// timeout instead.
	VoteTimeout time.Duration
	// RetryInterval is how often unanswered messages are sent again:
	// PREPARE to participants that have not voted, the decision to those
	// that have not acknowledged it, and QUERY from an in-doubt participant.
	RetryInterval time.Duration
	// FinishedTTL is how long a participant remembers the outcome of a
	// finished transaction, to answer duplicates and peers' queries. It
	// must exceed VoteTimeout (an abort promised to a peer must outlive
	// any PREPARE that could still lead to a commit) and should exceed
	// the longest time a message can stay in the network.
	FinishedTTL time.Duration
	// CheckpointEvery is how many log records are appended before the
	// log is replaced by a checkpoint of the live state, so that it does
	// not grow forever.
	CheckpointEvery int
	// TickInterval is how often the runtime drivers advance the core's
	// clock (retries and timeouts fire with this granularity). The cores
	// ignore it.
	TickInterval time.Duration
	// Logger receives debug records (messages, decisions, recovery) from
	// the runtime drivers. nil is silent.
	Logger *slog.Logger
}

// DefaultConfig returns settings for a LAN.
func DefaultConfig() Config {
	return Config{
		VoteTimeout:     5 * time.Second,
		RetryInterval:   200 * time.Millisecond,
		FinishedTTL:     time.Minute,
		CheckpointEvery: 4096,
		TickInterval:    50 * time.Millisecond,
	}
}

// Validate reports the first unusable field.
func (c Config) Validate() error {
	switch {
	case c.VoteTimeout <= 0:
		return fmt.Errorf("%w: Config.VoteTimeout = %v; want > 0", ErrInvalid, c.VoteTimeout)
	case c.RetryInterval <= 0:
		return fmt.Errorf("%w: Config.RetryInterval = %v; want > 0", ErrInvalid, c.RetryInterval)
	case c.FinishedTTL <= c.VoteTimeout:
		return fmt.Errorf("%w: Config.FinishedTTL = %v; want > VoteTimeout (%v)", ErrInvalid, c.FinishedTTL, c.VoteTimeout)
	case c.CheckpointEvery < 1:
		return fmt.Errorf("%w: Config.CheckpointEvery = %d; want >= 1", ErrInvalid, c.CheckpointEvery)
	case c.TickInterval <= 0:
		return fmt.Errorf("%w: Config.TickInterval = %v; want > 0", ErrInvalid, c.TickInterval)
	}
	return nil
}
