package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/distkit/distkit/consensus"
)

// command is one replicated operation (encodeCommand gives its form in the
// Raft log).
type command struct {
	Op    string // "put", "get" or "delete"
	Key   string
	Value string // put only
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
	c, err := decodeCommand(e.Command)
	if err != nil {
		return result{Err: err.Error()}
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

// The form of a command in the log is binary, so that its size does not
// depend on its content (JSON escaping could grow a value sixfold) and the
// value limit is exact:
//
//	byte     op: 'p' put, 'g' get, 'd' delete
//	uvarint  key length
//	bytes    key
//	bytes    value (the rest; empty unless put)
var opCodes = map[string]byte{"put": 'p', "get": 'g', "delete": 'd'}

// maxCommandBytes is the largest command a valid request encodes to.
const maxCommandBytes = 1 + binary.MaxVarintLen64 + maxKeyBytes + maxValueBytes

// errBadCommand reports a log entry that is not a command.
var errBadCommand = errors.New("kvstore: bad command")

func encodeCommand(op, key, value string) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(key)+len(value))
	b = append(b, opCodes[op])
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	return append(b, value...)
}

func decodeCommand(b []byte) (command, error) {
	if len(b) == 0 {
		return command{}, fmt.Errorf("%w: empty", errBadCommand)
	}
	var c command
	for op, code := range opCodes {
		if code == b[0] {
			c.Op = op
		}
	}
	if c.Op == "" {
		return command{}, fmt.Errorf("%w: unknown op %q", errBadCommand, b[0])
	}
	n, w := binary.Uvarint(b[1:])
	if w <= 0 || n > uint64(len(b)-1-w) {
		return command{}, fmt.Errorf("%w: bad key length", errBadCommand)
	}
	rest := b[1+w:]
	c.Key, c.Value = string(rest[:n]), string(rest[n:])
	if c.Op != "put" && c.Value != "" {
		return command{}, fmt.Errorf("%w: %s with a value", errBadCommand, c.Op)
	}
	return c, nil
}

// resultCodec is the session table's codec for the store's results
// (consensus.ResultCodec): a duplicate of a command is answered with the
// decoded result of its first copy.
type resultCodec struct{}

var _ consensus.ResultCodec = resultCodec{}

// EncodeResult implements consensus.ResultCodec.
func (resultCodec) EncodeResult(v any) ([]byte, error) {
	r, ok := v.(result)
	if !ok {
		return nil, fmt.Errorf("kvstore: cannot encode a result of type %T", v)
	}
	return appendResult(nil, r), nil
}

// DecodeResult implements consensus.ResultCodec.
func (resultCodec) DecodeResult(b []byte) (any, error) { return decodeResult(b) }

// Result flags: the first byte of an encoded result; the value or the
// error text follows.
const (
	resultFound = 1 << 0
	resultErr   = 1 << 1
)

// errBadResult reports bytes that are not an encoded result.
var errBadResult = errors.New("kvstore: bad result")

func appendResult(dst []byte, r result) []byte {
	var flags byte
	if r.Found {
		flags |= resultFound
	}
	if r.Err != "" {
		return append(append(dst, flags|resultErr), r.Err...)
	}
	return append(append(dst, flags), r.Value...)
}

func decodeResult(b []byte) (result, error) {
	if len(b) == 0 || b[0]&^(resultFound|resultErr) != 0 {
		return result{}, fmt.Errorf("%w: %q", errBadResult, b[:min(len(b), 8)])
	}
	r := result{Found: b[0]&resultFound != 0}
	if b[0]&resultErr != 0 {
		r.Err = string(b[1:])
		if r.Err == "" {
			return result{}, fmt.Errorf("%w: empty error", errBadResult)
		}
		return r, nil
	}
	r.Value = string(b[1:])
	return r, nil
}
