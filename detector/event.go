package detector

import (
	"fmt"
	"time"

	"github.com/distkit/distkit/transport"
)

// EventKind says what changed about a member.
type EventKind uint8

const (
	// EventAlive: a Suspect member answered or refuted the suspicion and is
	// Alive again.
	EventAlive EventKind = iota + 1
	// EventSuspect: the member's detector crossed its threshold; probes are
	// under way.
	EventSuspect
	// EventFailed: the member did not answer the probes in time.
	EventFailed
	// EventRecovered: a Failed member was heard from again (after
	// Timeout.RecoveryConfirmations heartbeats with KindFixedTimeout).
	EventRecovered
)

// String returns "alive", "suspect", "failed" or "recovered".
func (k EventKind) String() string {
	switch k {
	case EventAlive:
		return "alive"
	case EventSuspect:
		return "suspect"
	case EventFailed:
		return "failed"
	case EventRecovered:
		return "recovered"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event reports a change in a member's status, as seen by one node.
type Event struct {
	Member transport.NodeID
	Kind   EventKind
	// At is when the change was decided.
	At time.Time
	// Phi is the member's suspicion level at At: φ with KindPhiAccrual,
	// the number of consecutive missed probes with KindFixedTimeout.
	Phi float64
	// Incarnation is the member's incarnation as last heard. A restarted
	// or refuting member shows a higher one.
	Incarnation uint64
}

// String formats the event for logs, e.g. "n3 failed (phi 12.40, incarnation 7)".
func (e Event) String() string {
	return fmt.Sprintf("%s %s (phi %.2f, incarnation %d)", e.Member, e.Kind, e.Phi, e.Incarnation)
}
