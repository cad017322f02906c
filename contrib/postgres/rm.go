package dkpostgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/distkit/distkit/txn"
)

// ErrLostPrepared is returned by Recover when the participant's log says
// a transaction voted YES and is still in doubt, but PostgreSQL has no
// such prepared transaction: its locks and changes are gone, and
// committing it is impossible. Recovery stops rather than let the
// coordinator believe the commit happened.
var ErrLostPrepared = errors.New("dkpostgres: in-doubt transaction is not prepared in PostgreSQL")

// ErrMalformedIntent reports an intent this package did not produce.
var ErrMalformedIntent = errors.New("dkpostgres: malformed intent")

// RMConfig configures a ResourceManager.
type RMConfig struct {
	// Table is the accounts table (default "distkit_accounts"): key text
	// primary key, value bigint.
	Table string
	// GIDPrefix starts the global identifier of every transaction this
	// resource manager prepares (PREPARE TRANSACTION 'prefix<txn uuid>').
	// It must be unique per participant among those sharing a database:
	// Recover rolls back the prepared transactions with this prefix that
	// the participant's log does not know. Letters, digits and "_.:-", at
	// most 150 bytes. Required.
	GIDPrefix string
	// LockTimeout bounds how long Prepare waits for a row another
	// transaction holds before voting NO (default 50ms). The built-in
	// Store does not wait at all; PostgreSQL needs a bound of some kind.
	LockTimeout time.Duration
	// CommitRetry is how long Commit and Abort keep retrying while the
	// server is unreachable (default 30s). After that they fail, which
	// stops the Participant; its restart finishes the job in Recover.
	CommitRetry time.Duration
	// Logger receives retries of COMMIT/ROLLBACK PREPARED and what
	// Recover resolved. nil is silent.
	Logger *slog.Logger
}

// DefaultRMConfig returns the defaults described on RMConfig, with the
// GIDPrefix "distkit-" + participant + "-".
func DefaultRMConfig(participant string) RMConfig {
	return RMConfig{
		Table:       "distkit_accounts",
		GIDPrefix:   "distkit-" + participant + "-",
		LockTimeout: 50 * time.Millisecond,
		CommitRetry: 30 * time.Second,
	}
}

var gidRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,150}$`)

// Validate reports whether c is usable.
func (c RMConfig) Validate() error {
	if err := checkTable("RMConfig.Table", c.Table); err != nil {
		return err
	}
	switch {
	case !gidRE.MatchString(c.GIDPrefix):
		return fmt.Errorf("%w: RMConfig.GIDPrefix %q: want 1-150 bytes of letters, digits and _.:-", ErrInvalidConfig, c.GIDPrefix)
	case c.LockTimeout < time.Millisecond:
		return fmt.Errorf("%w: RMConfig.LockTimeout = %v; want ≥ 1ms", ErrInvalidConfig, c.LockTimeout)
	case c.CommitRetry <= 0:
		return fmt.Errorf("%w: RMConfig.CommitRetry = %v; want > 0", ErrInvalidConfig, c.CommitRetry)
	}
	return nil
}

// ResourceManager is a txn.ResourceManager on PostgreSQL's own two-phase
// commit: Prepare runs the operations (txn.EncodeOps: OpAdd, OpPut on an
// accounts table) in a transaction and ends it with PREPARE TRANSACTION,
// so the changes and their row locks survive a crash of this process and
// of the server; Commit and Abort are COMMIT PREPARED and ROLLBACK
// PREPARED. The intent it returns is just the transaction's global ID.
//
// The participant's log still decides: Recover commits what the log says
// was committed, keeps what is in doubt prepared (the Participant then
// asks the coordinator, as it does for the built-in Store) and rolls back
// prepared transactions of this GIDPrefix that the log never recorded a
// YES vote for.
//
// A ResourceManager is safe for concurrent use; a Participant calls it
// from one goroutine. It starts no goroutines.
type ResourceManager struct {
	pool *pgxpool.Pool
	cfg  RMConfig
	log  *slog.Logger
	sql  rmSQL
}

type rmSQL struct {
	create, add, put, get, lockTimeout string
}

var _ txn.ResourceManager = (*ResourceManager)(nil)

// snapshotMarker is the ResourceManager's Snapshot: the committed state is
// PostgreSQL's, so a checkpoint only records that this kind of resource
// manager made it.
var snapshotMarker = []byte("dkpostgres/rm/v1")

// NewResourceManager returns a resource manager on pool's database. The
// pool must allow at least two connections (Commit retries on a fresh one
// while Prepare's may be broken).
func NewResourceManager(pool *pgxpool.Pool, cfg RMConfig) (*ResourceManager, error) {
	if pool == nil {
		return nil, fmt.Errorf("%w: nil pool", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rm := &ResourceManager{pool: pool, cfg: cfg, log: cfg.Logger}
	if rm.log == nil {
		rm.log = slog.New(slog.DiscardHandler)
	}
	t := cfg.Table
	rm.sql = rmSQL{
		create: `CREATE TABLE IF NOT EXISTS ` + t + ` (key text PRIMARY KEY, value bigint NOT NULL)`,
		add: `INSERT INTO ` + t + ` AS a (key, value) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET value = a.value + EXCLUDED.value RETURNING value`,
		put: `INSERT INTO ` + t + ` AS a (key, value) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`,
		get:         `SELECT value FROM ` + t + ` WHERE key = $1`,
		lockTimeout: fmt.Sprintf(`SET LOCAL lock_timeout = '%dms'`, cfg.LockTimeout.Milliseconds()),
	}
	return rm, nil
}

// CreateTable creates the accounts table if it does not exist.
func (rm *ResourceManager) CreateTable(ctx context.Context) error {
	if err := rm.usable(); err != nil {
		return err
	}
	if _, err := rm.pool.Exec(ctx, rm.sql.create); err != nil {
		return fmt.Errorf("dkpostgres: create table %s: %w", rm.cfg.Table, err)
	}
	return nil
}

func (rm *ResourceManager) usable() error {
	if rm == nil || rm.pool == nil {
		return fmt.Errorf("%w: ResourceManager used without NewResourceManager", ErrInvalidConfig)
	}
	return nil
}

// GID returns the global transaction ID that PREPARE TRANSACTION uses for
// id.
func (rm *ResourceManager) GID(id uuid.UUID) string { return rm.cfg.GIDPrefix + id.String() }

// Get returns the committed value of key.
func (rm *ResourceManager) Get(ctx context.Context, key string) (int64, bool, error) {
	if err := rm.usable(); err != nil {
		return 0, false, err
	}
	var v int64
	err := rm.pool.QueryRow(ctx, rm.sql.get, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("dkpostgres: get %q: %w", key, err)
	}
	return v, true, nil
}

// intent encoding: a version byte, then the gid.
const intentV1 = 1

func encodeIntent(gid string) []byte { return append([]byte{intentV1}, gid...) }

func (rm *ResourceManager) decodeIntent(intent []byte) (string, error) {
	if len(intent) < 2 || intent[0] != intentV1 || !intentGIDRE.Match(intent[1:]) {
		return "", fmt.Errorf("%w: %q", ErrMalformedIntent, intent)
	}
	return string(intent[1:]), nil
}

// intentGIDRE is a GIDPrefix followed by a UUID: at most 200 bytes, the
// limit of PREPARE TRANSACTION.
var intentGIDRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,200}$`)

// isPrepared reports whether gid is a prepared transaction of this
// database.
func (rm *ResourceManager) isPrepared(ctx context.Context, gid string) (bool, error) {
	var n int
	err := rm.pool.QueryRow(ctx,
		`SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database() AND gid = $1`, gid).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("dkpostgres: look up prepared transaction %s: %w", gid, err)
	}
	return n > 0, nil
}

// Prepare implements txn.ResourceManager. It votes NO (an error) for
// undecodable ops (wrapping txn.ErrMalformed), a row held by another
// transaction for longer than LockTimeout (wrapping txn.ErrLocked), a
// balance that would go below zero (wrapping txn.ErrInsufficientFunds), or
// any database error. A NO vote leaves nothing behind.
func (rm *ResourceManager) Prepare(ctx context.Context, id uuid.UUID, ops []byte) ([]byte, error) {
	if err := rm.usable(); err != nil {
		return nil, err
	}
	decoded, err := txn.DecodeOps(ops)
	if err != nil {
		return nil, err
	}
	gid := rm.GID(id)
	if ok, err := rm.isPrepared(ctx, gid); err != nil {
		return nil, err
	} else if ok { // a repeated PREPARE
		return encodeIntent(gid), nil
	}
	conn, err := rm.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("dkpostgres: prepare %s: %w", gid, err)
	}
	// A connection left inside a transaction by an error is closed by the
	// pool on Release rather than reused.
	defer conn.Release()
	c := conn.Conn()
	if _, err := c.Exec(ctx, "BEGIN"); err != nil {
		return nil, fmt.Errorf("dkpostgres: prepare %s: %w", gid, err)
	}
	if err := rm.apply(ctx, c, decoded); err != nil {
		_, _ = c.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		return nil, fmt.Errorf("dkpostgres: prepare %s: %w", gid, err)
	}
	// gid is checked by Validate and uuid.String: safe to inline (PREPARE
	// TRANSACTION takes no parameters).
	if _, err := c.Exec(ctx, "PREPARE TRANSACTION '"+gid+"'"); err != nil {
		_, _ = c.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		// The server may have prepared it before the error (a cancelled
		// ctx, a lost connection): this is a NO vote, so roll it back
		// rather than leave its locks held until the next Recover.
		if rerr := rm.finish("ROLLBACK PREPARED", id, encodeIntent(gid), min(rm.cfg.CommitRetry, 5*time.Second)); rerr != nil {
			rm.log.Warn("dkpostgres: could not roll back after a failed PREPARE", "gid", gid, "err", rerr)
		}
		return nil, fmt.Errorf("dkpostgres: prepare %s: %w", gid, err)
	}
	return encodeIntent(gid), nil
}

// apply runs the operations inside the open transaction on c.
func (rm *ResourceManager) apply(ctx context.Context, c *pgx.Conn, ops []txn.Op) error {
	if _, err := c.Exec(ctx, rm.sql.lockTimeout); err != nil {
		return err
	}
	for _, op := range ops {
		switch op.Kind {
		case txn.OpAdd:
			var v int64
			if err := c.QueryRow(ctx, rm.sql.add, op.Key, op.Amount).Scan(&v); err != nil {
				return classify(op.Key, err)
			}
			if v < 0 {
				return fmt.Errorf("%w: %q would hold %d after adding %d", txn.ErrInsufficientFunds, op.Key, v, op.Amount)
			}
		case txn.OpPut:
			if _, err := c.Exec(ctx, rm.sql.put, op.Key, op.Amount); err != nil {
				return classify(op.Key, err)
			}
		}
	}
	return nil
}

// classify turns lock waits that ran out into txn.ErrLocked.
func classify(key string, err error) error {
	switch sqlState(err) {
	case stateLockNotAvailable, stateDeadlock, stateSerialization:
		return fmt.Errorf("%w: %q (%v)", txn.ErrLocked, key, err)
	}
	return err
}

// Commit implements txn.ResourceManager: COMMIT PREPARED, retried for up
// to CommitRetry while the server is unreachable. A transaction that is
// no longer prepared was committed by an earlier attempt (or by Recover).
func (rm *ResourceManager) Commit(id uuid.UUID, intent []byte) error {
	if err := rm.usable(); err != nil {
		return err
	}
	return rm.finish("COMMIT PREPARED", id, intent, rm.cfg.CommitRetry)
}

// Abort implements txn.ResourceManager: ROLLBACK PREPARED, retried like
// Commit. An empty intent (nothing was prepared) is a no-op.
func (rm *ResourceManager) Abort(id uuid.UUID, intent []byte) error {
	if err := rm.usable(); err != nil {
		return err
	}
	if len(intent) == 0 {
		return nil
	}
	return rm.finish("ROLLBACK PREPARED", id, intent, rm.cfg.CommitRetry)
}

// finish runs verb (COMMIT or ROLLBACK PREPARED) for the intent's gid,
// retrying for up to limit while the server is unreachable.
func (rm *ResourceManager) finish(verb string, id uuid.UUID, intent []byte, limit time.Duration) error {
	if err := rm.usable(); err != nil {
		return err
	}
	gid, err := rm.decodeIntent(intent)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	backoff := 20 * time.Millisecond
	for {
		_, err := rm.pool.Exec(ctx, verb+" '"+gid+"'")
		if err == nil || sqlState(err) == stateUndefinedObject {
			return nil
		}
		if sqlState(err) != "" && !retryableState(sqlState(err)) {
			return fmt.Errorf("dkpostgres: %s %s (txn %v): %w", verb, gid, id, err)
		}
		rm.log.Warn("dkpostgres: retrying", "statement", verb, "gid", gid, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("dkpostgres: %s %s (txn %v): gave up after %v: %w", verb, gid, id, limit, err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// retryableState reports SQLSTATEs of a server that is going away or
// starting up (class 57: operator intervention, 08: connection).
func retryableState(state string) bool {
	return len(state) == 5 && (state[:2] == "57" || state[:2] == "08" || state == "53300")
}

// Snapshot implements txn.ResourceManager. The committed state lives in
// PostgreSQL, so the snapshot is only a marker.
func (rm *ResourceManager) Snapshot() ([]byte, error) {
	return append([]byte(nil), snapshotMarker...), nil
}

// Recover implements txn.ResourceManager, from pg_prepared_xacts:
//
//   - a Committed intent still prepared is committed (the crash came
//     between the log's DONE and COMMIT PREPARED); one no longer prepared
//     was committed before the crash;
//   - an InDoubt intent must still be prepared (its row locks held by
//     PostgreSQL); if it is not, Recover fails with ErrLostPrepared;
//   - every other prepared transaction of this GIDPrefix in this database
//     is rolled back: this participant crashed between PREPARE
//     TRANSACTION and logging its YES vote, so the coordinator never
//     counted it as YES, or its abort was logged and not yet applied.
func (rm *ResourceManager) Recover(r txn.Recovery) error {
	if err := rm.usable(); err != nil {
		return err
	}
	if r.Snapshot != nil && string(r.Snapshot) != string(snapshotMarker) {
		return fmt.Errorf("%w: snapshot %q was not made by this resource manager", ErrMalformedIntent, r.Snapshot)
	}
	ctx, cancel := context.WithTimeout(context.Background(), rm.cfg.CommitRetry)
	defer cancel()
	prepared, err := rm.preparedGIDs(ctx)
	if err != nil {
		return err
	}
	for _, in := range r.Committed {
		gid, err := rm.decodeIntent(in.Data)
		if err != nil {
			return err
		}
		if _, ok := prepared[gid]; !ok {
			continue
		}
		delete(prepared, gid)
		rm.log.Info("dkpostgres: recovery commits a prepared transaction", "gid", gid)
		if err := rm.Commit(in.Txn, in.Data); err != nil {
			return err
		}
	}
	for _, in := range r.InDoubt {
		gid, err := rm.decodeIntent(in.Data)
		if err != nil {
			return err
		}
		if _, ok := prepared[gid]; !ok {
			return fmt.Errorf("%w: %s (txn %v)", ErrLostPrepared, gid, in.Txn)
		}
		delete(prepared, gid)
	}
	for gid := range prepared {
		rm.log.Info("dkpostgres: recovery rolls back a prepared transaction the log does not know", "gid", gid)
		if err := rm.Abort(uuid.Nil, encodeIntent(gid)); err != nil {
			return err
		}
	}
	return nil
}

// preparedGIDs lists this resource manager's prepared transactions.
func (rm *ResourceManager) preparedGIDs(ctx context.Context) (map[string]struct{}, error) {
	rows, err := rm.pool.Query(ctx,
		`SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND starts_with(gid, $1)`, rm.cfg.GIDPrefix)
	if err != nil {
		return nil, fmt.Errorf("dkpostgres: list prepared transactions: %w", err)
	}
	gids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("dkpostgres: list prepared transactions: %w", err)
	}
	set := make(map[string]struct{}, len(gids))
	for _, g := range gids {
		set[g] = struct{}{}
	}
	return set, nil
}
