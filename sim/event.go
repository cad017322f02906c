package sim

import "github.com/distkit/distkit/transport"

// eventKind says what an event does when its time comes.
type eventKind uint8

const (
	evDeliver eventKind = iota + 1 // hand msg to node
	evTimer                        // fire timer on node
	evAction                       // run fn (a test action scheduled with At)
)

// event is one entry of the simulator's agenda, a netfault.Queue ordered by
// virtual time (an offset from Config.Start) and, among events due at the
// same time, by the order they were scheduled.
type event struct {
	kind      eventKind
	node      *simNode   // target of a delivery or timer
	epoch     uint64     // node's incarnation when scheduled; stale events are skipped
	from      *simNode   // sender of a delivery
	fromEpoch uint64     // sender's incarnation when it sent
	copy      int        // 0 for the original delivery, 1 for a duplicate
	link      *LinkStats // counters of the delivery's link
	msg       transport.Message
	timer     TimerID
	name      string // timer name
	fn        func()
}
