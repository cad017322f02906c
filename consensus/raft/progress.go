package raft

// ProgressState is how a leader is currently replicating to one follower.
type ProgressState uint8

const (
	// ProgressProbe: the leader does not know where the follower's log
	// agrees with its own; it sends one MsgApp per heartbeat interval and
	// backs off on rejections until it finds the match point.
	ProgressProbe ProgressState = iota
	// ProgressReplicate: the follower is known to match; the leader streams
	// entries optimistically, up to MaxInflightMsgs messages in flight.
	ProgressReplicate
	// ProgressSnapshot: the follower needs entries the leader has compacted;
	// the leader is sending it a snapshot in chunks.
	ProgressSnapshot
)

// String returns the state's name.
func (s ProgressState) String() string {
	switch s {
	case ProgressProbe:
		return "probe"
	case ProgressReplicate:
		return "replicate"
	case ProgressSnapshot:
		return "snapshot"
	}
	return "unknown"
}

// progress is the leader's view of one follower (the nextIndex and
// matchIndex of Figure 2, plus flow control).
type progress struct {
	match, next uint64
	state       ProgressState
	// probeSent: in ProgressProbe, a MsgApp is outstanding; no more until a
	// response or the next heartbeat.
	probeSent bool
	// heard is 1 + the leader's tick at which it last heard from this
	// member (any message of its term), 0 if never: check-quorum asks
	// whether that is within the window.
	heard uint64
	// matchAtHeartbeat is match at the previous heartbeat response; a
	// pipeline whose match did not move between two heartbeats while
	// messages are in flight has lost one, so the leader re-probes.
	matchAtHeartbeat uint64
	stalledBeats     int
	inflight         inflights
	// snap is the snapshot transfer in ProgressSnapshot.
	snap snapshotTransfer
}

// snapshotTransfer tracks the chunks of one snapshot sent to a follower.
type snapshotTransfer struct {
	snap *Snapshot
	// acked is the number of bytes the follower confirmed; sent is the end
	// of the chunk in flight (== acked when none).
	acked, sent uint64
	// idleTicks counts ticks without progress; at ElectionTicks the chunk is
	// sent again, and after a few such retries the transfer restarts with
	// the newest snapshot (a follower stuck mid-snapshot recovers).
	idleTicks int
	retries   int
}

func (p *progress) becomeProbe() {
	// Back to one message at a time from just after the known match. When
	// leaving a snapshot, the snapshot's index is a known match.
	if p.state == ProgressSnapshot && p.snap.snap != nil {
		p.next = max(p.match, p.snap.snap.Meta.Index) + 1
	} else {
		p.next = p.match + 1
	}
	p.state = ProgressProbe
	p.probeSent = false
	p.snap = snapshotTransfer{}
	p.inflight.reset()
}

func (p *progress) becomeReplicate() {
	p.state = ProgressReplicate
	p.next = p.match + 1
	p.probeSent = false
	p.snap = snapshotTransfer{}
	p.inflight.reset()
}

func (p *progress) becomeSnapshot(s *Snapshot) {
	p.state = ProgressSnapshot
	p.probeSent = false
	p.inflight.reset()
	p.snap = snapshotTransfer{snap: s}
}

// maybeUpdate records a successful append up to n; it reports whether the
// match advanced.
func (p *progress) maybeUpdate(n uint64) bool {
	updated := false
	if p.match < n {
		p.match = n
		updated = true
		p.probeSent = false
	}
	p.next = max(p.next, n+1)
	return updated
}

// maybeDecrTo handles a rejected MsgApp whose prev index was rejected, with
// the leader's computed next probe point. It reports false for a stale
// rejection (one that does not concern the current next).
func (p *progress) maybeDecrTo(rejected, probe uint64) bool {
	if p.state == ProgressReplicate {
		// Out of order rejection of an entry that already matched.
		if rejected <= p.match {
			return false
		}
		p.next = p.match + 1
		return true
	}
	if p.next-1 != rejected {
		return false
	}
	if probe < p.match {
		// The follower's log ends below what it acknowledged: it lost
		// its state (an in-memory node restarted under the same ID).
		// Match is no longer true; probing must go below it, or the
		// follower never catches up. (A durable follower's hint is
		// never below match; a stale duplicate rejection that gets here
		// only costs a re-probe: match rises again with the next ack,
		// and the commit index never moves back.)
		p.match = 0
	}
	p.next = max(min(rejected, probe+1), p.match+1)
	p.probeSent = false
	return true
}

// isPaused reports whether the leader must not send this follower a MsgApp
// now (flow control).
func (p *progress) isPaused() bool {
	switch p.state {
	case ProgressProbe:
		return p.probeSent
	case ProgressReplicate:
		return p.inflight.full()
	default:
		return true
	}
}

// inflights is a ring buffer of the MsgApps in flight to one follower: the
// last index and the bytes of each, oldest first.
type inflights struct {
	start, count int
	bytes        uint64
	maxCount     int
	maxBytes     uint64
	buf          []inflight
}

type inflight struct {
	index uint64
	bytes uint64
}

func newInflights(maxCount int, maxBytes uint64) inflights {
	return inflights{maxCount: maxCount, maxBytes: maxBytes}
}

func (in *inflights) add(index, bytes uint64) {
	if in.buf == nil {
		// Grown lazily: most followers never need the full window.
		in.buf = make([]inflight, min(in.maxCount, 16))
	}
	if in.count == len(in.buf) {
		grown := make([]inflight, min(len(in.buf)*2, in.maxCount))
		for i := 0; i < in.count; i++ {
			grown[i] = in.buf[(in.start+i)%len(in.buf)]
		}
		in.buf = grown
		in.start = 0
	}
	in.buf[(in.start+in.count)%len(in.buf)] = inflight{index: index, bytes: bytes}
	in.count++
	in.bytes += bytes
}

// freeLE frees the messages whose last index is <= index (acknowledged).
func (in *inflights) freeLE(index uint64) {
	for in.count > 0 {
		f := &in.buf[in.start]
		if f.index > index {
			return
		}
		in.bytes -= f.bytes
		in.start = (in.start + 1) % len(in.buf)
		in.count--
	}
}

func (in *inflights) full() bool {
	return in.count >= in.maxCount || (in.maxBytes > 0 && in.bytes >= in.maxBytes)
}

func (in *inflights) reset() {
	in.start, in.count, in.bytes = 0, 0, 0
}
