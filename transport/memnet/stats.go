package memnet

import (
	"github.com/distkit/distkit/internal/netfault"
	"github.com/distkit/distkit/transport"
)

// LinkStats counts the messages on one directed link.
//
// Once nothing is in flight, Sent + Duplicated = Delivered + Dropped.
type LinkStats struct {
	// Sent counts the messages Send accepted for the link or lost to a
	// fault; Sends rejected before that (unknown peer, too large, closed,
	// ctx done) are not counted.
	Sent uint64
	// Delivered counts messages handed to a handler (a duplicate counts twice).
	Delivered uint64
	// Dropped counts messages lost to Drop, a partition, cut or isolation,
	// a crash, a closed receiver, a full queue (Send returned ErrQueueFull)
	// or a service with no handler.
	Dropped uint64
	// Duplicated counts the extra copies made by Duplicate.
	Duplicated uint64
}

// Link is a directed pair of nodes.
type Link struct{ From, To transport.NodeID }

// Stats is a snapshot of the network's counters.
type Stats struct {
	LinkStats                        // totals over every link
	Links         map[Link]LinkStats // per directed link that has carried a message
	HandlerPanics uint64             // handler calls that panicked (their message counts as delivered)
}

// Stats returns a snapshot of the counters. Counters of messages still in
// flight move on afterwards.
func (n *Network) Stats() Stats {
	if n == nil {
		return Stats{}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	st := Stats{Links: make(map[Link]LinkStats, len(n.links)), HandlerPanics: n.panics.Load()}
	for key, l := range n.links {
		ls := l.snapshot()
		st.Links[Link(key)] = ls
		st.Sent += ls.Sent
		st.Delivered += ls.Delivered
		st.Dropped += ls.Dropped
		st.Duplicated += ls.Duplicated
	}
	return st
}

// LinkStats returns the counters of the directed link from -> to.
func (n *Network) LinkStats(from, to transport.NodeID) LinkStats {
	if n == nil {
		return LinkStats{}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if l := n.links[netfault.Link{From: from, To: to}]; l != nil {
		return l.snapshot()
	}
	return LinkStats{}
}

func (l *link) snapshot() LinkStats {
	return LinkStats{
		Sent:       l.sent.Load(),
		Delivered:  l.delivered.Load(),
		Dropped:    l.dropped.Load(),
		Duplicated: l.duplicated.Load(),
	}
}
