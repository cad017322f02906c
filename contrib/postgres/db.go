package dkpostgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier is what this package needs to run SQL: a *pgxpool.Pool, a
// *pgx.Conn or a pgx.Tx. Pass a transaction to make the package's
// statements part of it.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ErrInvalidConfig reports a configuration that fails Validate, a nil
// pool, or a value used without its constructor.
var ErrInvalidConfig = errors.New("dkpostgres: invalid config")

// identRE is what a table name may look like: an optionally
// schema-qualified lower-case SQL identifier, used without quoting.
var identRE = regexp.MustCompile(`^([a-z_][a-z0-9_]{0,62}\.)?[a-z_][a-z0-9_]{0,62}$`)

func checkTable(field, name string) error {
	if !identRE.MatchString(name) {
		return fmt.Errorf("%w: %s %q is not a lower-case SQL identifier (optionally schema.table)", ErrInvalidConfig, field, name)
	}
	return nil
}

// sqlState returns the SQLSTATE of a PostgreSQL error, or "".
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// SQLSTATE codes the package acts on.
const (
	stateLockNotAvailable = "55P03" // lock_timeout expired
	stateDeadlock         = "40P01"
	stateUndefinedObject  = "42704" // COMMIT/ROLLBACK PREPARED of an unknown gid
	stateSerialization    = "40001"
)
