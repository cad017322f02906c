package consensustest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/distkit/distkit/consensus"
)

// KV is a small key-value state machine for tests, examples and
// benchmarks: a command "key=value" sets key to value (a command without
// "=" changes nothing) and Apply returns the entry's index as a uint64,
// so a proposer learns where its command landed. It is safe for
// concurrent use: the node applies while tests read.
type KV struct {
	mu      sync.Mutex // guards data, applied and changed
	data    map[string]string
	applied uint64
	changed chan struct{} // closed (and replaced) whenever applied moves
}

var _ consensus.StateMachine = (*KV)(nil)

// NewKV returns an empty KV.
func NewKV() *KV { return &KV{data: map[string]string{}, changed: make(chan struct{})} }

// Apply applies one committed command; see KV.
func (s *KV) Apply(e consensus.Entry) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, v, ok := strings.Cut(string(e.Command), "="); ok {
		s.data[k] = v
	}
	s.advance(e.Index)
	return e.Index
}

// advance records index as applied and wakes WaitApplied. s.mu must be
// held.
func (s *KV) advance(index uint64) {
	s.applied = index
	close(s.changed)
	s.changed = make(chan struct{})
}

// kvSnapshot is KV's snapshot format.
type kvSnapshot struct {
	Applied uint64            `json:"applied"`
	Data    map[string]string `json:"data"`
}

// Snapshot writes the whole store as JSON.
func (s *KV) Snapshot(w io.Writer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return json.NewEncoder(w).Encode(kvSnapshot{Applied: s.applied, Data: s.data})
}

// Restore replaces the store with a snapshot written by Snapshot. A
// snapshot that does not decode is refused with an error and leaves the
// store as it was.
func (s *KV) Restore(r io.Reader) error {
	var snap kvSnapshot
	if err := json.NewDecoder(r).Decode(&snap); err != nil {
		return fmt.Errorf("consensustest: restore KV: %w", err)
	}
	if snap.Data == nil {
		snap.Data = map[string]string{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data = snap.Data
	s.advance(snap.Applied)
	return nil
}

// Get returns the value of key and whether it is set.
func (s *KV) Get(key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.data[key]
	return v, ok
}

// Len returns the number of keys set.
func (s *KV) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.data)
}

// Applied returns the index of the last entry applied (or restored).
func (s *KV) Applied() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied
}

// WaitApplied blocks until the store has applied index or ctx ends (with
// an error wrapping ctx's that says how far it got).
func (s *KV) WaitApplied(ctx context.Context, index uint64) error {
	for {
		s.mu.Lock()
		applied, changed := s.applied, s.changed
		s.mu.Unlock()
		if applied >= index {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("consensustest: applied %d, waiting for %d: %w", applied, index, ctx.Err())
		}
	}
}
