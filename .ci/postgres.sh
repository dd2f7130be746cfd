#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tuning tests (tests/test_tuning_postgres.py).
#
#   .ci/postgres.sh start    install PostgreSQL if missing (apt-get, as root), initialise a
#                            cluster in a new temporary directory, start it on 127.0.0.1 on a
#                            free port and create the database "sertiny". Prints, for eval:
#                              SERTINY_PG_DIR=/tmp/sertiny-pg.XXXX
#                              SERTINY_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:PORT/sertiny
#   .ci/postgres.sh stop DIR stop the server started in DIR and delete DIR.
#
# In CI:   eval "$(.ci/postgres.sh start)"; export SERTINY_TEST_POSTGRES_URL
#          trap '.ci/postgres.sh stop "$SERTINY_PG_DIR"' EXIT
#
# PostgreSQL refuses to run as root, so as root the server runs as the "postgres" user the
# Debian package creates. Authentication is "trust" on loopback only: a test fixture, never
# a deployment. Progress goes to stderr; stdout carries only the two lines above.
# Exit status 3: PostgreSQL is missing and cannot be installed here (no apt-get, or not root).
set -euo pipefail

log() { echo "postgres.sh: $*" >&2; }

find_bindir() {
    # Debian keeps the server binaries off PATH, one directory per major version.
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then echo "$dir"; return; fi
    if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
    return 1
}

install_postgres() {
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        log "PostgreSQL is not installed and this is not a root shell with apt-get; install it and retry"
        exit 3
    fi
    log "installing PostgreSQL (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    # The package's post-install step may fail to start its own default cluster without an
    # init system; that cluster is not used, so only the binaries matter.
    apt-get install -y -qq postgresql >&2 || true
}

as_server_user() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    local bindir dir port url
    bindir=$(find_bindir) || { install_postgres; bindir=$(find_bindir) || { log "no initdb after installing"; exit 3; }; }
    dir=$(mktemp -d /tmp/sertiny-pg.XXXXXX)
    chmod 0755 "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
    log "initialising a cluster in $dir ($bindir)"
    as_server_user "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust --no-locale -E UTF8 >/dev/null
    port=$(free_port)
    as_server_user "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir" start >&2 \
        || { log "the server did not start; its log:"; cat "$dir/server.log" >&2; exit 1; }
    "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres sertiny
    url="postgresql://postgres@127.0.0.1:$port/sertiny"
    echo "$url" > "$dir/url"
    log "running: $url"
    echo "SERTINY_PG_DIR=$dir"
    echo "SERTINY_TEST_POSTGRES_URL=$url"
}

stop() {
    local dir=${1:?usage: postgres.sh stop DIR}
    local bindir
    bindir=$(find_bindir) || exit 0
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_server_user "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
    fi
    case "$dir" in /tmp/sertiny-pg.*) rm -rf "$dir" ;; *) log "not deleting $dir (not made by this script)" ;; esac
}

case "${1:-}" in
    start) start ;;
    stop) stop "${2:-}" ;;
    *) echo "usage: $0 start | stop DIR" >&2; exit 2 ;;
esac
