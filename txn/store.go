package txn

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/google/uuid"
)

// Errors of the Store's NO votes.
var (
	// ErrInsufficientFunds: an Add would take an account below zero.
	ErrInsufficientFunds = errors.New("txn: insufficient funds")
	// ErrLocked: a key is held by another prepared transaction.
	ErrLocked = errors.New("txn: key locked by another transaction")
)

// OpKind says what an Op does.
type OpKind uint8

// Op kinds.
const (
	// OpAdd adds Amount (which may be negative) to the account Key; the
	// balance may not go below zero.
	OpAdd OpKind = 1 + iota
	// OpPut sets Key to Amount.
	OpPut
)

// Op is one operation on a Store.
type Op struct {
	Kind   OpKind
	Key    string
	Amount int64
}

const maxKey = 1024

// EncodeOps encodes operations for a Work's Ops.
func EncodeOps(ops ...Op) ([]byte, error) {
	b := binary.AppendUvarint(nil, uint64(len(ops)))
	for _, op := range ops {
		if op.Kind != OpAdd && op.Kind != OpPut {
			return nil, fmt.Errorf("%w: op kind %d", ErrInvalid, op.Kind)
		}
		if op.Key == "" || len(op.Key) > maxKey {
			return nil, fmt.Errorf("%w: key %q", ErrInvalid, op.Key)
		}
		b = append(b, byte(op.Kind))
		b = appendBytes(b, []byte(op.Key))
		b = binary.AppendVarint(b, op.Amount)
	}
	return b, nil
}

// DecodeOps decodes what EncodeOps produced. Errors wrap ErrMalformed.
func DecodeOps(b []byte) ([]Op, error) {
	r := reader{b: b}
	n := r.uvarint()
	if r.err == nil && n > uint64(len(b)) {
		r.fail("%d ops in %d bytes", n, len(b))
	}
	var ops []Op
	for i := uint64(0); i < n && r.err == nil; i++ {
		op := Op{Kind: OpKind(r.byte())}
		if r.err == nil && op.Kind != OpAdd && op.Kind != OpPut {
			r.fail("op kind %d", op.Kind)
		}
		op.Key = string(r.bytes("key", maxKey))
		if r.err == nil && op.Key == "" {
			r.fail("empty key")
		}
		op.Amount = r.varint()
		ops = append(ops, op)
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return nil, r.err
	}
	return ops, nil
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// kv is a key and its value, the unit of intents and snapshots.
type kv struct {
	key   string
	value int64
}

func encodeKVs(kvs []kv) []byte {
	b := binary.AppendUvarint(nil, uint64(len(kvs)))
	for _, e := range kvs {
		b = appendBytes(b, []byte(e.key))
		b = binary.AppendVarint(b, e.value)
	}
	return b
}

func decodeKVs(b []byte) ([]kv, error) {
	r := reader{b: b}
	n := r.uvarint()
	if r.err == nil && n > uint64(len(b)) {
		r.fail("%d entries in %d bytes", n, len(b))
	}
	var out []kv
	for i := uint64(0); i < n && r.err == nil; i++ {
		k := string(r.bytes("key", maxKey))
		out = append(out, kv{key: k, value: r.varint()})
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return nil, r.err
	}
	return out, nil
}

// Store is a ready ResourceManager: an in-memory store of int64 accounts
// (or counters, or values) with a lock per key. Prepare takes the locks of
// the keys a transaction touches and computes their new values (the
// intent); Commit installs them and releases the locks; Abort just
// releases them. A key already locked by another transaction makes
// Prepare vote NO at once (no waiting, so no deadlocks between
// transactions that lock keys in different orders). Its durability is the
// Participant's log (see ResourceManager).
//
// A Store is safe for concurrent use. The zero Store is empty and ready
// to use, like one from NewStore.
type Store struct {
	// mu guards every field below.
	mu       sync.Mutex
	values   map[string]int64
	locks    map[string]uuid.UUID // key → the prepared transaction holding it
	prepared map[uuid.UUID][]kv   // prepared transaction → its intent
}

var _ ResourceManager = (*Store)(nil)

// NewStore returns an empty store.
func NewStore() *Store {
	s := &Store{}
	s.initLocked()
	return s
}

// initLocked makes the maps of a zero Store.
func (s *Store) initLocked() {
	if s.values == nil {
		s.values, s.locks, s.prepared = make(map[string]int64), make(map[string]uuid.UUID), make(map[uuid.UUID][]kv)
	}
}

// Prepare implements ResourceManager: it votes NO with ErrLocked or
// ErrInsufficientFunds, or with ErrMalformed for ops it cannot decode.
func (s *Store) Prepare(_ context.Context, txn uuid.UUID, ops []byte) ([]byte, error) {
	if s == nil {
		return nil, errNotBuilt
	}
	decoded, err := DecodeOps(ops)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.initLocked()
	if intent, ok := s.prepared[txn]; ok {
		return encodeKVs(intent), nil // a repeated PREPARE
	}
	next := make(map[string]int64)
	var order []string
	for _, op := range decoded {
		if holder, ok := s.locks[op.Key]; ok && holder != txn {
			return nil, fmt.Errorf("%w: %q", ErrLocked, op.Key)
		}
		v, seen := next[op.Key]
		if !seen {
			v = s.values[op.Key]
			order = append(order, op.Key)
		}
		switch op.Kind {
		case OpAdd:
			if v+op.Amount < 0 {
				return nil, fmt.Errorf("%w: %q holds %d, cannot add %d", ErrInsufficientFunds, op.Key, v, op.Amount)
			}
			v += op.Amount
		case OpPut:
			v = op.Amount
		}
		next[op.Key] = v
	}
	intent := make([]kv, len(order))
	for i, k := range order {
		intent[i] = kv{key: k, value: next[k]}
		s.locks[k] = txn
	}
	s.prepared[txn] = intent
	return encodeKVs(intent), nil
}

// Commit implements ResourceManager.
func (s *Store) Commit(txn uuid.UUID, intent []byte) error {
	if s == nil {
		return errNotBuilt
	}
	kvs, err := decodeKVs(intent)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.initLocked()
	for _, e := range kvs {
		s.values[e.key] = e.value
	}
	s.releaseLocked(txn, kvs)
	return nil
}

// Abort implements ResourceManager.
func (s *Store) Abort(txn uuid.UUID, intent []byte) error {
	if s == nil {
		return errNotBuilt
	}
	kvs, err := decodeKVs(intent)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked(txn, kvs)
	return nil
}

func (s *Store) releaseLocked(txn uuid.UUID, kvs []kv) {
	for _, e := range kvs {
		if s.locks[e.key] == txn {
			delete(s.locks, e.key)
		}
	}
	delete(s.prepared, txn)
}

// Snapshot implements ResourceManager: the committed values, sorted by key.
func (s *Store) Snapshot() ([]byte, error) {
	if s == nil {
		return nil, errNotBuilt
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := slices.Sorted(maps.Keys(s.values))
	kvs := make([]kv, len(keys))
	for i, k := range keys {
		kvs[i] = kv{key: k, value: s.values[k]}
	}
	return encodeKVs(kvs), nil
}

// Recover implements ResourceManager.
func (s *Store) Recover(r Recovery) error {
	if s == nil {
		return errNotBuilt
	}
	base, err := decodeKVs(r.Snapshot)
	if r.Snapshot == nil {
		base, err = nil, nil
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.initLocked()
	clear(s.values)
	clear(s.locks)
	clear(s.prepared)
	for _, e := range base {
		s.values[e.key] = e.value
	}
	for _, in := range r.Committed {
		kvs, err := decodeKVs(in.Data)
		if err != nil {
			return err
		}
		for _, e := range kvs {
			s.values[e.key] = e.value
		}
	}
	for _, in := range r.InDoubt {
		kvs, err := decodeKVs(in.Data)
		if err != nil {
			return err
		}
		for _, e := range kvs {
			s.locks[e.key] = in.Txn
		}
		s.prepared[in.Txn] = kvs
	}
	return nil
}

// Get returns the committed value of key.
func (s *Store) Get(key string) (int64, bool) {
	if s == nil {
		return 0, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.values[key]
	return v, ok
}

// Set sets the committed value of key outside any transaction, for tests
// and demos. It is not logged: NewParticipant's recovery replaces the
// store's state (so call Set after it), and a restart loses the value
// unless a checkpoint has captured it since. Calling Set again after a
// restart would overwrite what transactions committed meanwhile. To load
// initial data durably, run a transaction of OpPut operations instead.
func (s *Store) Set(key string, value int64) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.initLocked()
	s.values[key] = value
}

// Values returns a copy of every committed value.
func (s *Store) Values() map[string]int64 {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.values)
}

// Locked reports how many keys prepared transactions hold.
func (s *Store) Locked() int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.locks)
}
