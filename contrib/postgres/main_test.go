package dkpostgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const startHint = "start one with `bash .ci/contrib/postgres.sh` from the repository root, or initdb + pg_ctl with -c max_prepared_transactions=100 and set DISTKIT_POSTGRES_URL (and DISTKIT_POSTGRES_URL_A/_B, DISTKIT_POSTGRES_RESTART for the 2PC and crash tests)"

// env returns the environment variable name, skipping the test when it is
// unset (failing under CI=true, where a missing server is a failure).
func env(tb testing.TB, name string) string {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		msg := fmt.Sprintf("no PostgreSQL: %s is unset; %s", name, startHint)
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	return v
}

// newPool connects to the database the environment variable names; the
// pool is closed at the end of the test.
func newPool(tb testing.TB, name string) *pgxpool.Pool {
	tb.Helper()
	cfg, err := pgxpool.ParseConfig(env(tb, name))
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	cfg.MaxConns = 80
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		tb.Fatalf("connect %s: %v", name, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		tb.Fatalf("connect %s: %v", name, err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// restartServer crashes PostgreSQL (immediate stop: no shutdown checkpoint,
// WAL replay at start) and starts it again, with the command in
// DISTKIT_POSTGRES_RESTART.
func restartServer(tb testing.TB) {
	tb.Helper()
	out, err := exec.Command("bash", "-c", env(tb, "DISTKIT_POSTGRES_RESTART")).CombinedOutput()
	if err != nil {
		tb.Fatalf("restart PostgreSQL: %v\n%s", err, out)
	}
}

// unique returns a name unique to this run, for tables and GID prefixes.
func unique(what string) string { return fmt.Sprintf("%s_%08x", what, rand.Uint32()) }

func testingGOMAXPROCS() int { return runtime.GOMAXPROCS(0) }
