#!/usr/bin/env bash
# DPoP (RFC 9449): Tollgate against Apache mod_oauth2 (liboauth2, Debian's
# libapache2-mod-oauth2), the one open-source resource server in Debian that checks DPoP proofs.
# Both take the same ES256 access token, bound to a client's P-256 key (cnf.jkt), with a proof
# per request; on 127.0.0.1 only.
#
#   benchmarks/load/dpop.sh [SECONDS] [PROOFS]   # load: distinct proofs per request, each proxy on
#                                                # CPU 1, wrk and the upstream on CPU 0
#   benchmarks/load/dpop.sh --cases              # the hostile proofs against both: prints the table
#                                                # the README shows; exits non-zero when Tollgate
#                                                # takes one, or mod_oauth2 answers otherwise than
#                                                # the table says
#
# BASE_PORT (18200) and the four ports after it are used (or UP_PORT, APACHE_PORT,
# APACHE_BEARER_PORT, TOLLGATE_PORT and ADMIN_PORT). Needs Debian's wrk, nginx-light,
# apache2, libapache2-mod-oauth2 (installed with apt-get when missing), python3 with joserfc and
# requests, and a tollgate binary (TOLLGATE_BIN, else a release build made here).
set -euo pipefail
cd "$(dirname "$0")/../.."
MODE=load
if [ "${1:-}" = "--cases" ]; then MODE=cases; shift; fi
DURATION=${1:-10}
# More proofs than either proxy answers in a run: a proof is good once.
PROOFS=${2:-150000}
[ "$MODE" = cases ] && PROOFS=1
CONNECTIONS=${CONNECTIONS:-64}
BASE_PORT=${BASE_PORT:-18200}
UP=${UP_PORT:-$BASE_PORT} APACHE=${APACHE_PORT:-$((BASE_PORT + 1))}
APACHE_BEARER=${APACHE_BEARER_PORT:-$((BASE_PORT + 2))} TOLLGATE=${TOLLGATE_PORT:-$((BASE_PORT + 3))}
ADMIN=${ADMIN_PORT:-$((BASE_PORT + 4))}
WORK=$(mktemp -d /tmp/tollgate-dpop.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -f "$WORK/apache/apache2.pid" ] && kill "$(cat "$WORK/apache/apache2.pid" 2>/dev/null)" 2>/dev/null || true
    for _ in $(seq 30); do
        alive=""
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ -z "$alive" ] && break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    # Whatever is left of them: an Apache worker forked while its parent was stopping outlives it
    # (and would keep the caller's pipes open).
    pkill -9 -f "$WORK/" 2>/dev/null || true
    [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

need=()
[ "$MODE" = load ] && ! command -v wrk >/dev/null && need+=(wrk)
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
[ -x /usr/sbin/apache2 ] || need+=(apache2)
[ -f /usr/lib/apache2/modules/mod_oauth2.so ] || need+=(libapache2-mod-oauth2)
if [ ${#need[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" != "0" ] && SUDO="sudo -n"
    $SUDO apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
python3 -c "import joserfc, requests" 2>/dev/null || python3 -m pip install --quiet "joserfc>=1.6,<2" "requests>=2.28,<3"
TOLLGATE_BIN=${TOLLGATE_BIN:-.build-release/release/tollgate}
[ -x "$TOLLGATE_BIN" ] || swift build -c release --product tollgate --scratch-path .build-release
PIN0="" PIN1=""
if [ "$MODE" = load ]; then PIN0="taskset -c 0" PIN1="taskset -c 1"; fi

python3 benchmarks/load/mint_dpop.py "$WORK" "$PROOFS" \
    "tollgate=http://127.0.0.1:$TOLLGATE" "apache=http://127.0.0.1:$APACHE"
chmod -R a+rX "$WORK"

# --- the upstream and the key set (nginx) -------------------------------------------------------
mkdir -p "$WORK/up"
cat >"$WORK/up/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/up/nginx.pid;
error_log $WORK/up/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/up/body; proxy_temp_path $WORK/up/proxy;
  fastcgi_temp_path $WORK/up/f; uwsgi_temp_path $WORK/up/u; scgi_temp_path $WORK/up/s;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$UP reuseport backlog=4096;
    location = /jwks.json { default_type application/json; alias $WORK/jwks.json; }
    location / { default_type text/plain; return 200 "ok\n"; }
  }
}
EOF
$PIN0 /usr/sbin/nginx -c "$WORK/up/nginx.conf" -p "$WORK/up" & PIDS+=($!)

# --- Apache mod_oauth2 with DPoP ----------------------------------------------------------------
# As its documentation configures it: type=dpop on the verifier, the replay cache in shared
# memory with its default bound (APACHE_DPOP_CACHE_ENTRIES, 1000 proofs, the least recently used
# forgotten; its shm cache is searched entry by entry, so a bound that covers the proofs' whole
# lifetime under load costs milliseconds a request), proofs good for 300 s either way (its default is 5 s; widened so proofs minted before
# the run stay good through it, as Tollgate's proof_lifetime is below). X-Forwarded-* are left as
# clients send them: mod_oauth2 builds the htu it compares from them (see the cases).
JWK=$(cat "$WORK/issuer.jwk")
# Started as root, Apache's workers run as nobody (the hostile cases crash some of them).
APACHE_USER=""
if [ "$(id -u)" = "0" ]; then APACHE_USER="User nobody
Group nogroup"; fi
# The README's table is liboauth2 1.4.5.4's answers; another version's differences are printed,
# not failed.
LIBOAUTH2=$(dpkg-query -W -f '${Version}' liboauth2-0 2>/dev/null || echo unknown)
case "$LIBOAUTH2" in 1.4.5.4*) ;; *) export MOD_OAUTH2_EXPECTED=warn ;; esac
mkdir -p "$WORK/apache"
cat >"$WORK/apache/apache2.conf" <<EOF
ServerRoot /etc/apache2
PidFile $WORK/apache/apache2.pid
ErrorLog $WORK/apache/error.log
LogLevel warn
Mutex file:$WORK/apache default
DefaultRuntimeDir $WORK/apache
ServerName 127.0.0.1
$APACHE_USER
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule authn_core_module /usr/lib/apache2/modules/mod_authn_core.so
LoadModule authz_user_module /usr/lib/apache2/modules/mod_authz_user.so
LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so
LoadModule proxy_http_module /usr/lib/apache2/modules/mod_proxy_http.so
LoadModule oauth2_module /usr/lib/apache2/modules/mod_oauth2.so
StartServers 1
ServerLimit 1
ThreadsPerChild 64
MaxRequestWorkers 64
KeepAliveTimeout 30
MaxKeepAliveRequests 0
Listen 127.0.0.1:$APACHE
Listen 127.0.0.1:$APACHE_BEARER
OAuth2Cache shm name=dpop&max_entries=${APACHE_DPOP_CACHE_ENTRIES:-1000}&max_val_size=128
<VirtualHost 127.0.0.1:$APACHE>
  <Location /orders>
    AuthType oauth2
    OAuth2AcceptTokenIn header name=Authorization&type=DPoP
    OAuth2TokenVerify jwk '$JWK' type=dpop&verify.exp=required&verify.iat=required&expiry=60&dpop.cache=dpop&dpop.expiry=610&dpop.iat.verify=required&dpop.iat.slack.before=300&dpop.iat.slack.after=300
    OAuth2TargetPass remote_user_claim=sub
    Require valid-user
    ProxyPass http://127.0.0.1:$UP/orders
  </Location>
</VirtualHost>
<VirtualHost 127.0.0.1:$APACHE_BEARER>
  <Location /orders>
    AuthType oauth2
    OAuth2TokenVerify jwk '$JWK' verify.exp=required&verify.iat=required&expiry=60
    OAuth2TargetPass remote_user_claim=sub
    Require valid-user
    ProxyPass http://127.0.0.1:$UP/orders
  </Location>
</VirtualHost>
EOF
$PIN1 /usr/sbin/apache2 -f "$WORK/apache/apache2.conf" -DFOREGROUND & PIDS+=($!)

# --- Tollgate -----------------------------------------------------------------------------------
cat >"$WORK/tollgate.yaml" <<EOF
listen: 127.0.0.1:$TOLLGATE
admin: 127.0.0.1:$ADMIN
upstream: http://127.0.0.1:$UP
server:
  access_log: false
  public_url: http://127.0.0.1:$TOLLGATE
dpop:
  algorithms: [ES256, RS256, PS256, EdDSA]
  proof_lifetime: 300s
  clock_skew: 300s
issuers:
  - name: bench
    issuer: https://idp.bench.test
    jwks_uri: http://127.0.0.1:$UP/jwks.json
    audiences: [bench-api]
    algorithms: [ES256]
routes:
  - match: { prefix: /orders }
    require: { scopes: { all: [orders.read] } }
EOF
$PIN1 "$TOLLGATE_BIN" serve --config "$WORK/tollgate.yaml" >"$WORK/tollgate.log" 2>&1 & TOLLGATE_PID=$!
PIDS+=($TOLLGATE_PID)

for port in $UP $APACHE $APACHE_BEARER $TOLLGATE; do
    up=""
    for _ in $(seq 150); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && up=1 && break; sleep 0.1; done
    if [ -z "$up" ]; then
        echo "nothing listens on 127.0.0.1:$port" >&2
        tail -n 20 "$WORK/apache/error.log" "$WORK/tollgate.log" "$WORK/up/error.log" 2>/dev/null >&2 || true
        exit 1
    fi
done
for pid in "${PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "a server of the harness exited (pid $pid)" >&2; exit 1; }
done
sleep 0.5

if [ "$MODE" = cases ]; then
    status=0
    echo "liboauth2 $LIBOAUTH2"
    python3 benchmarks/load/dpop_cases.py "$WORK" "http://127.0.0.1:$TOLLGATE" "http://127.0.0.1:$APACHE" || status=$?
    # Tollgate must still be serving after every hostile proof.
    kill -0 "$TOLLGATE_PID" 2>/dev/null || { echo "FAILED: tollgate exited during the cases"; status=1; }
    if [ $status -ne 0 ]; then
        echo "--- apache error log ---"; tail -n 30 "$WORK/apache/error.log" || true
        echo "--- tollgate log ---"; tail -n 30 "$WORK/tollgate.log" || true
    fi
    exit $status
fi

# --- load ---------------------------------------------------------------------------------------
ticks() {
    local total=0 pid
    for pid in $({ pgrep -f "$1"; pgrep -f "$1" | xargs -r -n1 pgrep -P; } | sort -u); do
        total=$((total + $(awk '{print $14 + $15}' /proc/$pid/stat 2>/dev/null || echo 0)))
    done
    echo $total
}
cat >"$WORK/bearer.lua" <<EOF
local token = io.open("$WORK/bearer.txt"):read("*a")
request = function() return wrk.format("GET", "/orders/1", {["Authorization"] = "Bearer " .. token}) end
EOF
# The same claims, unbound, for the bearer rows.
python3 - "$WORK" <<'PYEOF'
import json, sys, time
from joserfc import jwt
from joserfc.jwk import ECKey
directory = sys.argv[1]
key = ECKey.import_key(json.load(open(f"{directory}/issuer-private.jwk")))
now = int(time.time())
claims = {"iss": "https://idp.bench.test", "aud": "bench-api", "sub": "user-bearer", "exp": now + 7200, "iat": now,
          "scope": "orders.read"}
open(f"{directory}/bearer.txt", "w").write(jwt.encode({"alg": "ES256", "kid": "ec-1", "typ": "at+jwt"}, claims, key))
PYEOF

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
# run NAME CASE PORT SCRIPT PROCESS-PATTERN
run() {
    local name=$1 case=$2 port=$3 script=$4 pattern=$5
    local before after output
    before=$(ticks "$pattern")
    output=$(taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$script" "http://127.0.0.1:$port/orders/1")
    after=$(ticks "$pattern")
    local rps requests non2xx p50 p99 cpu
    rps=$(echo "$output" | awk '/Requests\/sec/ {print $2}')
    requests=$(echo "$output" | awk '/requests in/ {print $1}')
    non2xx=$(echo "$output" | awk '/Non-2xx/ {print $5}')
    p50=$(echo "$output" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$output" | awk '$1 == "99%" {print $2}')
    cpu=$(awk -v t=$((after - before)) -v n="$requests" 'BEGIN { if (n > 0) printf "%.1f", t * 10000 / n; else print "-" }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$case" "$rps" "$p50" "$p99" "$cpu" "${non2xx:-0}" "$requests" >>"$RESULTS"
}
TG_PATTERN="serve --config $WORK/tollgate.yaml"
AP_PATTERN="apache2 -f $WORK"
# Warm both (connections, the key set, the token's verification cache) with the bearer token.
taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d1s -s "$WORK/bearer.lua" "http://127.0.0.1:$TOLLGATE/orders/1" >/dev/null 2>&1 || true
taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d1s -s "$WORK/bearer.lua" "http://127.0.0.1:$APACHE_BEARER/orders/1" >/dev/null 2>&1 || true
run tollgate "bearer ES256, one token" "$TOLLGATE" "$WORK/bearer.lua" "$TG_PATTERN"
run mod_oauth2 "bearer ES256, one token" "$APACHE_BEARER" "$WORK/bearer.lua" "$AP_PATTERN"
run tollgate "DPoP, distinct ES256 proofs" "$TOLLGATE" "$WORK/tollgate.lua" "$TG_PATTERN"
run mod_oauth2 "DPoP, distinct ES256 proofs" "$APACHE" "$WORK/apache.lua" "$AP_PATTERN"
RSS=$(awk '/VmRSS/ {print $2}' /proc/$TOLLGATE_PID/status)

echo
printf '%-12s %-30s %10s %9s %9s %12s %8s %9s\n' proxy case "req/s" p50 p99 "CPU µs/req" non-2xx requests
while IFS=$'\t' read -r name case rps p50 p99 cpu non2xx requests; do
    printf '%-12s %-30s %10s %9s %9s %12s %8s %9s\n' "$name" "$case" "$rps" "$p50" "$p99" "$cpu" "$non2xx" "$requests"
done <"$RESULTS"
echo
field() { awk -F'\t' -v n="$1" -v c="$2" -v k="$3" '$1 == n && $2 ~ c {print $k}' "$RESULTS"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo "DPoP req/s, Tollgate / mod_oauth2:          $(ratio "$(field tollgate DPoP 3)" "$(field mod_oauth2 DPoP 3)")"
echo "DPoP CPU/request, Tollgate / mod_oauth2:    $(ratio "$(field tollgate DPoP 6)" "$(field mod_oauth2 DPoP 6)")"
echo "Tollgate CPU/request, DPoP / bearer:        $(ratio "$(field tollgate DPoP 6)" "$(field tollgate bearer 6)")"
echo "mod_oauth2 CPU/request, DPoP / bearer:      $(ratio "$(field mod_oauth2 DPoP 6)" "$(field mod_oauth2 bearer 6)")"
echo "Tollgate resident memory after the run:     $((RSS / 1024)) MB (the replay cache holds every proof of the last $((300 + 300 + 1)) s)"
