#!/usr/bin/env bash
# A PostgreSQL cluster of ramp's own, from Debian's binaries.
#
#   scripts/postgres.sh start DIR PORT [durable|throwaway]
#   scripts/postgres.sh stop DIR
#
# RAMP_PG_OPTIONS adds server settings (e.g. "-c shared_preload_libraries=...").
#
# The cluster lives in DIR/data, listens on 127.0.0.1:PORT and on a unix socket in
# DIR, and trusts local connections as user "postgres" (it is reachable from this
# machine only). "throwaway" turns fsync off, for tests. As root, the server runs as
# the postgres user.
set -euo pipefail

pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$dir" ]; then
    echo "postgres.sh: no PostgreSQL binaries in /usr/lib/postgresql (run scripts/install.sh)" >&2
    exit 1
  fi
  echo "$dir"
}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cmd=${1:?usage: postgres.sh start DIR PORT [durable|throwaway] | stop DIR}
dir=${2:?missing DIR}
bin=$(pg_bin)

case "$cmd" in
  start)
    port=${3:?missing PORT}
    mode=${4:-durable}
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_postgres "$bin/initdb" -D "$dir/data" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    opts="-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300"
    opts="$opts ${RAMP_PG_OPTIONS:-}"
    if [ "$mode" = throwaway ]; then
      opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    fi
    as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 -o "$opts" start >/dev/null \
      || { tail -n 20 "$dir/postgres.log" >&2; exit 1; }
    ;;
  stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
      as_postgres "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null || true
    fi
    ;;
  *)
    echo "postgres.sh: unknown command $cmd" >&2
    exit 2
    ;;
esac
