package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/distkit/distkit/consensus"
)

// command is one replicated operation, JSON-encoded in the Raft log.
type command struct {
	Op    string `json:"op"` // "put", "get" or "delete"
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
}

// result is what applying a command returns to the proposer.
type result struct {
	Value string `json:"value"`
	Found bool   `json:"found"`
	Err   string `json:"error,omitempty"`
}

// kvStore is the replicated state machine: a map from keys to values. Reads
// that go through the log ("get" commands) are linearizable; local reads
// (Get) may be stale on a follower.
type kvStore struct {
	mu      sync.RWMutex // guards data and changed
	data    map[string]string
	changed chan struct{} // closed and replaced whenever data changes
}

func newKVStore() *kvStore {
	return &kvStore{data: map[string]string{}, changed: make(chan struct{})}
}

// notifyLocked wakes waitUntil callers. Called with mu held for writing.
func (s *kvStore) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// waitUntil blocks until cond holds for the local copy or ctx ends.
func (s *kvStore) waitUntil(ctx context.Context, cond func(data map[string]string) bool) error {
	for {
		s.mu.RLock()
		ok, changed := cond(s.data), s.changed
		s.mu.RUnlock()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Apply implements consensus.StateMachine.
func (s *kvStore) Apply(e consensus.Entry) any {
	var c command
	if err := json.Unmarshal(e.Command, &c); err != nil {
		return result{Err: fmt.Sprintf("bad command: %v", err)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.notifyLocked()
	switch c.Op {
	case "put":
		s.data[c.Key] = c.Value
		return result{Value: c.Value, Found: true}
	case "get":
		v, ok := s.data[c.Key]
		return result{Value: v, Found: ok}
	case "delete":
		v, ok := s.data[c.Key]
		delete(s.data, c.Key)
		return result{Value: v, Found: ok}
	}
	return result{Err: fmt.Sprintf("unknown op %q", c.Op)}
}

// Snapshot implements consensus.StateMachine.
func (s *kvStore) Snapshot(w io.Writer) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return json.NewEncoder(w).Encode(s.data)
}

// Restore implements consensus.StateMachine.
func (s *kvStore) Restore(r io.Reader) error {
	data := map[string]string{}
	if err := json.NewDecoder(r).Decode(&data); err != nil {
		return fmt.Errorf("kvstore: restore: %w", err)
	}
	s.mu.Lock()
	s.data = data
	s.notifyLocked()
	s.mu.Unlock()
	return nil
}

// Get reads a key from the local copy, without going through the log.
func (s *kvStore) Get(key string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.data[key]
	return v, ok
}

func encodeCommand(op, key, value string) []byte {
	b, _ := json.Marshal(command{Op: op, Key: key, Value: value})
	return b
}
