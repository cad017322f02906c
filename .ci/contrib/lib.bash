# Helpers shared by the .ci/contrib/*.sh scripts (sourced, not run: the
# name does not end in .sh, so .ci/run does not run it on its own).

# need CMD PACKAGE...: make sure CMD exists, installing the Debian packages
# if it is missing (apt-get update once per run, only when installing).
need() {
  local cmd=$1; shift
  if command -v "$cmd" >/dev/null 2>&1 || [ -x "$cmd" ]; then return 0; fi
  echo "contrib: $cmd is missing; installing $*"
  if [ -z "${DISTKIT_APT_UPDATED:-}" ]; then
    apt-get update -qq
    export DISTKIT_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  command -v "$cmd" >/dev/null 2>&1 || [ -x "$cmd" ] || { echo "contrib: $cmd still missing after installing $*"; return 1; }
}

# free_port prints a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$(( (RANDOM % 30000) + 20000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"; return 0
    fi
  done
  echo "contrib: no free port found" >&2; return 1
}

# wait_port PORT [SECONDS]: wait until something accepts connections on
# 127.0.0.1:PORT.
wait_port() {
  local port=$1 limit=${2:-30}
  for _ in $(seq 1 $((limit * 10))); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "contrib: nothing listens on 127.0.0.1:$port after ${limit}s" >&2; return 1
}

# contrib_test MODULE_DIR: test a contrib module with -race. No separate
# `go vet`: it would compile every dependency a second time without -race
# (minutes for etcd's gRPC stack on 2 cores), and go test already runs
# vet's default checks on the module's packages.
#
# With DISTKIT_CONTRIB_RUN set, the server is started as usual but that
# command runs instead of the tests, from the repository root, with the
# server's variables set: e.g. the mutation runner's contrib blocks,
#   DISTKIT_CONTRIB_RUN='go run ./internal/mutate -run contrib-redis' bash .ci/contrib/redis.sh
contrib_test() {
  if [ -n "${DISTKIT_CONTRIB_RUN:-}" ]; then
    bash -c "$DISTKIT_CONTRIB_RUN"
    return
  fi
  (cd "$1" && go test -race -count=1 ./...)
}
