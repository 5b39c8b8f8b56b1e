#!/usr/bin/env bash
# A throwaway PostgreSQL server for the issuer's tests: Debian's postgresql (installed when
# missing), a fresh cluster in a temporary folder, on 127.0.0.1 with password authentication.
#   scripts/postgres.sh start   prints the export lines for TOLLGATE_TEST_POSTGRES_* (eval them)
#   scripts/postgres.sh stop DIR
set -euo pipefail

find_bin() {
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
    echo "$found"
}

case "${1:-}" in
start)
    bin=$(find_bin)
    if [ -z "$bin" ] || ! [ -x "$bin/initdb" ]; then
        SUDO=""
        if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
        $SUDO apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends postgresql >/dev/null
        bin=$(find_bin)
    fi
    dir=$(mktemp -d /tmp/tollgate-pg.XXXXXX)
    password=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24)
    printf '%s\n' "$password" >"$dir/pwfile"
    # initdb and postgres refuse to run as root; the cluster belongs to the postgres user then.
    run=()
    if [ "$(id -u)" = "0" ]; then
        chown -R postgres "$dir"
        run=(runuser -u postgres --)
    fi
    "${run[@]}" "$bin/initdb" -D "$dir/data" -U tollgate --pwfile="$dir/pwfile" \
        --auth-local=scram-sha-256 --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "${run[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200 -c fsync=off" start >/dev/null
    echo "export TOLLGATE_TEST_POSTGRES_DIR=$dir"
    echo "export TOLLGATE_TEST_POSTGRES_URL=postgres://tollgate@127.0.0.1:$port/postgres"
    echo "export TOLLGATE_TEST_POSTGRES_PASSWORD_FILE=$dir/pwfile"
    ;;
stop)
    dir="${2:?the folder start printed}"
    bin=$(find_bin)
    run=()
    if [ "$(id -u)" = "0" ]; then run=(runuser -u postgres --); fi
    "${run[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 start | stop DIR" >&2
    exit 2
    ;;
esac
