package detector

import "fmt"

// Status is what a detector currently believes about a peer.
type Status uint8

const (
	// Alive: the peer is heard from on time.
	Alive Status = iota + 1
	// Suspect: the peer is late; it is being probed but not yet given up on.
	Suspect
	// Failed: the peer is considered crashed or unreachable. A failure
	// detector in an asynchronous system can be wrong about this; see the
	// package documentation.
	Failed
)

// String returns "alive", "suspect" or "failed".
func (s Status) String() string {
	switch s {
	case Alive:
		return "alive"
	case Suspect:
		return "suspect"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}
