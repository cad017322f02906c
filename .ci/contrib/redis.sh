#!/usr/bin/env bash
# contrib/redis against a real redis-server: install it if missing, start
# it on a free 127.0.0.1 port in a temp dir, run the module's tests with
# -race, stop it.
set -euo pipefail
cd "$(dirname "$0")/../.."
source .ci/contrib/lib.bash
start=$SECONDS
need redis-server redis-server
dir=$(mktemp -d)
port=$(free_port)
redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
  --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
stop() {
  if [ -f "$dir/redis.pid" ]; then kill "$(cat "$dir/redis.pid")" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap stop EXIT
wait_port "$port"
export DISTKIT_REDIS_ADDR="127.0.0.1:$port"
contrib_test contrib/redis
echo "contrib/redis: took $((SECONDS - start)) s"
