#!/usr/bin/env bash
# Instructions per request, a measure that does not drift with the machine's load: the proxy
# under valgrind's callgrind with one event loop, exactly N1 and then N2 keep-alive requests
# (h2load --h1, 4 connections) in two fresh processes; (Ir(N2) - Ir(N1)) / (N2 - N1) is one
# request's user-space instructions, start-up, shutdown and connection set-up cancelled. The
# upstream (nginx answering "ok") runs outside valgrind. On 127.0.0.1 only.
#
#   benchmarks/instructions/run.sh [CASES]        # CASES: a regex over the case names below
#   N1=2000 N2=12000 benchmarks/instructions/run.sh 'log'
#   TOLLGATE_BIN=.build-release-base/release/tollgate benchmarks/instructions/run.sh   # A/B
#   ANNOTATE=1 benchmarks/instructions/run.sh 'log-on'   # also the top functions of the N2 run
#   ANNOTATE='AccessLog|LineWriter' benchmarks/instructions/run.sh 'log-on'   # inclusive, per request
#
# Cases: tollgate-log-on and tollgate-log-off (pass-through, `auth: none`), tollgate-token
# (one RS256 token repeated: a verified-token cache hit), nginx (`proxy_pass`, the reference),
# and over HTTP/2 by prior knowledge (h2c, 4 connections of 10 streams each): tollgate-h2c and
# nginx-h2c (`listen … http2`). tollgate-distinct-rs256 and tollgate-distinct-es256 send a token
# never seen before with every request (minted by benchmarks/load/mint.py with joserfc): every
# request verifies a signature. h2load cannot vary a header, so a small Python client
# (benchmarks/instructions/distinct.py, 4 keep-alive connections) sends these. tollgate-dpop sends
# one DPoP-bound RS256 token (a cache hit after the first) with a distinct ES256 proof every
# request (RFC 9449: every proof's signature checked, its jti remembered): against tollgate-token,
# the cost of DPoP.
# Needs valgrind, nghttp2-client (h2load), nginx-light and gcc (installed with apt-get when
# missing), and a release build of tollgate (built here when absent).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
FILTER=${1:-.}
N1=${N1:-2000}
N2=${N2:-12000}
WORK=$(mktemp -d /tmp/tollgate-instructions.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    # KEEP=1 keeps the callgrind files (callgrind_annotate --tree=caller FILE) and says where.
    if [ -n "${KEEP:-}" ]; then echo "callgrind files kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

need=()
command -v valgrind >/dev/null || need+=(valgrind)
command -v h2load >/dev/null || need+=(nghttp2-client)
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v gcc >/dev/null || need+=(gcc)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
TOLLGATE_BIN=${TOLLGATE_BIN:-.build-release/release/tollgate}
[ -x "$TOLLGATE_BIN" ] || swift build -c release --product tollgate --scratch-path .build-release
# valgrind 3.19 cannot read Swift 6's DWARF: a copy without debug sections (symbols stay).
strip --strip-debug -o "$WORK/tollgate" "$TOLLGATE_BIN"
# valgrind corrupts the mask an async main's parked thread passes to sigsuspend: pass a copy.
cat >"$WORK/sigsuspend.c" <<'C'
#define _GNU_SOURCE
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>
int sigsuspend(const sigset_t *mask) { sigset_t copy = *mask; return syscall(SYS_rt_sigsuspend, &copy, 8); }
C
gcc -O2 -shared -fPIC -o "$WORK/sigsuspend.so" "$WORK/sigsuspend.c"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 600); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

UPSTREAM=$(free_port)
mkdir -p "$WORK/upstream"
cat >"$WORK/upstream/nginx.conf" <<NGINX
worker_processes 1; daemon off; pid $WORK/upstream/nginx.pid; error_log /dev/null;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:$UPSTREAM; keepalive_requests 1000000;
  location / { return 200 "ok"; } } }
NGINX
taskset -c 0 /usr/sbin/nginx -c "$WORK/upstream/nginx.conf" -p "$WORK/upstream" &
PIDS+=($!)
wait_port "$UPSTREAM"

TOKEN=$(python3 - <<'PY'
import base64, json, time
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
numbers = key.public_key().public_numbers()
b64 = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
jwk = {"kty": "RSA", "kid": "k1", "alg": "RS256", "n": b64(n), "e": b64(numbers.e.to_bytes(3, "big"))}
open("/dev/stdout", "w").close() if False else None
header = b64(json.dumps({"alg": "RS256", "kid": "k1", "typ": "JWT"}).encode())
claims = b64(json.dumps({"iss": "https://issuer.bench", "aud": "bench-api", "sub": "u1", "scope": "read",
                          "iat": int(time.time()), "exp": int(time.time()) + 3600}).encode())
signature = key.sign(f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
print(json.dumps({"keys": [jwk]}) + "\n" + f"{header}.{claims}.{b64(signature)}")
PY
)
printf '%s\n' "$TOKEN" | head -1 >"$WORK/jwks.json"
JWT=$(printf '%s\n' "$TOKEN" | tail -1)

# Distinct tokens, only when a distinct case runs: N2 of each algorithm and some to spare (each run
# starts from the first token in a fresh process, so no run sees one twice).
if [[ "tollgate-distinct-rs256 tollgate-distinct-es256 tollgate-dpop" =~ $FILTER ]] || [ "$FILTER" = . ]; then
    python3 -c "import joserfc" 2>/dev/null || python3 -m pip install --quiet "joserfc>=1.6,<2"
    mkdir -p "$WORK/mint"
    python3 benchmarks/load/mint.py "$WORK/mint" $((N2 + 100))
fi

# tollgate_config NAME PORT ADMIN: the file for a case.
tollgate_config() {
    local log=true auth="auth: none" h2c=false issuer=https://issuer.bench jwks=$WORK/jwks.json
    local audience=bench-api
    [ "$1" = tollgate-log-off ] && log=false
    [ "$1" = tollgate-h2c ] && h2c=true
    local extra=""
    if [[ "$1" == tollgate-distinct-* ]] || [ "$1" = tollgate-dpop ]; then
        auth="issuers: [bench]"
        issuer=https://idp.bench.test
        jwks=$WORK/mint/jwks.json
    fi
    # The proofs were made beforehand for this origin; valgrind is slow, so they live long.
    [ "$1" = tollgate-dpop ] && extra=$'  public_url: https://bench.test\ndpop:\n  proof_lifetime: 2h'
    [ "$1" = tollgate-token ] && auth="issuers: [bench]"
    cat >"$WORK/$1.yaml" <<YAML
listen: 127.0.0.1:$2
admin: 127.0.0.1:$3
upstream: http://127.0.0.1:$UPSTREAM
server:
  threads: 1
  access_log: $log
  h2c: $h2c
$extra
issuers:
  - name: bench
    issuer: $issuer
    jwks_file: $jwks
    audiences: [$audience]
    algorithms: [RS256, ES256]
routes:
  - match: { prefix: / }
    $auth
YAML
}

# instructions CASE N: "Ir requests" of one process answering N requests.
instructions() {
    local name=$1 count=$2 port admin out pid
    port=$(free_port)
    admin=$(free_port)
    out="$WORK/callgrind.$name.$count"
    if [ "$name" = nginx ] || [ "$name" = nginx-h2c ]; then
        local listen=""
        [ "$name" = nginx-h2c ] && listen=" http2"
        mkdir -p "$WORK/nginx"
        cat >"$WORK/nginx/nginx.conf" <<NGINX
worker_processes 1; master_process off; daemon off; pid $WORK/nginx/nginx.pid; error_log /dev/null;
events { worker_connections 1024; }
http { access_log off; upstream up { server 127.0.0.1:$UPSTREAM; keepalive 16; }
  server { listen 127.0.0.1:$port$listen; keepalive_requests 1000000;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
NGINX
        taskset -c 1 valgrind --tool=callgrind --callgrind-out-file="$out" \
            /usr/sbin/nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" >/dev/null 2>"$out.log" &
    else
        tollgate_config "$name" "$port" "$admin"
        LD_PRELOAD="$WORK/sigsuspend.so" taskset -c 1 valgrind --tool=callgrind --callgrind-out-file="$out" \
            "$WORK/tollgate" serve --config "$WORK/$name.yaml" >"$out.stdout" 2>"$out.log" &
    fi
    pid=$!
    PIDS+=("$pid")
    wait_port "$port" || { echo "no listener for $name" >&2; cat "$out.log" >&2; exit 1; }
    local requests=$count
    if [[ "$name" == tollgate-distinct-* ]] || [ "$name" = tollgate-dpop ]; then
        local alg=${name#tollgate-distinct-}
        [ "$name" = tollgate-dpop ] && alg=dpop
        taskset -c 0 python3 benchmarks/instructions/distinct.py "$port" "$WORK/mint/$alg.txt" "$count" 4 >"$out.client" \
            || { echo "$name: not every request succeeded" >&2; cat "$out.client" >&2; exit 1; }
    else
        local header=()
        [ "$name" = tollgate-token ] && header=(-H "authorization: Bearer $JWT")
        local protocol=(--h1)
        [[ "$name" == *h2c ]] && protocol=(-m 10)
        taskset -c 0 h2load "${protocol[@]}" -n "$count" -c 4 "${header[@]}" "http://127.0.0.1:$port/item" >"$out.h2load"
        grep -q "$count succeeded" "$out.h2load" || { echo "$name: not every request succeeded" >&2; cat "$out.h2load" >&2; exit 1; }
    fi
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    echo "$(grep -E '^(summary|totals):' "$out" | head -1 | awk '{print $2}') $requests"
}

printf '| case | instructions per request | N1 Ir | N2 Ir |\n| --- | --- | --- | --- |\n'
for name in tollgate-log-on tollgate-log-off tollgate-token nginx tollgate-distinct-rs256 tollgate-distinct-es256 \
    tollgate-dpop tollgate-h2c nginx-h2c; do
    [[ "$name" =~ $FILTER ]] || continue
    read -r low low_requests < <(instructions "$name" "$N1")
    read -r high high_requests < <(instructions "$name" "$N2")
    per=$(( (high - low) / (high_requests - low_requests) ))
    printf '| %s | %s | %s | %s |\n' "$name" "$per" "$low" "$high"
    if [ "${ANNOTATE:-}" = 1 ]; then
        callgrind_annotate --inclusive=no "$WORK/callgrind.$name.$N2" 2>/dev/null | sed -n '20,50p' | cut -c1-160
    elif [ -n "${ANNOTATE:-}" ]; then
        # ANNOTATE=REGEX: the inclusive cost of the functions whose names match, per request.
        callgrind_annotate --inclusive=yes "$WORK/callgrind.$name.$N2" 2>/dev/null | grep -E "$ANNOTATE" \
            | awk -v n="$N2" '{gsub(",", "", $1); printf "%10.0f per request  %s\n", $1 / n, substr($0, index($0, $3), 150)}' \
            | head -30
    fi
done
