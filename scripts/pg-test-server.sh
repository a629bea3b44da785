#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests (src/store/postgres/test_server.rs
# starts it; unit and integration tests share it).
#
# Usage: pg-test-server.sh PORT
# Makes a cluster in a fresh directory under ${SEALMAIL_PG_TMP:-/tmp}, starts
# it on 127.0.0.1:PORT with trust authentication for user `postgres`, prints
# "ready DIR" once it accepts connections, and runs until SIGTERM, SIGINT or
# SIGHUP: then it stops the server and removes the directory.
# The test process sets SIGTERM as this script's parent-death signal, so the
# cluster goes when the tests go, however they end.
#
# PostgreSQL refuses to run as root: as root, initdb and postgres run as the
# `postgres` user (Debian's package makes it), or `nobody` without one.
set -euo pipefail

port=${1:?usage: pg-test-server.sh PORT}
bin=${PG_BIN:-/usr/lib/postgresql/15/bin}
[ -x "$bin/postgres" ] || { echo "no PostgreSQL 15 in $bin; run scripts/install-deps.sh" >&2; exit 1; }
dir=$(mktemp -d "${SEALMAIL_PG_TMP:-/tmp}/sealmail-pg.XXXXXX")
as_user=()
if [ "$(id -u)" -eq 0 ]; then
  user=postgres
  id -u "$user" >/dev/null 2>&1 || user=nobody
  chown "$user:" "$dir"
  as_user=(setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups --)
fi

pid=""
# why immediate shutdown (SIGQUIT): the cluster is thrown away, and a fast
# shutdown's checkpoint would fsync every test database's files (~20 s).
stop() {
  if [ -n "$pid" ]; then kill -QUIT "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; fi
  rm -rf "$dir"
}
trap 'stop; exit 0' TERM INT HUP
trap 'stop' EXIT

# why --no-sync: initdb's files are thrown away with the directory; the
# server itself keeps fsync on, the tests check durability.
"${as_user[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C \
  --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
# Fast but durable: fsync and synchronous_commit stay on; small buffers, no
# background noise, room for parallel tests each with a pool of connections.
"${as_user[@]}" "$bin/postgres" -D "$dir/data" -p "$port" -k "$dir" \
  -c listen_addresses=127.0.0.1 -c max_connections=400 -c shared_buffers=64MB \
  -c fsync=on -c synchronous_commit=on -c full_page_writes=off \
  -c autovacuum=off -c log_min_messages=warning \
  >"$dir/postgres.log" 2>&1 &
pid=$!
for _ in $(seq 300); do
  if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres; then
    echo "ready $dir"
    wait "$pid" || true
    pid=""
    cat "$dir/postgres.log" >&2
    exit 1
  fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
cat "$dir/postgres.log" >&2
exit 1
