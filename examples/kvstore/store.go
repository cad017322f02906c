package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
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
//
// The map is a persistent (immutable, path-copying) treap: Apply builds a
// new root that shares all but O(log n) nodes with the old one, so a
// snapshot view is just the root at that moment (consensus.SnapshotViewer):
// the node writes it out on its snapshot goroutine while Apply goes on,
// and taking it costs nothing however large the state is.
type kvStore struct {
	mu      sync.RWMutex // guards root, size and changed
	root    *treapNode
	size    int
	changed chan struct{} // closed and replaced whenever the data changes
}

var _ consensus.SnapshotViewer = (*kvStore)(nil)

func newKVStore() *kvStore {
	return &kvStore{changed: make(chan struct{})}
}

// notifyLocked wakes waitUntil callers. Called with mu held for writing.
func (s *kvStore) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// waitUntil blocks until cond holds for the local copy or ctx ends. cond
// gets a copy of the data as a map, made at every change: it is meant for
// demos and tests with small states.
func (s *kvStore) waitUntil(ctx context.Context, cond func(data map[string]string) bool) error {
	for {
		s.mu.RLock()
		root, changed := s.root, s.changed
		s.mu.RUnlock()
		data := map[string]string{}
		root.each(func(k, v string) bool { data[k] = v; return true })
		if cond(data) {
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
	switch c.Op {
	case "put":
		var added bool
		s.root, added = s.root.put(c.Key, c.Value, treapPriority(c.Key))
		if added {
			s.size++
		}
		s.notifyLocked()
		return result{Value: c.Value, Found: true}
	case "get":
		v, ok := s.root.get(c.Key)
		return result{Value: v, Found: ok}
	case "delete":
		v, ok := s.root.get(c.Key)
		if ok {
			s.root = s.root.delete(c.Key)
			s.size--
			s.notifyLocked()
		}
		return result{Value: v, Found: ok}
	}
	return result{Err: fmt.Sprintf("unknown op %q", c.Op)}
}

// Snapshot implements consensus.StateMachine (the node uses SnapshotView;
// Snapshot writes the same bytes).
func (s *kvStore) Snapshot(w io.Writer) error {
	v, _ := s.SnapshotView()
	defer v.Release()
	return v.WriteSnapshot(w)
}

// SnapshotView implements consensus.SnapshotViewer: the view is the
// current root, which no later Apply or Restore changes.
func (s *kvStore) SnapshotView() (consensus.SnapshotWriter, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return kvView{root: s.root}, nil
}

// kvView is a point-in-time view of the store: an immutable treap root.
type kvView struct{ root *treapNode }

// WriteSnapshot writes the view as a JSON object with the keys in
// ascending order and a newline: the same bytes json.Encoder writes for
// the map, which Restore reads.
func (v kvView) WriteSnapshot(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var err error
	buf := []byte{'{'}
	first := true
	v.root.each(func(k, val string) bool {
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = appendJSONString(buf, k)
		buf = append(buf, ':')
		buf = appendJSONString(buf, val)
		if len(buf) >= 32<<10 {
			_, err = bw.Write(buf)
			buf = buf[:0]
		}
		return err == nil
	})
	if err != nil {
		return fmt.Errorf("kvstore: snapshot: %w", err)
	}
	buf = append(buf, '}', '\n')
	if _, err := bw.Write(buf); err != nil {
		return fmt.Errorf("kvstore: snapshot: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("kvstore: snapshot: %w", err)
	}
	return nil
}

// Release implements consensus.SnapshotWriter; the garbage collector frees
// what the view alone held.
func (kvView) Release() {}

// appendJSONString appends s as json.Marshal encodes it. Printable ASCII
// that needs no escape (most keys and values) is copied as it is; any other
// string goes through json.Marshal.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always encodes
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// Restore implements consensus.StateMachine.
func (s *kvStore) Restore(r io.Reader) error {
	data := map[string]string{}
	if err := json.NewDecoder(r).Decode(&data); err != nil {
		return fmt.Errorf("kvstore: restore: %w", err)
	}
	var root *treapNode
	for k, v := range data {
		root, _ = root.put(k, v, treapPriority(k))
	}
	s.mu.Lock()
	s.root, s.size = root, len(data)
	s.notifyLocked()
	s.mu.Unlock()
	return nil
}

// Get reads a key from the local copy, without going through the log.
func (s *kvStore) Get(key string) (string, bool) {
	s.mu.RLock()
	root := s.root
	s.mu.RUnlock()
	return root.get(key)
}

// Len returns the number of keys in the local copy.
func (s *kvStore) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.size
}

// treapNode is a node of a persistent treap: a binary search tree on key
// and a max-heap on prio, which keeps it balanced in expectation (depth
// about 2 ln n). Nodes are never modified once reachable from a root:
// put and delete copy the path they change and return a new root. A nil
// *treapNode is the empty tree.
type treapNode struct {
	key, val    string
	prio        uint64
	left, right *treapNode
}

// treapSeed keys the priorities: random per process, so that no sequence
// of keys can unbalance the tree on purpose. The tree's shape does not
// reach the snapshot (written in key order).
var treapSeed = maphash.MakeSeed()

func treapPriority(key string) uint64 { return maphash.String(treapSeed, key) }

func (t *treapNode) get(key string) (string, bool) {
	for t != nil {
		switch {
		case key < t.key:
			t = t.left
		case key > t.key:
			t = t.right
		default:
			return t.val, true
		}
	}
	return "", false
}

// put returns a tree with key set to val (prio is treapPriority(key)) and
// whether the key is new.
func (t *treapNode) put(key, val string, prio uint64) (*treapNode, bool) {
	if t == nil {
		return &treapNode{key: key, val: val, prio: prio}, true
	}
	if key == t.key {
		c := *t
		c.val = val
		return &c, false
	}
	if prio > t.prio {
		// The key goes here, above t. It is not in t's subtree: a
		// descendant's priority is at most t.prio.
		l, r := t.split(key)
		return &treapNode{key: key, val: val, prio: prio, left: l, right: r}, true
	}
	c := *t
	var added bool
	if key < t.key {
		c.left, added = t.left.put(key, val, prio)
	} else {
		c.right, added = t.right.put(key, val, prio)
	}
	return &c, added
}

// split returns the trees of t's keys below and above key (not in t).
func (t *treapNode) split(key string) (below, above *treapNode) {
	if t == nil {
		return nil, nil
	}
	c := *t
	if t.key < key {
		c.right, above = t.right.split(key)
		return &c, above
	}
	below, c.left = t.left.split(key)
	return below, &c
}

// delete returns a tree without key, which must be in t.
func (t *treapNode) delete(key string) *treapNode {
	switch {
	case t == nil:
		return nil
	case key < t.key:
		c := *t
		c.left = t.left.delete(key)
		return &c
	case key > t.key:
		c := *t
		c.right = t.right.delete(key)
		return &c
	}
	return merge(t.left, t.right)
}

// merge joins two trees whose keys are all below (l) and above (r) each
// other.
func merge(l, r *treapNode) *treapNode {
	switch {
	case l == nil:
		return r
	case r == nil:
		return l
	case l.prio > r.prio:
		c := *l
		c.right = merge(l.right, r)
		return &c
	}
	c := *r
	c.left = merge(l, r.left)
	return &c
}

// each calls f on every key and value in ascending key order until f
// returns false; it reports whether it went through all.
func (t *treapNode) each(f func(key, val string) bool) bool {
	for t != nil {
		if !t.left.each(f) || !f(t.key, t.val) {
			return false
		}
		t = t.right
	}
	return true
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
