#!/usr/bin/env bash
# contrib/etcd against a real etcd: install the etcd-server package if
# missing, start a one-member cluster on free 127.0.0.1 ports in a temp dir
# (with a short election timeout, so that its minimum lease TTL is 1s),
# run the module's tests with -race, stop it.
#
# The Debian server rather than the embedded one (go.etcd.io/etcd/server/v3/embed):
# embedding compiles the whole etcd server into the test binary (several
# minutes with -race on 2 cores, and a dependency tree the client does not
# need), while the package installs in seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
source .ci/contrib/lib.bash
start=$SECONDS
need etcd etcd-server
dir=$(mktemp -d)
client=$(free_port)
peer=$(free_port)
while [ "$peer" = "$client" ]; do peer=$(free_port); done
etcd --name distkit-ci --data-dir "$dir/data" \
  --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
  --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
  --initial-cluster "distkit-ci=http://127.0.0.1:$peer" \
  --heartbeat-interval 50 --election-timeout 250 --logger zap --log-level error \
  >"$dir/log" 2>&1 &
pid=$!
stop() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"; }
trap stop EXIT
wait_port "$client" || { cat "$dir/log"; exit 1; }
export DISTKIT_ETCD_ENDPOINTS="127.0.0.1:$client"
contrib_test contrib/etcd
echo "contrib/etcd: took $((SECONDS - start)) s"
