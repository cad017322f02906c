#!/usr/bin/env bash
# contrib/postgres against a real PostgreSQL: install it if missing, initdb
# into a temp dir (as the postgres user: the server refuses to run as root),
# start it on a free 127.0.0.1 port with prepared transactions enabled,
# create the test databases, run the module's tests with -race, stop it.
set -euo pipefail
cd "$(dirname "$0")/../.."
source .ci/contrib/lib.bash
start=$SECONDS
bindir=${DISTKIT_PG_BINDIR:-}
if [ -z "$bindir" ]; then
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
fi
if [ -z "$bindir" ] || [ ! -x "$bindir/pg_ctl" ]; then
  need /usr/bin/psql postgresql
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
# The server runs as an unprivileged user: postgres (from the package), or
# the current user when not root.
run_pg() { "$@"; }
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  run_pg() { runuser -u postgres -- "$@"; }
fi
dir=$(mktemp -d)
chmod 755 "$dir"
[ "$(id -u)" = 0 ] && chown postgres "$dir"
port=$(free_port)
run_pg "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
ctl() { run_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w "$@"; }
opts="-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_prepared_transactions=100 -c max_connections=200"
ctl -o "$opts" start >/dev/null
stop() { ctl -m fast stop >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap stop EXIT
for db in distkit distkit_bank_a distkit_bank_b; do
  psql -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE DATABASE $db" postgres
done
export DISTKIT_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/distkit?sslmode=disable"
export DISTKIT_POSTGRES_URL_B="postgres://postgres@127.0.0.1:$port/distkit_bank_b?sslmode=disable"
export DISTKIT_POSTGRES_URL_A="postgres://postgres@127.0.0.1:$port/distkit_bank_a?sslmode=disable"
# The crash tests restart the server between PREPARE and COMMIT PREPARED:
# an immediate stop is a crash (no shutdown checkpoint; WAL replay on start).
export DISTKIT_POSTGRES_RESTART="$(declare -f run_pg); run_pg '$bindir/pg_ctl' -D '$dir/data' -l '$dir/log' -w -m immediate -o '$opts' restart"
# One test binary at a time (-p 1): the crash tests restart the server under
# the other packages' connections. Build first with full parallelism.
if [ -n "${DISTKIT_CONTRIB_RUN:-}" ]; then
  contrib_test contrib/postgres
else
  (cd contrib/postgres && go test -race -count=1 -run '^$' ./... >/dev/null && go test -race -count=1 -p 1 ./...)
fi
echo "contrib/postgres: took $((SECONDS - start)) s"
