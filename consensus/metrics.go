package consensus

import (
	"sync/atomic"
	"time"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
)

// Metrics receives a Node's events as they happen, so that an application
// can feed Prometheus, expvar, OpenTelemetry or its own counters without
// this package depending on any of them. Set Config.Metrics; nil means
// none, at the cost of one nil check per event.
//
// The Node calls the methods synchronously from its own goroutine (and
// MessageDropped also from the transport's receiving goroutines), so an
// implementation must be safe for concurrent use, fast and non-blocking:
// increment counters or atomics, never do I/O, take a lock held for long,
// or call back into the Node. Every call delays the node's loop by as long
// as it takes. Embed NopMetrics to implement only some of the methods.
//
// To publish through expvar, for instance:
//
//	type expvarMetrics struct {
//		consensus.NopMetrics
//		saves, applied *expvar.Int
//	}
//
//	func (m expvarMetrics) ObserveSave(d time.Duration, entries int) { m.saves.Add(1) }
//	func (m expvarMetrics) ObserveApply(entries int, d time.Duration) {
//		m.applied.Add(int64(entries))
//	}
//
//	cfg.Metrics = expvarMetrics{saves: expvar.NewInt("raft_saves"), applied: expvar.NewInt("raft_applied")}
//
// The same figures, accumulated, are in Node.Status.
type Metrics interface {
	// ObserveSave reports one write of a Ready's entries, or of a new term
	// or vote, to storage (one fsync, for a durable node; a commit index
	// alone is saved lazily and not reported), and how long it took.
	ObserveSave(d time.Duration, entries int)
	// ObserveApply reports one batch of committed entries applied to the
	// StateMachine (the entries of one Ready, or the part of them applied
	// before its fsync) and how long the batch took.
	ObserveApply(entries int, d time.Duration)
	// LeaderChanged reports a change of the leader this node knows of, in
	// term ("" during an election).
	LeaderChanged(leader transport.NodeID, term uint64)
	// MessageDropped reports a message this node dropped, and why.
	MessageDropped(reason DropReason)
	// Snapshot reports a snapshot taken, sent or installed, by its index.
	Snapshot(event SnapshotEvent, index uint64)
}

// NopMetrics implements Metrics with methods that do nothing. Embed it in
// a Metrics that implements only some methods.
type NopMetrics struct{}

var _ Metrics = NopMetrics{}

// ObserveSave does nothing.
func (NopMetrics) ObserveSave(time.Duration, int) {}

// ObserveApply does nothing.
func (NopMetrics) ObserveApply(int, time.Duration) {}

// LeaderChanged does nothing.
func (NopMetrics) LeaderChanged(transport.NodeID, uint64) {}

// MessageDropped does nothing.
func (NopMetrics) MessageDropped(DropReason) {}

// Snapshot does nothing.
func (NopMetrics) Snapshot(SnapshotEvent, uint64) {}

// DropReason says why a Node dropped a message.
type DropReason uint8

// The reasons a message is dropped. Raft tolerates lost messages (the
// leader retransmits), so a drop is never an error by itself; a steady
// stream of drops of one reason points at a misconfiguration or overload.
const (
	// DropForeignCluster: a received message carried another cluster's ID.
	DropForeignCluster DropReason = iota + 1
	// DropNonMember: a received message came from a node that is not a
	// member.
	DropNonMember
	// DropMalformed: a received message could not be decoded or was
	// misaddressed.
	DropMalformed
	// DropQueueFull: a received message found the node's queue full (the
	// loop is behind, by maxQueuedMessages messages).
	DropQueueFull
	// DropSendFailed: the transport refused a message this node sent
	// (peer unreachable, its queue full, or the transport closed).
	DropSendFailed
)

var dropReasonNames = [...]string{
	DropForeignCluster: "foreign_cluster",
	DropNonMember:      "non_member",
	DropMalformed:      "malformed",
	DropQueueFull:      "queue_full",
	DropSendFailed:     "send_failed",
}

// String returns the reason's name in snake case ("foreign_cluster"),
// suitable as a metric label.
func (r DropReason) String() string {
	if r == 0 || int(r) >= len(dropReasonNames) {
		return "unknown"
	}
	return dropReasonNames[r]
}

// SnapshotEvent says what happened to a snapshot.
type SnapshotEvent uint8

// The snapshot events.
const (
	// SnapshotTaken: this node snapshotted its state machine and compacted
	// its log (recorded in storage).
	SnapshotTaken SnapshotEvent = iota + 1
	// SnapshotSent: this node, as leader, started sending a snapshot to a
	// follower that needs entries it compacted (the first chunk went to
	// the transport; a transfer restarted from the beginning counts again).
	SnapshotSent
	// SnapshotInstalled: this node installed a snapshot received from the
	// leader, replacing its log and state machine.
	SnapshotInstalled
)

// String returns the event's name ("taken", "sent", "installed").
func (e SnapshotEvent) String() string {
	switch e {
	case SnapshotTaken:
		return "taken"
	case SnapshotSent:
		return "sent"
	case SnapshotInstalled:
		return "installed"
	}
	return "unknown"
}

// HistogramBuckets is the number of finite buckets of a Histogram.
const HistogramBuckets = 16

// histogramFirstBound is the upper bound of a Histogram's first bucket;
// each next bucket's bound doubles it (50µs … 1.6384s).
const histogramFirstBound = 50 * time.Microsecond

// HistogramBound returns the upper bound (inclusive) of bucket i of every
// Histogram: 50µs·2^i, from 50µs to 1.6384s; 0 for an i out of range.
func HistogramBound(i int) time.Duration {
	if i < 0 || i >= HistogramBuckets {
		return 0
	}
	return histogramFirstBound << i
}

// Histogram counts durations in HistogramBuckets fixed, log-scale buckets,
// the form Prometheus expects: Buckets[i] counts the observations of at
// most HistogramBound(i), so the counts are cumulative (never decreasing
// with i); Count counts all of them, those above the last bound included
// (the "+Inf" bucket), and Sum adds them up.
type Histogram struct {
	Buckets [HistogramBuckets]uint64
	Count   uint64
	Sum     time.Duration
}

// Mean returns Sum/Count, or 0 for an empty histogram.
func (h Histogram) Mean() time.Duration {
	if h.Count == 0 {
		return 0
	}
	return h.Sum / time.Duration(h.Count)
}

// histogram is the recording side of a Histogram: per-bucket (not
// cumulative) counts, so that an observation touches one bucket. The
// Node's loop owns it.
type histogram struct {
	buckets [HistogramBuckets + 1]uint64 // the last one is above every bound
	sum     time.Duration
}

func (h *histogram) observe(d time.Duration) {
	i := 0
	for i < HistogramBuckets && d > HistogramBound(i) {
		i++
	}
	h.buckets[i]++
	h.sum += d
}

// snapshot returns the cumulative Histogram.
func (h *histogram) snapshot() Histogram {
	var out Histogram
	var total uint64
	for i := range HistogramBuckets {
		total += h.buckets[i]
		out.Buckets[i] = total
	}
	out.Count = total + h.buckets[HistogramBuckets]
	out.Sum = h.sum
	return out
}

// observer records a Node's figures for Status and forwards its events to
// Config.Metrics. The loop owns every field except queueFull, written by
// the transport's handler.
type observer struct {
	metrics Metrics // nil: none

	// term and vote are those of the last hard state saved (startSave).
	term uint64
	vote transport.NodeID

	lastSave           time.Duration
	save, apply        histogram
	snapshotsTaken     uint64
	snapshotsSent      uint64
	snapshotChunksSent uint64
	snapshotsInstalled uint64
	sendFailed         uint64
	queueFull          atomic.Uint64
}

// startSave returns the time a Save of rd starts if it writes to disk
// (entries, or a new term or vote: an fsync on a durable node), or the zero
// time if it does not (a commit index alone is saved lazily, or nothing):
// such a Save is not recorded and the clock is not read, since a leader's
// Readies without entries are many.
func (o *observer) startSave(rd *raft.Ready) time.Time {
	hs := rd.HardState
	if len(rd.Entries) == 0 && (hs.IsZero() || (hs.Term == o.term && hs.Vote == o.vote)) {
		return time.Time{}
	}
	if !hs.IsZero() {
		o.term, o.vote = hs.Term, hs.Vote
	}
	return time.Now()
}

// saved records a Save of entries that took d.
func (o *observer) saved(d time.Duration, entries int) {
	o.lastSave = d
	o.save.observe(d)
	if o.metrics != nil {
		o.metrics.ObserveSave(d, entries)
	}
}

// applied records a batch of entries applied in d.
func (o *observer) applied(entries int, d time.Duration) {
	o.apply.observe(d)
	if o.metrics != nil {
		o.metrics.ObserveApply(entries, d)
	}
}

// snapshot records a snapshot event.
func (o *observer) snapshot(ev SnapshotEvent, index uint64) {
	switch ev {
	case SnapshotTaken:
		o.snapshotsTaken++
	case SnapshotSent:
		o.snapshotsSent++
	case SnapshotInstalled:
		o.snapshotsInstalled++
	}
	if o.metrics != nil {
		o.metrics.Snapshot(ev, index)
	}
}

// dropped forwards a drop to Metrics; the caller counted it.
func (o *observer) dropped(reason DropReason) {
	if o.metrics != nil {
		o.metrics.MessageDropped(reason)
	}
}

// leaderChanged forwards a change of leader to Metrics.
func (o *observer) leaderChanged(leader transport.NodeID, term uint64) {
	if o.metrics != nil {
		o.metrics.LeaderChanged(leader, term)
	}
}

// fill copies the figures into st. It runs on the loop.
func (o *observer) fill(st *Status) {
	st.LastSaveDuration = o.lastSave
	st.SaveLatency = o.save.snapshot()
	st.ApplyLatency = o.apply.snapshot()
	st.SnapshotsTaken = o.snapshotsTaken
	st.SnapshotsSent = o.snapshotsSent
	st.SnapshotChunksSent = o.snapshotChunksSent
	st.SnapshotsInstalled = o.snapshotsInstalled
	st.DroppedSendFailed = o.sendFailed
	st.DroppedQueueFull = o.queueFull.Load()
}

// sent records the outcome of sending m: a failure is a dropped message; a
// snapshot's first chunk is a snapshot sent.
func (o *observer) sent(m *raft.Message, err error) {
	switch {
	case err != nil:
		o.sendFailed++
		o.dropped(DropSendFailed)
	case m.Type == raft.MsgSnap:
		o.snapshotChunksSent++
		if m.Offset == 0 && m.Snapshot != nil {
			o.snapshot(SnapshotSent, m.Snapshot.Index)
		}
	}
}
