package dkredis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distkit/distkit/idempotency"
)

// ErrInvalidConfig reports a Config that fails Validate, a nil client, or a
// Store used without New.
var ErrInvalidConfig = errors.New("dkredis: invalid config")

// ErrCorrupt reports a Redis hash under the store's prefix that is not a
// record this package wrote (a missing or malformed field).
var ErrCorrupt = errors.New("dkredis: corrupt record")

// Config configures a Store.
type Config struct {
	// Prefix is put before every idempotency key to form the Redis key
	// (default "distkit:idem:"). Two stores with different prefixes share
	// a Redis without seeing each other's records.
	Prefix string
}

// DefaultConfig returns the defaults described on Config.
func DefaultConfig() Config { return Config{Prefix: "distkit:idem:"} }

// Validate reports whether c is usable.
func (c Config) Validate() error {
	if len(c.Prefix) > 256 {
		return fmt.Errorf("%w: Prefix of %d bytes; limit 256", ErrInvalidConfig, len(c.Prefix))
	}
	return nil
}

// Store is an idempotency.Store on Redis: one hash per key, every change
// made by a Lua script so that each check-and-write is atomic and takes
// one round trip. It is safe for concurrent use and starts no goroutines;
// the client's connection pool is the caller's (Close the client, not the
// Store).
type Store struct {
	client redis.UniversalClient
	cfg    Config
}

var _ idempotency.Store = (*Store)(nil)

// New returns a Store that keeps its records in the Redis client talks to.
func New(client redis.UniversalClient, cfg Config) (*Store, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil client", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Store{client: client, cfg: cfg}, nil
}

// Hash fields of a record. Times are Unix microseconds: Lua compares them
// as doubles, exact below 2^53 µs (the year 2255).
const (
	fStatus  = "s"
	fToken   = "t" // decimal uint64, compared as a string
	fFP      = "f"
	fResult  = "r"
	fFlags   = "x" // flagFailed | flagOmitted
	fCreated = "c"
	fExpires = "e"

	flagFailed  = 1
	flagOmitted = 2
)

// beginScript creates the proposal unless a record live at its Created
// time exists; it returns {1} when it created, else {0, fields...}.
// KEYS[1] the record; ARGV token, fingerprint, created µs, expires µs,
// physical TTL ms.
var beginScript = redis.NewScript(`
local e = redis.call('HGET', KEYS[1], 'e')
if e and tonumber(e) > tonumber(ARGV[3]) then
  local h = redis.call('HMGET', KEYS[1], 's', 't', 'f', 'r', 'x', 'c', 'e')
  table.insert(h, 1, 0)
  return h
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 's', '1', 't', ARGV[1], 'f', ARGV[2], 'c', ARGV[3], 'e', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {1}
`)

// completeScript replaces the in-progress record carrying the token with
// the completed one; it returns 1, or 0 if the record is not the caller's.
// ARGV token, fingerprint, result, flags, created µs, expires µs, TTL ms.
var completeScript = redis.NewScript(`
local h = redis.call('HMGET', KEYS[1], 's', 't')
if h[1] ~= '1' or h[2] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 's', '2', 'f', ARGV[2], 'r', ARGV[3], 'x', ARGV[4], 'c', ARGV[5], 'e', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
return 1
`)

// abortScript deletes the in-progress record carrying the token; it
// returns 1, or 0 if the record is not the caller's.
var abortScript = redis.NewScript(`
local h = redis.call('HMGET', KEYS[1], 's', 't')
if h[1] ~= '1' or h[2] ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`)

func (s *Store) usable() error {
	if s == nil || s.client == nil {
		return fmt.Errorf("%w: Store used without New", ErrInvalidConfig)
	}
	return nil
}

func micros(t time.Time) string { return strconv.FormatInt(t.UnixMicro(), 10) }

// physicalTTL is how long Redis keeps a record: Expires − Created, which is
// at least the record's remaining life when it is written (see doc.go).
func physicalTTL(r idempotency.Record) string {
	ms := r.Expires.Sub(r.Created).Milliseconds() + 1
	if ms < 1 {
		ms = 1
	}
	return strconv.FormatInt(ms, 10)
}

// Begin implements idempotency.Store.
func (s *Store) Begin(ctx context.Context, p idempotency.Record) (idempotency.Record, bool, error) {
	if err := s.usable(); err != nil {
		return idempotency.Record{}, false, err
	}
	if err := checkProposal(p); err != nil {
		return idempotency.Record{}, false, err
	}
	res, err := beginScript.Run(ctx, s.client, []string{s.cfg.Prefix + p.Key},
		strconv.FormatUint(p.Token, 10), p.Fingerprint, micros(p.Created), micros(p.Expires), physicalTTL(p)).Slice()
	if err != nil {
		return idempotency.Record{}, false, fmt.Errorf("dkredis: begin %q: %w", p.Key, err)
	}
	if len(res) == 1 {
		return p, true, nil
	}
	if len(res) != 8 {
		return idempotency.Record{}, false, fmt.Errorf("%w: begin %q: script returned %d values", ErrCorrupt, p.Key, len(res))
	}
	held, ok, err := decode(p.Key, res[1:])
	if err != nil {
		return idempotency.Record{}, false, err
	}
	if !ok { // cannot happen: the script saw the record in the same step
		return idempotency.Record{}, false, fmt.Errorf("%w: begin %q: held record vanished", ErrCorrupt, p.Key)
	}
	return held, false, nil
}

// Get implements idempotency.Store.
func (s *Store) Get(ctx context.Context, key string) (idempotency.Record, bool, error) {
	if err := s.usable(); err != nil {
		return idempotency.Record{}, false, err
	}
	vals, err := s.client.HMGet(ctx, s.cfg.Prefix+key, fStatus, fToken, fFP, fResult, fFlags, fCreated, fExpires).Result()
	if err != nil {
		return idempotency.Record{}, false, fmt.Errorf("dkredis: get %q: %w", key, err)
	}
	return decode(key, vals)
}

// decode turns the fields s, t, f, r, x, c, e into a Record; all nil
// means no record.
func decode(key string, v []any) (idempotency.Record, bool, error) {
	if v[0] == nil && v[6] == nil {
		return idempotency.Record{}, false, nil
	}
	str := func(i int) (string, bool) {
		s, ok := v[i].(string)
		return s, ok
	}
	bad := func(field string) (idempotency.Record, bool, error) {
		return idempotency.Record{}, false, fmt.Errorf("%w: key %q: field %s", ErrCorrupt, key, field)
	}
	rec := idempotency.Record{Key: key}
	st, ok := str(0)
	switch {
	case !ok:
		return bad("status")
	case st == "1":
		rec.Status = idempotency.StatusInProgress
	case st == "2":
		rec.Status = idempotency.StatusCompleted
	default:
		return bad("status")
	}
	tok, ok := str(1)
	if !ok {
		return bad("token")
	}
	var err error
	if rec.Token, err = strconv.ParseUint(tok, 10, 64); err != nil {
		return bad("token")
	}
	if rec.Fingerprint, ok = str(2); !ok {
		return bad("fingerprint")
	}
	if r, ok := str(3); ok && r != "" {
		rec.Result = []byte(r)
	}
	if x, ok := str(4); ok {
		flags, err := strconv.Atoi(x)
		if err != nil || flags < 0 || flags > flagFailed|flagOmitted {
			return bad("flags")
		}
		rec.Failed, rec.Omitted = flags&flagFailed != 0, flags&flagOmitted != 0
	}
	for _, f := range []struct {
		i   int
		dst *time.Time
		n   string
	}{{5, &rec.Created, "created"}, {6, &rec.Expires, "expires"}} {
		s, ok := str(f.i)
		if !ok {
			return bad(f.n)
		}
		us, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return bad(f.n)
		}
		*f.dst = time.UnixMicro(us).UTC()
	}
	return rec, true, nil
}

// Complete implements idempotency.Store: one round trip, and only the
// in-progress record carrying rec.Token is replaced.
func (s *Store) Complete(ctx context.Context, rec idempotency.Record) error {
	if err := s.usable(); err != nil {
		return err
	}
	if err := idempotency.ValidateKey(rec.Key); err != nil {
		return err
	}
	if rec.Status != idempotency.StatusCompleted {
		return fmt.Errorf("dkredis: Complete record for %q has status %v; want %v", rec.Key, rec.Status, idempotency.StatusCompleted)
	}
	flags := 0
	if rec.Failed {
		flags |= flagFailed
	}
	if rec.Omitted {
		flags |= flagOmitted
	}
	n, err := completeScript.Run(ctx, s.client, []string{s.cfg.Prefix + rec.Key},
		strconv.FormatUint(rec.Token, 10), rec.Fingerprint, rec.Result, strconv.Itoa(flags),
		micros(rec.Created), micros(rec.Expires), physicalTTL(rec)).Int()
	if err != nil {
		return fmt.Errorf("dkredis: complete %q: %w", rec.Key, err)
	}
	if n != 1 {
		return fmt.Errorf("%w: complete %q", idempotency.ErrNotOwner, rec.Key)
	}
	return nil
}

// Abort implements idempotency.Store: one round trip, and only the
// in-progress record carrying token is removed.
func (s *Store) Abort(ctx context.Context, key string, token uint64) error {
	if err := s.usable(); err != nil {
		return err
	}
	if err := idempotency.ValidateKey(key); err != nil {
		return err
	}
	n, err := abortScript.Run(ctx, s.client, []string{s.cfg.Prefix + key}, strconv.FormatUint(token, 10)).Int()
	if err != nil {
		return fmt.Errorf("dkredis: abort %q: %w", key, err)
	}
	if n != 1 {
		return fmt.Errorf("%w: abort %q", idempotency.ErrNotOwner, key)
	}
	return nil
}

// checkProposal rejects a Begin proposal that would store a bad record.
func checkProposal(p idempotency.Record) error {
	if err := idempotency.ValidateKey(p.Key); err != nil {
		return err
	}
	if p.Status != idempotency.StatusInProgress {
		return fmt.Errorf("dkredis: Begin proposal for %q has status %v; want %v", p.Key, p.Status, idempotency.StatusInProgress)
	}
	if !p.Expires.After(p.Created) {
		return fmt.Errorf("dkredis: Begin proposal for %q expires (%v) no later than it is created (%v)", p.Key, p.Expires, p.Created)
	}
	return nil
}

// Prefix returns the prefix of the store's Redis keys.
func (s *Store) Prefix() string {
	if s == nil {
		return ""
	}
	return s.cfg.Prefix
}
