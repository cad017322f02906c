package election

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/distkit/distkit/clock"
	"github.com/distkit/distkit/detector"
	"github.com/distkit/distkit/transport"
)

// Service is the default transport service name of the Bully and Ring
// electors. Election messages and the failure detector's heartbeats share it.
const Service = "election"

// Member is one node of an election group.
//
// Priorities are explicit and must be distinct: they are the total order the
// Bully and Ring algorithms elect by (the highest live priority wins), so it
// never depends on how node IDs happen to compare as strings.
type Member struct {
	ID       transport.NodeID
	Priority uint64
}

// Config configures a Bully or Ring elector (core or runtime). Start from
// DefaultConfig and set ID and Members.
type Config struct {
	// ID is this node; it must be one of Members.
	ID transport.NodeID
	// Members lists every node of the group, this one included, each with
	// a distinct priority. Every node must be given the same list.
	Members []Member
	// Service is the transport service the elector's messages use.
	Service string

	// ElectionTimeout is how long a Bully candidate waits for an OK from a
	// higher-priority node before it declares itself coordinator.
	ElectionTimeout time.Duration
	// CoordinatorTimeout is how long a Bully candidate that got an OK waits
	// for the COORDINATOR message; when it expires the candidate starts the
	// election again, so a higher node that answered and then crashed
	// cannot stall the group.
	CoordinatorTimeout time.Duration
	// RingTimeout is how long a Ring node that takes part in an election
	// waits for the ELECTED message before it starts a new round. It must
	// cover two trips around the ring.
	RingTimeout time.Duration
	// BootDelay is how long a node that has just started listens before it
	// first campaigns, so it learns the current leader and epoch from the
	// heartbeats instead of disturbing the group with an election it would
	// lose (and, without a durable Store, with an epoch the others have
	// passed). About two heartbeat intervals.
	BootDelay time.Duration

	// Detector configures the failure detector (heartbeats, φ accrual,
	// indirect probes) that tells the elector which members are down.
	Detector detector.Config

	// Store keeps the runtime Node's epoch across restarts (cores take
	// their State as an argument and report it in Ready instead). nil
	// means an in-memory store private to the Node: epochs then restart
	// from zero with the process, and a restarted node learns the current
	// epoch from the others' heartbeats. Use NewFileEpochStore for epochs
	// that never go backwards at a node, even across crashes.
	Store EpochStore

	// Clock is the time source of the runtime Node (cores take time as an
	// argument). nil means the system clock.
	Clock clock.Source
	// Logger receives elections and leader changes. nil is silent.
	Logger *slog.Logger
}

// DefaultConfig returns settings for a LAN: heartbeats every 100 ms (a
// crashed leader is noticed in about half a second), 100 ms election and
// 300 ms coordinator timeouts, a 1 s ring timeout and a 250 ms boot delay.
func DefaultConfig() Config {
	det := detector.DefaultConfig()
	det.HeartbeatInterval = 100 * time.Millisecond
	det.ProbeTimeout = 100 * time.Millisecond
	det.CheckInterval = 10 * time.Millisecond
	return Config{
		Service:            Service,
		ElectionTimeout:    100 * time.Millisecond,
		CoordinatorTimeout: 300 * time.Millisecond,
		RingTimeout:        time.Second,
		BootDelay:          250 * time.Millisecond,
		Detector:           det,
	}
}

// Sentinel errors. Compare with errors.Is.
var (
	// ErrInvalidConfig is wrapped by the errors of Config.Validate and of
	// the constructors.
	ErrInvalidConfig = errors.New("election: invalid config")
	// ErrMalformed is returned by a core's Receive for a payload that
	// cannot be decoded; the message changes nothing.
	ErrMalformed = errors.New("election: malformed message")
	// ErrUnknownMember is returned by a core's Receive for a message from a
	// node that is not in Members; it changes nothing.
	ErrUnknownMember = errors.New("election: unknown member")
)

// maxIDLen bounds a node ID on the wire and in Config.
const maxIDLen = 255

// Validate reports the first problem with c, wrapping ErrInvalidConfig.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case c.ID == "":
		return bad("ID is empty")
	case len(c.Members) == 0:
		return bad("Members is empty; list every node, this one included")
	case c.Service == "":
		return bad("Service is empty")
	case c.ElectionTimeout <= 0:
		return bad("ElectionTimeout is %v; want > 0", c.ElectionTimeout)
	case c.CoordinatorTimeout <= 0:
		return bad("CoordinatorTimeout is %v; want > 0", c.CoordinatorTimeout)
	case c.RingTimeout <= 0:
		return bad("RingTimeout is %v; want > 0", c.RingTimeout)
	case c.BootDelay < 0:
		return bad("BootDelay is %v; want >= 0", c.BootDelay)
	}
	ids := make(map[transport.NodeID]bool, len(c.Members))
	prios := make(map[uint64]transport.NodeID, len(c.Members))
	for i, m := range c.Members {
		switch {
		case m.ID == "":
			return bad("Members[%d] has an empty ID", i)
		case len(m.ID) > maxIDLen:
			return bad("Members[%d] ID is %d bytes; want at most %d", i, len(m.ID), maxIDLen)
		case ids[m.ID]:
			return bad("Members lists %q twice", m.ID)
		}
		if other, dup := prios[m.Priority]; dup {
			return bad("%q and %q share priority %d; priorities must be distinct", other, m.ID, m.Priority)
		}
		ids[m.ID] = true
		prios[m.Priority] = m.ID
	}
	if !ids[c.ID] {
		return bad("ID %q is not in Members", c.ID)
	}
	if err := c.Detector.Validate(); err != nil {
		return fmt.Errorf("%w: Detector: %w", ErrInvalidConfig, err)
	}
	return nil
}

// MembersByOrder returns members for ids with priorities 1, 2, 3… in the
// order given: the last ID has the highest priority. A convenience for
// groups whose priority is simply a rank.
func MembersByOrder(ids ...transport.NodeID) []Member {
	out := make([]Member, len(ids))
	for i, id := range ids {
		out[i] = Member{ID: id, Priority: uint64(i + 1)}
	}
	return out
}
