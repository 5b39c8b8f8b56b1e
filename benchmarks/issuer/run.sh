#!/usr/bin/env bash
# Issuer load harness: `tollgate serve` with the in-process issuer pinned to CPU 1, wrk on CPU 0,
# on 127.0.0.1 only, once on SQLite and once on PostgreSQL (Debian's postgresql, a throwaway
# cluster, also on CPU 0), beside the raw RS256 signing rate of the same machine in the same run
# (`openssl speed -seconds 3 rsa2048`, one core). Prints, per storage: client_credentials
# issuance per second (JWT access tokens), introspection of an opaque token per second, refresh
# rotations per second (each a real rotation of its own chain, with an ID token).
#
#   benchmarks/issuer/run.sh [SECONDS_PER_CASE]
#   STORAGES=sqlite benchmarks/issuer/run.sh 5
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
DURATION=${1:-10}
STORAGES=${STORAGES:-"sqlite postgres"}
CONNECTIONS=${CONNECTIONS:-32}
CHAINS=${CHAINS:-16}
WORK=$(mktemp -d /tmp/tollgate-issuer-bench.XXXXXX)
PIDS=()
PG_DIR=""
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -n "$PG_DIR" ] && "$ROOT/scripts/postgres.sh" stop "$PG_DIR"
    rm -rf "$WORK"
}
trap cleanup EXIT
command -v wrk >/dev/null || { apt-get update -q >/dev/null; apt-get install -y -q wrk >/dev/null; }
python3 -c "import requests" 2>/dev/null || python3 -m pip install --quiet "requests>=2.28,<3"
TOLLGATE_BIN=${TOLLGATE_BIN:-.build-release/release/tollgate}
[ -x "$TOLLGATE_BIN" ] || swift build -c release --product tollgate --scratch-path .build-release
TOLLGATE_BIN=$(cd "$(dirname "$TOLLGATE_BIN")" && pwd)/$(basename "$TOLLGATE_BIN")

SECRET=bench-secret-0123456789abcdef0123456789
PASSWORD="bench password 1"
printf '%s' "$SECRET" >"$WORK/client.secret"
printf '%s\n' "$PASSWORD" | "$TOLLGATE_BIN" issuer hash-password >"$WORK/user.hash"
basic() { printf '%s:%s' "$(jq -rn --arg v "$1" '$v|@uri')" "$SECRET" | openssl base64 -A; }
export BASIC_M2M=$(basic "@bench/svc") BASIC_WEB=$(basic "@bench/web")

echo "== raw RS256 signing, one core (openssl speed -seconds 3 rsa2048)"
RAW=$(taskset -c 1 openssl speed -seconds 3 rsa2048 2>/dev/null | awk '/^rsa 2048 bits/ {print $6}')
echo "raw RSA-2048 sign/s: $RAW"

# config STORAGE_LINES JWT PORT
config() {
    cat >"$WORK/tollgate.yaml" <<YAML
listen: 127.0.0.1:$3
admin: 127.0.0.1:$(($3 + 1))
server:
  access_log: false
issuer:
  issuer: http://127.0.0.1:$3
  jwt_access_token: $2
  storage:
$1
  apis:
    - audience: "@bench/api"
      scopes: ["@bench/api.read"]
  clients:
    - client_id: "@bench/svc"
      type: machine
      client_secret_file: client.secret
      scopes: ["@bench/api.read"]
    - client_id: "@bench/web"
      type: web
      client_secret_file: client.secret
      redirect_uris: ["http://127.0.0.1:9/cb"]
      scopes: [openid, offline_access]
      skip_consent: true
  users:
    - username: bench
      password_hash_file: user.hash
routes:
  - match: { prefix: / }
    issuers: [local]
YAML
}

start() {
    taskset -c 1 "$TOLLGATE_BIN" serve --config "$WORK/tollgate.yaml" >"$WORK/tollgate.log" 2>&1 &
    PIDS+=($!)
    SERVER=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/.well-known/openid-configuration" >/dev/null && return; sleep 0.1; done
    cat "$WORK/tollgate.log"; exit 1
}
stop() { kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; }

# wrk … → "requests/s non2xx"
load() {
    local out
    out=$(taskset -c 0 wrk -t"$1" -c"$2" -d"${DURATION}s" --latency -s "$3" "http://127.0.0.1:$PORT$4")
    local rps non
    rps=$(printf '%s\n' "$out" | awk '/^Requests\/sec/ {print $2}')
    non=$(printf '%s\n' "$out" | awk '/Non-2xx/ {print $5}')
    local p99
    p99=$(printf '%s\n' "$out" | awk '$1 == "99%" {print $2}')
    echo "$rps ${non:-0} $p99"
}

declare -A RESULTS
for storage in $STORAGES; do
    PORT=$((20000 + RANDOM % 20000))
    case $storage in
    sqlite)
        rm -f "$WORK"/issuer.sqlite*
        LINES="    sqlite: issuer.sqlite"
        ;;
    postgres)
        if [ -z "$PG_DIR" ]; then
            eval "$(taskset -c 0 "$ROOT/scripts/postgres.sh" start)"
            PG_DIR=$TOLLGATE_TEST_POSTGRES_DIR
        fi
        DB=bench_$RANDOM
        PGPASSWORD=$(cat "$TOLLGATE_TEST_POSTGRES_PASSWORD_FILE") psql -q "$TOLLGATE_TEST_POSTGRES_URL" -c "CREATE DATABASE $DB"
        LINES="    postgres:
      url: ${TOLLGATE_TEST_POSTGRES_URL%/*}/$DB
      password_file: $TOLLGATE_TEST_POSTGRES_PASSWORD_FILE"
        ;;
    esac
    echo "== $storage"
    config "$LINES" true "$PORT"
    start
    BASIC=$BASIC_M2M read -r rps non p99 < <(BASIC=$BASIC_M2M load 1 "$CONNECTIONS" benchmarks/issuer/token.lua /oauth2/token)
    echo "client_credentials issuance (JWT): $rps/s, non-2xx $non, p99 $p99"
    RESULTS[$storage.issue]=$rps
    python3 benchmarks/issuer/refresh_tokens.py "http://127.0.0.1:$PORT" "@bench/web" "$SECRET" bench "$PASSWORD" \
        http://127.0.0.1:9/cb "$CHAINS" >"$WORK/refresh.txt"
    read -r rps non p99 < <(BASIC=$BASIC_WEB TOKENS=$WORK/refresh.txt load "$CHAINS" "$CHAINS" benchmarks/issuer/refresh.lua /oauth2/token)
    echo "refresh rotations: $rps/s, non-2xx $non, p99 $p99"
    RESULTS[$storage.refresh]=$rps
    stop
    config "$LINES" false "$PORT"
    start
    TOKEN=$(curl -sf -u "@bench/svc:$SECRET" -d grant_type=client_credentials "http://127.0.0.1:$PORT/oauth2/token" | jq -r .access_token)
    [[ "$TOKEN" != *.*.* ]] || { echo "expected an opaque token"; exit 1; }
    read -r rps non p99 < <(BASIC=$BASIC_M2M TOKEN=$TOKEN load 1 "$CONNECTIONS" benchmarks/issuer/introspect.lua /oauth2/introspect)
    echo "introspection (opaque): $rps/s, non-2xx $non, p99 $p99"
    RESULTS[$storage.introspect]=$rps
    stop
done

echo
echo "| storage | client_credentials/s (JWT) | ÷ raw RSA-2048 sign/s ($RAW) | introspection/s | refresh rotations/s |"
echo "| --- | --- | --- | --- | --- |"
for storage in $STORAGES; do
    ratio=$(python3 -c "print(f'{${RESULTS[$storage.issue]} / $RAW * 100:.1f} %')")
    echo "| $storage | ${RESULTS[$storage.issue]} | $ratio | ${RESULTS[$storage.introspect]} | ${RESULTS[$storage.refresh]} |"
done
