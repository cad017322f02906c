package sim

import (
	"encoding/binary"
	"fmt"

	"github.com/cespare/xxhash/v2"
	"github.com/distkit/distkit/transport"
)

// traceKind names a line of the trace.
type traceKind uint8

const (
	evStart traceKind = iota + 1
	evCrash
	evInject
	evPartition
	evCut
	evIsolate
	evHeal
	evSend
	evDrop
	evDeliverMsg
	evFire
	evSetTimer
	evCancelTimer
	evRunAction
)

var traceNames = [...]string{
	evStart: "start", evCrash: "crash", evInject: "inject", evPartition: "partition",
	evCut: "cut", evIsolate: "isolate", evHeal: "heal", evSend: "send", evDrop: "drop",
	evDeliverMsg: "deliver", evFire: "timer", evSetTimer: "set-timer",
	evCancelTimer: "cancel-timer", evRunAction: "action",
}

// traceHash folds every recorded event into one 64-bit hash. Each record is
// length-delimited, so different event sequences cannot run together into
// the same byte stream.
type traceHash struct {
	d   *xxhash.Digest
	buf []byte // scratch for one record
}

func newTraceHash() traceHash { return traceHash{d: xxhash.New()} }

// record adds an event to the trace hash and, with Config.Trace, to the
// readable trace.
func (s *Sim) record(kind traceKind, a, b transport.NodeID, str string, payload []byte, n uint64) {
	h := &s.hash
	buf := h.buf[:0]
	buf = binary.LittleEndian.AppendUint64(buf, uint64(s.now))
	buf = append(buf, byte(kind))
	buf = appendString(buf, string(a))
	buf = appendString(buf, string(b))
	buf = appendString(buf, str)
	buf = binary.LittleEndian.AppendUint64(buf, n)
	buf = binary.LittleEndian.AppendUint64(buf, xxhash.Sum64(payload))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(len(payload)))
	h.buf = buf
	_, _ = h.d.Write(buf) // an xxhash.Digest never fails

	if s.cfg.Trace {
		line := fmt.Sprintf("%v %s", s.now, traceNames[kind])
		if a != "" || b != "" {
			line += fmt.Sprintf(" %s->%s", a, b)
		}
		if str != "" {
			line += " " + str
		}
		if n != 0 {
			line += fmt.Sprintf(" #%d", n)
		}
		if payload != nil {
			line += fmt.Sprintf(" %q", truncate(payload, 32))
		}
		s.trace = append(s.trace, line)
		s.logf("%s", line)
	}
}

func appendString(buf []byte, s string) []byte {
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(s)))
	return append(buf, s...)
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// TraceHash returns a hash of every event so far: sends, drops, deliveries,
// timers, crashes, restarts and test actions, with their virtual times. Two
// runs with the same seed and the same actions have the same hash; a
// difference means something nondeterministic crept in.
func (s *Sim) TraceHash() uint64 {
	if s == nil || s.nodes == nil {
		return 0
	}
	return s.hash.d.Sum64()
}

// Trace returns the readable trace recorded so far when Config.Trace is set,
// one line per event, or nil. The caller must not modify it.
func (s *Sim) Trace() []string {
	if s == nil || s.nodes == nil {
		return nil
	}
	return s.trace
}
