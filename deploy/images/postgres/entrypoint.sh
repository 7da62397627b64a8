#!/bin/sh
# Starts PostgreSQL on PGPORT at POSTGRES_LISTEN, making the cluster (trust
# authentication) and the databases in POSTGRES_DATABASES on the first start.
set -eu
bin=$(echo /usr/lib/postgresql/*/bin)
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  "$bin/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
  for db in $POSTGRES_DATABASES; do
    echo "CREATE DATABASE $db" | "$bin/postgres" --single -D "$PGDATA" -j postgres >/dev/null
  done
fi
exec "$bin/postgres" -D "$PGDATA" -p "$PGPORT" -c listen_addresses="$POSTGRES_LISTEN" \
  -c unix_socket_directories=/tmp
