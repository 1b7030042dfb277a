#!/usr/bin/env bash
# Runs a command against a throwaway PostgreSQL cluster: initdb + pg_ctl into a
# temporary directory, a free loopback port, DATABASE_URL exported for the
# command, and the cluster stopped and deleted afterwards whatever happens.
#
#   scripts/with-postgres.sh cargo test --workspace -- --include-ignored
#
# PostgreSQL binaries are looked up on PATH, then in /usr/lib/postgresql/*/bin.
# As root (containers, CI) the server runs as the `postgres` user.
set -euo pipefail

find_pg_bin() {
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return
    fi
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return; fi
    done
    echo "error: PostgreSQL server binaries (initdb, pg_ctl) not found; install them, e.g. 'apt-get install postgresql'" >&2
    exit 1
}

PG_BIN=$(find_pg_bin)
WORK=$(mktemp -d /tmp/robson-pg.XXXXXX)
chmod 755 "$WORK"
RUN_AS=()
if [ "$(id -u)" = 0 ]; then
    chown postgres: "$WORK" 2>/dev/null || { useradd --system --no-create-home postgres && chown postgres: "$WORK"; }
    RUN_AS=(runuser -u postgres --)
fi

cleanup() {
    "${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

port=""
for _ in $(seq 1 50); do
    candidate=$(( 20000 + RANDOM % 30000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then port=$candidate; break; fi
done
[ -n "$port" ] || { echo "error: no free port found" >&2; exit 1; }

"${RUN_AS[@]}" "$PG_BIN/initdb" -D "$WORK/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$WORK/initdb.log" 2>&1 \
    || { cat "$WORK/initdb.log" >&2; exit 1; }
cat >>"$WORK/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$WORK'
max_connections = 400
shared_buffers = 256MB
fsync = on
log_min_messages = warning
CONF
"${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w -t 60 start >/dev/null \
    || { cat "$WORK/server.log" >&2; exit 1; }

export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
# For tests that stop and restart the server (database-restart scenarios).
export ROBSON_TEST_PGDATA="$WORK/data"
export ROBSON_TEST_PG_BIN="$PG_BIN"
export ROBSON_TEST_PG_RUN_AS="${RUN_AS[*]}"
echo "with-postgres: PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port ($WORK)" >&2
set +e
"$@"
status=$?
set -e
exit $status
