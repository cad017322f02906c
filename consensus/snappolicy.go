package consensus

import (
	"io"
	"time"

	"github.com/distkit/distkit/consensus/raft"
)

// snapPolicy decides whether a snapshot the core calls for (every
// Config.SnapshotThreshold applied entries) is taken now or deferred, so
// that a large state is not rewritten every few thousand small commands:
// with logPercent set, a snapshot is taken only once the command bytes
// applied since the last one started reach logPercent% of that snapshot's
// size (logPercent is Config.SnapshotLogPercent, passed to due). Rewriting the state then costs at most 100/logPercent bytes of
// snapshot per byte of commands, whatever the state's size, and the log
// kept between two snapshots stays below logPercent% of the state (plus
// SnapshotThreshold entries).
//
// It is owned by the node's goroutine and reads no clock: the same
// entries give the same decisions.
type snapPolicy struct {
	lastSize uint64 // bytes of the last snapshot taken; 0: none yet since start
	logBytes uint64 // command bytes applied since the last snapshot started
	pending  uint64 // logBytes handed to the snapshot in flight (given back if it fails)
	deferred uint64 // due snapshots deferred by the policy, for the log
}

// applied counts the command bytes of entries applied by the loop.
func (p *snapPolicy) applied(ents []raft.Entry) {
	for i := range ents {
		p.logBytes += uint64(len(ents[i].Data))
	}
}

// installed records that a snapshot from the leader replaced the log: the
// commands counted so far are in it.
func (p *snapPolicy) installed() { p.logBytes = 0 }

// due reports whether a snapshot the core calls for should be taken now,
// given Config.SnapshotLogPercent (0: always). A node's first snapshot,
// when it started without one, is always taken (the size of the state is
// not known before); a node restarted from a snapshot knows that one's
// size (newNode sets lastSize); later ones wait until enough commands
// were applied.
func (p *snapPolicy) due(logPercent uint64) bool {
	if logPercent == 0 || p.logBytes >= need(p.lastSize, logPercent) {
		return true
	}
	p.deferred++
	return false
}

// need is the command bytes that make a snapshot due after one of size
// bytes: logPercent% of it, saturating.
func need(size, logPercent uint64) uint64 {
	if size > (1<<64-1)/logPercent {
		return 1<<64 - 1
	}
	return size * logPercent / 100
}

// started records that a snapshot is being taken as of the last applied
// entry.
func (p *snapPolicy) started() {
	p.pending, p.logBytes = p.logBytes, 0
}

// finished records the outcome of the snapshot started last: its size if
// it was saved; if it was not, its commands count towards the next one.
func (p *snapPolicy) finished(size uint64, saved bool) {
	if saved {
		p.lastSize = size
	} else {
		p.logBytes += p.pending
	}
	p.pending = 0
}

// pacedSlice is the largest write a pacedWriter passes on at once when it
// paces: small enough that the storage below never holds much unsynced
// data, large enough that the sleeps between slices stay few.
const pacedSlice = 256 << 10

// pacedMinSleep is the shortest wait of a pacedWriter: a writer less
// ahead of its rate goes on, so that a view writing many small records
// does not sleep between each two (the rate holds on average; bursts are
// at most rate*pacedMinSleep bytes).
const pacedMinSleep = time.Millisecond

// pacedWriter is the writer the snapshot goroutine hands to a view: it
// passes the bytes on to w at no more than rate bytes per second on
// average (0: as fast as w takes them), in slices of pacedSlice, so that
// a large snapshot leaves the disk to the log's fsyncs and the CPU to the
// loop; and it fails every write with errSnapshotAbandoned once quit is
// closed (the node stopped), also while it waits. It counts the bytes
// written, which the snapshot policy uses as the snapshot's size.
type pacedWriter struct {
	w     io.Writer
	quit  <-chan struct{}
	rate  uint64    // bytes per second; 0 is no limit
	start time.Time // when the first byte was written
	n     uint64    // bytes written
}

func (p *pacedWriter) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		select {
		case <-p.quit:
			return written, errSnapshotAbandoned
		default:
		}
		k := len(b)
		if p.rate > 0 {
			k = min(k, pacedSlice)
			if err := p.wait(); err != nil {
				return written, err
			}
		}
		m, err := p.w.Write(b[:k])
		written += m
		p.n += uint64(m)
		if err != nil {
			return written, err
		}
		b = b[k:]
	}
	return written, nil
}

// wait sleeps until the bytes written so far are due at rate, or quit is
// closed.
func (p *pacedWriter) wait() error {
	if p.start.IsZero() {
		p.start = time.Now()
		return nil
	}
	ahead := time.Until(p.start.Add(time.Duration(float64(p.n) / float64(p.rate) * float64(time.Second))))
	if ahead < pacedMinSleep {
		return nil
	}
	t := time.NewTimer(ahead)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-p.quit:
		return errSnapshotAbandoned
	}
}
