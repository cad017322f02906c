package dkpostgres

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/distkit/distkit/lock"
)

// FenceConfig configures a Fence.
type FenceConfig struct {
	// Table keeps the highest token accepted per resource (default
	// "distkit_fence").
	Table string
}

// DefaultFenceConfig returns the defaults described on FenceConfig.
func DefaultFenceConfig() FenceConfig { return FenceConfig{Table: "distkit_fence"} }

// Validate reports whether c is usable.
func (c FenceConfig) Validate() error { return checkTable("FenceConfig.Table", c.Table) }

// Fence guards resources in PostgreSQL against writes from stale lock
// holders, as lock.Fence does in memory: a write is accepted only with a
// fencing token at least the highest accepted so far for its resource.
// The check is one SQL statement (an INSERT ... ON CONFLICT DO UPDATE ...
// WHERE) that also records the token, and it runs in the transaction of
// the write it guards: its row lock holds until that transaction ends, so
// a concurrent write with a higher token waits for it and a lower one is
// refused after it.
//
// A Fence is safe for concurrent use and starts no goroutines.
type Fence struct {
	cfg            FenceConfig
	create, accept string
}

// NewFence returns a Fence on the table cfg names. Call CreateTable once.
func NewFence(cfg FenceConfig) (*Fence, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := cfg.Table
	return &Fence{
		cfg: cfg,
		// numeric(20): tokens are uint64, beyond bigint's range.
		create: `CREATE TABLE IF NOT EXISTS ` + t + ` (resource text PRIMARY KEY, token numeric(20, 0) NOT NULL)`,
		accept: `INSERT INTO ` + t + ` AS f (resource, token) VALUES ($1, $2::numeric)
ON CONFLICT (resource) DO UPDATE SET token = EXCLUDED.token WHERE f.token <= EXCLUDED.token`,
	}, nil
}

// CreateTable creates the fence table if it does not exist.
func (f *Fence) CreateTable(ctx context.Context, db Querier) error {
	if f == nil || f.create == "" {
		return fmt.Errorf("%w: Fence used without NewFence", ErrInvalidConfig)
	}
	if _, err := db.Exec(ctx, f.create); err != nil {
		return fmt.Errorf("dkpostgres: create table %s: %w", f.cfg.Table, err)
	}
	return nil
}

// Check accepts token for resource if it is at least the highest accepted
// so far, and records it, in one statement; otherwise it fails with an
// error wrapping lock.ErrStaleToken. Run it in the transaction of the
// guarded write (tx), before the write, and commit both together.
func (f *Fence) Check(ctx context.Context, tx Querier, resource string, token lock.Token) error {
	if f == nil || f.accept == "" {
		return fmt.Errorf("%w: Fence used without NewFence", ErrInvalidConfig)
	}
	if tx == nil {
		return fmt.Errorf("%w: nil transaction", ErrInvalidConfig)
	}
	tag, err := tx.Exec(ctx, f.accept, resource, strconv.FormatUint(uint64(token), 10))
	if err != nil {
		return fmt.Errorf("dkpostgres: fence %q: %w", resource, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("%w: %q refused token %d (a higher one was accepted)", lock.ErrStaleToken, resource, token)
	}
	return nil
}

// Guard runs write in a new transaction on pool after Check accepted
// token for resource, and commits both; a stale token or an error from
// write rolls everything back.
func (f *Fence) Guard(ctx context.Context, pool *pgxpool.Pool, resource string, token lock.Token, write func(tx pgx.Tx) error) error {
	if pool == nil {
		return fmt.Errorf("%w: nil pool", ErrInvalidConfig)
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := f.Check(ctx, tx, resource, token); err != nil {
			return err
		}
		return write(tx)
	})
}
