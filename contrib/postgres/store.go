package dkpostgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/distkit/distkit/clock"
	"github.com/distkit/distkit/idempotency"
)

// ErrNoClaim is returned by CompleteInTx when its context is not the one a
// Runner passed to the operation (idempotency.ClaimFromContext finds no
// claim).
var ErrNoClaim = errors.New("dkpostgres: no idempotency claim in context (call CompleteInTx from the Runner's fn)")

// StoreConfig configures a Store.
type StoreConfig struct {
	// Table is the records' table (default "distkit_idempotency"), a
	// lower-case identifier, optionally schema-qualified.
	Table string
	// Retention is how long a record completed by CompleteInTx is
	// replayed (default 24h); set it to the Runner's Config.Retention. The
	// Runner's own Complete, right after fn returns, sets the Runner's.
	Retention time.Duration
	// Clock stamps CompleteInTx's expiry (default clock.System{}).
	Clock clock.Source
}

// DefaultStoreConfig returns the defaults described on StoreConfig.
func DefaultStoreConfig() StoreConfig {
	return StoreConfig{Table: "distkit_idempotency", Retention: 24 * time.Hour, Clock: clock.System{}}
}

// Validate reports whether c is usable.
func (c StoreConfig) Validate() error {
	if err := checkTable("StoreConfig.Table", c.Table); err != nil {
		return err
	}
	switch {
	case c.Retention <= 0:
		return fmt.Errorf("%w: StoreConfig.Retention = %v; want > 0", ErrInvalidConfig, c.Retention)
	case c.Clock == nil:
		return fmt.Errorf("%w: StoreConfig.Clock is nil", ErrInvalidConfig)
	}
	return nil
}

// Store is an idempotency.Store on a PostgreSQL table. Its particular
// feature is CompleteInTx: the operation completes its record inside its
// own database transaction, so the business write and the idempotency
// record commit together or not at all.
//
// A Store is safe for concurrent use and starts no goroutines.
type Store struct {
	db  Querier
	cfg StoreConfig
	sql storeSQL
}

type storeSQL struct {
	create, begin, get, complete, completeInTx, abort string
}

var _ idempotency.Store = (*Store)(nil)

// NewStore returns a Store on db (normally a *pgxpool.Pool). Call
// CreateTable once, or create the table yourself (see CreateTable).
func NewStore(db Querier, cfg StoreConfig) (*Store, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: nil Querier", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := cfg.Table
	cols := "status, token, fingerprint, result, failed, omitted, created, expires"
	return &Store{db: db, cfg: cfg, sql: storeSQL{
		create: `CREATE TABLE IF NOT EXISTS ` + t + ` (
	key         text PRIMARY KEY,
	status      smallint NOT NULL CHECK (status IN (1, 2)),
	token       bigint NOT NULL,
	fingerprint bytea NOT NULL,
	result      bytea,
	failed      boolean NOT NULL DEFAULT false,
	omitted     boolean NOT NULL DEFAULT false,
	created     timestamptz NOT NULL,
	expires     timestamptz NOT NULL
)`,
		// Insert, or take over a record that has expired at the proposal's
		// time. The row lock ON CONFLICT takes makes concurrent Begins on
		// one key queue, and each sees the previous one's outcome.
		begin: `INSERT INTO ` + t + ` AS r (key, ` + cols + `)
VALUES ($1, 1, $2, $3, NULL, false, false, $4, $5)
ON CONFLICT (key) DO UPDATE SET status = 1, token = EXCLUDED.token, fingerprint = EXCLUDED.fingerprint,
	result = NULL, failed = false, omitted = false, created = EXCLUDED.created, expires = EXCLUDED.expires
WHERE r.expires <= EXCLUDED.created`,
		get: `SELECT ` + cols + ` FROM ` + t + ` WHERE key = $1`,
		// The owner's completion; status 2 too: the owner may already have
		// completed it in its own transaction (CompleteInTx).
		complete: `UPDATE ` + t + ` SET status = 2, fingerprint = $3, result = $4, failed = $5, omitted = $6,
	created = $7, expires = $8
WHERE key = $1 AND token = $2 AND status IN (1, 2)`,
		completeInTx: `UPDATE ` + t + ` SET status = 2, result = $3, omitted = $4, failed = false, expires = $5
WHERE key = $1 AND token = $2 AND status = 1`,
		abort: `DELETE FROM ` + t + ` WHERE key = $1 AND token = $2 AND status = 1`,
	}}, nil
}

// CreateTable creates the records' table if it does not exist:
//
//	key text PRIMARY KEY, status smallint, token bigint, fingerprint bytea,
//	result bytea, failed boolean, omitted boolean,
//	created timestamptz, expires timestamptz
//
// Delete expired rows from time to time (DELETE ... WHERE expires < now()
// - interval '1 hour'); the store never does it by itself.
func (s *Store) CreateTable(ctx context.Context) error {
	if err := s.usable(); err != nil {
		return err
	}
	if _, err := s.db.Exec(ctx, s.sql.create); err != nil {
		return fmt.Errorf("dkpostgres: create table %s: %w", s.cfg.Table, err)
	}
	return nil
}

func (s *Store) usable() error {
	if s == nil || s.db == nil {
		return fmt.Errorf("%w: Store used without NewStore", ErrInvalidConfig)
	}
	return nil
}

// Begin implements idempotency.Store: one INSERT ... ON CONFLICT, and a
// SELECT when the key is held.
func (s *Store) Begin(ctx context.Context, p idempotency.Record) (idempotency.Record, bool, error) {
	if err := s.usable(); err != nil {
		return idempotency.Record{}, false, err
	}
	if err := checkProposal(p); err != nil {
		return idempotency.Record{}, false, err
	}
	for {
		tag, err := s.db.Exec(ctx, s.sql.begin, p.Key, int64(p.Token), []byte(p.Fingerprint), p.Created, p.Expires)
		if err != nil {
			return idempotency.Record{}, false, fmt.Errorf("dkpostgres: begin %q: %w", p.Key, err)
		}
		if tag.RowsAffected() == 1 {
			return p, true, nil
		}
		held, ok, err := s.Get(ctx, p.Key)
		if err != nil || ok {
			return held, false, err
		}
		// Aborted between the two statements: the key is free, try again.
	}
}

// Get implements idempotency.Store.
func (s *Store) Get(ctx context.Context, key string) (idempotency.Record, bool, error) {
	if err := s.usable(); err != nil {
		return idempotency.Record{}, false, err
	}
	rec := idempotency.Record{Key: key}
	var (
		status int16
		token  int64
		fp     []byte
	)
	err := s.db.QueryRow(ctx, s.sql.get, key).Scan(&status, &token, &fp, &rec.Result, &rec.Failed, &rec.Omitted, &rec.Created, &rec.Expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return idempotency.Record{}, false, nil
	}
	if err != nil {
		return idempotency.Record{}, false, fmt.Errorf("dkpostgres: get %q: %w", key, err)
	}
	rec.Status, rec.Token, rec.Fingerprint = idempotency.Status(status), uint64(token), string(fp)
	return rec, true, nil
}

// Complete implements idempotency.Store. A record its owner already
// completed with CompleteInTx is completed again with rec (the Runner's
// encoding of the result, and its retention).
func (s *Store) Complete(ctx context.Context, rec idempotency.Record) error {
	if err := s.usable(); err != nil {
		return err
	}
	if err := idempotency.ValidateKey(rec.Key); err != nil {
		return err
	}
	if rec.Status != idempotency.StatusCompleted {
		return fmt.Errorf("dkpostgres: Complete record for %q has status %v; want %v", rec.Key, rec.Status, idempotency.StatusCompleted)
	}
	tag, err := s.db.Exec(ctx, s.sql.complete, rec.Key, int64(rec.Token), []byte(rec.Fingerprint), rec.Result,
		rec.Failed, rec.Omitted, rec.Created, rec.Expires)
	if err != nil {
		return fmt.Errorf("dkpostgres: complete %q: %w", rec.Key, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("%w: complete %q", idempotency.ErrNotOwner, rec.Key)
	}
	return nil
}

// Abort implements idempotency.Store. A completed record is never removed.
func (s *Store) Abort(ctx context.Context, key string, token uint64) error {
	if err := s.usable(); err != nil {
		return err
	}
	if err := idempotency.ValidateKey(key); err != nil {
		return err
	}
	tag, err := s.db.Exec(ctx, s.sql.abort, key, int64(token))
	if err != nil {
		return fmt.Errorf("dkpostgres: abort %q: %w", key, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("%w: abort %q", idempotency.ErrNotOwner, key)
	}
	return nil
}

// CompleteInTx completes the record of the Runner execution whose fn
// received ctx, inside tx: the caller's own transaction, which also holds
// the operation's effect. Commit tx afterwards; if tx rolls back, so does
// the completion, and the Runner's failure path releases the key.
//
// result is stored as the key's outcome until the Runner's own Complete
// (right after fn returns) replaces it with the Runner's encoding; pass
// the codec's encoding of fn's result, or nil to record only that the
// effect happened (retries then get idempotency.ErrResultNotStored if the
// process dies before the Runner's Complete). Either way no retry runs the
// effect again once tx has committed.
//
// It fails with idempotency.ErrNotOwner if the record expired and was
// taken over (roll tx back: someone else runs the operation now), and with
// ErrNoClaim outside a Runner's fn. The UPDATE locks the record's row until
// tx ends, so no one can take the key over in the meantime.
func (s *Store) CompleteInTx(ctx context.Context, tx Querier, result []byte) error {
	if err := s.usable(); err != nil {
		return err
	}
	if tx == nil {
		return fmt.Errorf("%w: nil transaction", ErrInvalidConfig)
	}
	claim, ok := idempotency.ClaimFromContext(ctx)
	if !ok {
		return ErrNoClaim
	}
	expires := s.cfg.Clock.Now().Add(s.cfg.Retention)
	tag, err := tx.Exec(ctx, s.sql.completeInTx, claim.Key, int64(claim.Token), result, result == nil, expires)
	if err != nil {
		return fmt.Errorf("dkpostgres: complete %q in transaction: %w", claim.Key, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("%w: complete %q in transaction", idempotency.ErrNotOwner, claim.Key)
	}
	return nil
}

// checkProposal rejects a Begin proposal that would store a bad record.
func checkProposal(p idempotency.Record) error {
	if err := idempotency.ValidateKey(p.Key); err != nil {
		return err
	}
	if p.Status != idempotency.StatusInProgress {
		return fmt.Errorf("dkpostgres: Begin proposal for %q has status %v; want %v", p.Key, p.Status, idempotency.StatusInProgress)
	}
	if !p.Expires.After(p.Created) {
		return fmt.Errorf("dkpostgres: Begin proposal for %q expires (%v) no later than it is created (%v)", p.Key, p.Expires, p.Created)
	}
	return nil
}
