package lock

import (
	"time"

	"github.com/distkit/distkit/consensus"
)

// SetOnQueued installs a hook called when an acquire starts waiting.
func (l *Local) SetOnQueued(f func(Request)) {
	l.mu.Lock()
	l.onQueued = f
	l.mu.Unlock()
}

var t0Internal = time.Unix(1_000_000, 0)

func consensusEntry(b []byte) consensus.Entry { return consensus.Entry{Index: 1, Term: 1, Command: b} }
