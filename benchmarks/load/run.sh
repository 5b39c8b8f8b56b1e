#!/usr/bin/env bash
# Load harness: Tollgate against nginx (no auth, the limit), HAProxy 2.6 jwt_verify and Apache
# mod_auth_openidc, one after the other in one run, on 127.0.0.1 only, each proxy pinned to CPU 1,
# wrk and the tiny upstream on CPU 0. Prints req/s, p50/p99 latency, proxy CPU time per request
# and the ratios against nginx (and against the peer each target names).
#
#   benchmarks/load/run.sh [SECONDS_PER_CASE] [TOKENS]
#   CASES='nginx|tollgate' benchmarks/load/run.sh 5 1000   # only the rows whose "proxy case" matches
#   PERF=1 CASES=tollgate benchmarks/load/run.sh 5 60000   # also a perf profile of each Tollgate case
#
# Needs Debian's wrk, nginx-light, haproxy, apache2, libapache2-mod-auth-openidc (installed here
# with apt-get when missing), python3 with joserfc, and a release build of tollgate (built here).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
DURATION=${1:-5}
# Enough distinct tokens that no proxy sees one twice within a measured run at ~30k req/s.
TOKENS=${2:-150000}
CONNECTIONS=${CONNECTIONS:-64}
WORK=$(mktemp -d /tmp/tollgate-load.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    sleep 0.5
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    [ -f "$WORK/apache/apache2.pid" ] && kill "$(cat "$WORK/apache/apache2.pid")" 2>/dev/null || true
}
trap cleanup EXIT

need=()
command -v wrk >/dev/null || need+=(wrk)
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
[ -x /usr/sbin/haproxy ] || need+=(haproxy)
[ -x /usr/sbin/apache2 ] || need+=(apache2)
[ -f /usr/lib/apache2/modules/mod_auth_openidc.so ] || need+=(libapache2-mod-auth-openidc)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
python3 -c "import joserfc" 2>/dev/null || python3 -m pip install --quiet "joserfc>=1.6,<2"
# A release build in its own scratch folder, so it never waits on (or invalidates) the debug build.
TOLLGATE_BIN=${TOLLGATE_BIN:-.build-release/release/tollgate}
[ -x "$TOLLGATE_BIN" ] || swift build -c release --product tollgate --scratch-path .build-release

echo "work directory: $WORK"
python3 benchmarks/load/mint.py "$WORK" "$TOKENS"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=127.0.0.1 \
    -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
# nginx workers run unprivileged: let them read the key set.
chmod -R a+rX "$WORK"
NOW=$(date +%s)

# --- the tiny upstream, the key set and the introspection stub (nginx on CPU 0) -------------
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
    listen 127.0.0.1:18000 reuseport backlog=4096;
    listen 127.0.0.1:18443 ssl;
    ssl_certificate $WORK/tls.crt; ssl_certificate_key $WORK/tls.key;
    location = /jwks.json { default_type application/json; alias $WORK/jwks.json; add_header Cache-Control "max-age=3600"; }
    location = /introspect {
      default_type application/json;
      return 200 '{"active":true,"iss":"https://idp.bench.test/opaque","aud":"bench-api","sub":"svc-1","scope":"orders.read","exp":$((NOW + 7200)),"client_id":"bench"}';
    }
    location / { default_type text/plain; return 200 "ok\n"; }
  }
}
EOF
taskset -c 0 /usr/sbin/nginx -c "$WORK/up/nginx.conf" -p "$WORK/up" & PIDS+=($!)

# --- nginx proxy_pass, no authentication: the limit ---------------------------------------------
mkdir -p "$WORK/nx"
cat >"$WORK/nx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nx/nginx.pid;
error_log $WORK/nx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nx/body; proxy_temp_path $WORK/nx/proxy;
  fastcgi_temp_path $WORK/nx/f; uwsgi_temp_path $WORK/nx/u; scgi_temp_path $WORK/nx/s;
  keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:18000; keepalive 64; }
  server {
    listen 127.0.0.1:18081 backlog=4096;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
EOF
taskset -c 1 /usr/sbin/nginx -c "$WORK/nx/nginx.conf" -p "$WORK/nx" & PIDS+=($!)

# --- HAProxy 2.6 jwt_verify: the algorithm pinned per key file (never read from the token) ------
cat >"$WORK/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
backend up
  server s1 127.0.0.1:18000
frontend rs256
  bind 127.0.0.1:18082
  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.now) date
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_header_query('\$.alg') -m str RS256 }
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_verify("RS256","$WORK/rsa_public.pem") -m int 1 }
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_payload_query('\$.iss') -m str https://idp.bench.test }
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_payload_query('\$.aud') -m str bench-api }
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('\$.exp','int')
  http-request deny deny_status 401 if { var(txn.exp),sub(txn.now) -m int lt 0 }
  default_backend up
frontend es256
  bind 127.0.0.1:18092
  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.now) date
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_header_query('\$.alg') -m str ES256 }
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_verify("ES256","$WORK/ec_public.pem") -m int 1 }
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_payload_query('\$.iss') -m str https://idp.bench.test }
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_payload_query('\$.aud') -m str bench-api }
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('\$.exp','int')
  http-request deny deny_status 401 if { var(txn.exp),sub(txn.now) -m int lt 0 }
  default_backend up
EOF
taskset -c 1 /usr/sbin/haproxy -f "$WORK/haproxy.cfg" -db & PIDS+=($!)

# --- Apache mod_auth_openidc as an OAuth resource server ----------------------------------------
# 2.4 refuses http:// key set and introspection URLs, so they go through the TLS listener above;
# it checks neither iss nor aud unless Require claim says so.
mkdir -p "$WORK/apache"
cat >"$WORK/apache/apache2.conf" <<EOF
ServerRoot /etc/apache2
PidFile $WORK/apache/apache2.pid
ErrorLog $WORK/apache/error.log
LogLevel warn
Mutex file:$WORK/apache default
DefaultRuntimeDir $WORK/apache
ServerName 127.0.0.1
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule authn_core_module /usr/lib/apache2/modules/mod_authn_core.so
LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so
LoadModule proxy_http_module /usr/lib/apache2/modules/mod_proxy_http.so
LoadModule auth_openidc_module /usr/lib/apache2/modules/mod_auth_openidc.so
StartServers 1
ServerLimit 1
ThreadsPerChild 64
MaxRequestWorkers 64
KeepAliveTimeout 30
MaxKeepAliveRequests 0
Listen 127.0.0.1:18083
Listen 127.0.0.1:18093
OIDCSSLValidateServer Off
OIDCOAuthSSLValidateServer Off
OIDCCacheType shm
OIDCCacheShmMax 100000
# Cache keys are the tokens, longer than the shm backend's 512-byte key limit; encrypting the
# cache hashes the keys, which is what makes its cache work for JWTs at all.
OIDCCacheEncrypt On
OIDCCryptoPassphrase bench-cache-passphrase
<VirtualHost 127.0.0.1:18083>
  OIDCOAuthVerifyJwksUri https://127.0.0.1:18443/jwks.json
  <Location />
    AuthType oauth20
    Require claim iss:https://idp.bench.test
    Require claim aud:bench-api
    ProxyPass http://127.0.0.1:18000/
  </Location>
</VirtualHost>
<VirtualHost 127.0.0.1:18093>
  OIDCOAuthIntrospectionEndpoint https://127.0.0.1:18443/introspect
  OIDCOAuthClientID bench
  OIDCOAuthClientSecret bench-secret
  <Location />
    AuthType oauth20
    Require claim iss:https://idp.bench.test/opaque
    ProxyPass http://127.0.0.1:18000/
  </Location>
</VirtualHost>
EOF
taskset -c 1 /usr/sbin/apache2 -f "$WORK/apache/apache2.conf" -DFOREGROUND & PIDS+=($!)

# --- Tollgate -----------------------------------------------------------------------------------
# As shipped: the access log on (to a file here, as a container runtime's pipe would take it);
# a second process, the same file with the log off, for the log's own cost.
cat >"$WORK/tollgate.yaml" <<EOF
listen: 127.0.0.1:18084
admin: 127.0.0.1:18099
upstream: http://127.0.0.1:18000
server:
  access_log: true
issuers:
  - name: bench
    issuer: https://idp.bench.test
    jwks_uri: http://127.0.0.1:18000/jwks.json
    audiences: [bench-api]
    algorithms: [RS256, ES256]
  - name: opaque
    issuer: https://idp.bench.test/opaque
    introspection:
      endpoint: http://127.0.0.1:18000/introspect
      client_id: bench
      client_secret_env: BENCH_INTROSPECTION_SECRET
routes:
  # The HTTP path's own cost: the same exchange with no token to check.
  - match: { prefix: /public }
    auth: none
  - match: { prefix: /orders }
    require: { scopes: { all: [orders.read] } }
forward:
  claims: { X-Auth-Subject: sub }
EOF
BENCH_INTROSPECTION_SECRET=bench-secret taskset -c 1 "$TOLLGATE_BIN" serve --config "$WORK/tollgate.yaml" \
    >"$WORK/tollgate.log" 2>&1 & TOLLGATE=$!
PIDS+=($TOLLGATE)
sed -e 's/18084/18085/; s/18099/18098/; s/access_log: true/access_log: false/' "$WORK/tollgate.yaml" \
    >"$WORK/tollgate-nolog.yaml"
BENCH_INTROSPECTION_SECRET=bench-secret taskset -c 1 "$TOLLGATE_BIN" serve --config "$WORK/tollgate-nolog.yaml" \
    >"$WORK/tollgate-nolog.log" 2>&1 & PIDS+=($!)

for port in 18000 18081 18082 18083 18084 18085; do
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done
sleep 1

# CPU ticks (utime + stime) of a proxy: the processes matching the pattern and their children
# (nginx and Apache workers).
ticks() {
    local total=0 pid
    # Each process once: Apache's workers match the pattern themselves and are children too.
    for pid in $({ pgrep -f "$1"; pgrep -f "$1" | xargs -r -n1 pgrep -P; } | sort -u); do
        total=$((total + $(awk '{print $14 + $15}' /proc/$pid/stat 2>/dev/null || echo 0)))
    done
    echo $total
}

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
# run NAME CASE PORT SCRIPT PROCESS-PATTERN
run() {
    local name=$1 case=$2 port=$3 script=$4 pattern=$5
    # CASES=regex runs only the matching "name case" rows (e.g. CASES='nginx|tollgate.*repeated').
    [[ -z "${CASES:-}" || "$name $case" =~ $CASES ]] || return 0
    local check
    check=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(head -c 4000 "$WORK/repeated.txt")" \
        "http://127.0.0.1:$port/orders/1")
    # Warm up (connections, caches of keys) with the repeated token, so the distinct lists start
    # unseen when the measured run begins.
    local warmup=$WORK/repeated.lua
    [[ "$script" == *opaque* ]] && warmup=$script
    taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d1s -s "$warmup" "http://127.0.0.1:$port/orders/1" >/dev/null 2>&1 || true
    local before after
    before=$(ticks "$pattern")
    local output profile="" perf_pid=""
    if [[ -n "${PERF:-}" && "$name" == tollgate ]]; then
        # PERF=1: a cpu-clock profile of the proxy over the measured run (its figures then include
        # perf's own cost: use them for the profile, not for the table).
        profile="$WORK/perf-${case//[^a-zA-Z0-9]/_}"
        perf record -q -e cpu-clock -F 1999 -g -p "$TOLLGATE" -o "$profile.data" -- sleep "$DURATION" 2>/dev/null &
        perf_pid=$!
    fi
    output=$(taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$script" "http://127.0.0.1:$port/orders/1")
    after=$(ticks "$pattern")
    if [[ -n "$profile" ]]; then
        wait "$perf_pid" || true
        perf report -i "$profile.data" --no-children --sort dso,symbol --percent-limit 0.7 --stdio 2>/dev/null \
            | grep -E '^ +[0-9]' >"$profile.txt" || true
        echo "profile of tollgate $case: $profile.txt" >&2
    fi
    local rps requests non2xx p50 p99
    rps=$(echo "$output" | awk '/Requests\/sec/ {print $2}')
    requests=$(echo "$output" | awk '/requests in/ {print $1}')
    non2xx=$(echo "$output" | awk '/Non-2xx/ {print $5}')
    p50=$(echo "$output" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$output" | awk '$1 == "99%" {print $2}')
    local cpu
    cpu=$(awk -v t=$((after - before)) -v n="$requests" 'BEGIN { if (n > 0) printf "%.1f", t * 10000 / n; else print "-" }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$case" "$rps" "$p50" "$p99" "$cpu" "${non2xx:-0}" "$check" >>"$RESULTS"
}

NGINX_PATTERN="nginx -c $WORK/nx/"
run nginx "repeated RS256 (no auth)" 18081 "$WORK/repeated.lua" "$NGINX_PATTERN"
cat >"$WORK/public.lua" <<'LUA'
wrk.path = "/public/1"
LUA
run tollgate "pass-through (auth: none)" 18084 "$WORK/public.lua" "tollgate serve --config $WORK/tollgate.yaml"
run tollgate "pass-through, log off" 18085 "$WORK/public.lua" "tollgate serve --config $WORK/tollgate-nolog.yaml"
run tollgate "repeated RS256" 18084 "$WORK/repeated.lua" "tollgate serve --config $WORK/tollgate.yaml"
run haproxy "repeated RS256" 18082 "$WORK/repeated.lua" "haproxy -f $WORK"
run tollgate "distinct RS256" 18084 "$WORK/rs256.lua" "tollgate serve --config $WORK/tollgate.yaml"
run haproxy "distinct RS256" 18082 "$WORK/rs256.lua" "haproxy -f $WORK"
run mod_auth_openidc "distinct RS256" 18083 "$WORK/rs256.lua" "apache2 -f $WORK"
run tollgate "distinct ES256" 18084 "$WORK/es256.lua" "tollgate serve --config $WORK/tollgate.yaml"
run haproxy "distinct ES256" 18092 "$WORK/es256.lua" "haproxy -f $WORK"
run tollgate "opaque (introspection)" 18084 "$WORK/opaque.lua" "tollgate serve --config $WORK/tollgate.yaml"
run mod_auth_openidc "opaque (introspection, cached)" 18093 "$WORK/opaque.lua" "apache2 -f $WORK"
RSS=$(awk '/VmRSS/ {print $2}' /proc/$TOLLGATE/status)

echo
printf '%-18s %-32s %10s %9s %9s %12s %8s %6s\n' proxy case "req/s" p50 p99 "CPU µs/req" non-2xx check
while IFS=$'\t' read -r name case rps p50 p99 cpu non2xx check; do
    printf '%-18s %-32s %10s %9s %9s %12s %8s %6s\n' "$name" "$case" "$rps" "$p50" "$p99" "$cpu" "$non2xx" "$check"
done <"$RESULTS"
echo
NGINX_RPS=$(awk -F'\t' '$1 == "nginx" {print $3}' "$RESULTS")
rate() { awk -F'\t' -v n="$1" -v c="$2" '$1 == n && $2 == c {print $3}' "$RESULTS"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo "pass-through, Tollgate / nginx:            $(ratio "$(rate tollgate 'pass-through (auth: none)')" "$NGINX_RPS")   (the HTTP path alone)"
echo "pass-through, log on / log off:            $(ratio "$(rate tollgate 'pass-through (auth: none)')" "$(rate tollgate 'pass-through, log off')")   (target >= 0.95)"
echo "repeated token, Tollgate / nginx:          $(ratio "$(rate tollgate 'repeated RS256')" "$NGINX_RPS")   (target >= 0.8)"
echo "distinct RS256, Tollgate / HAProxy:        $(ratio "$(rate tollgate 'distinct RS256')" "$(rate haproxy 'distinct RS256')")   (target >= 1.25)"
echo "distinct ES256, Tollgate / HAProxy:        $(ratio "$(rate tollgate 'distinct ES256')" "$(rate haproxy 'distinct ES256')")   (target >= 1.2)"
echo "opaque, Tollgate / mod_auth_openidc:       $(ratio "$(rate tollgate 'opaque (introspection)')" "$(rate mod_auth_openidc 'opaque (introspection, cached)')")   (target >= 4)"
echo "Tollgate resident memory after the run:    $((RSS / 1024)) MB   (target <= 64)"
field() { awk -F'\t' -v n="$1" -v c="$2" -v k="$3" '$1 == n && $2 ~ c {print $k}' "$RESULTS"; }
# wrk prints latencies with their unit (850.00us, 3.93ms, 1.02s): in microseconds.
micros() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else if (v ~ /s$/) print n * 1000000; else print "" }'; }
echo "repeated token CPU/request, Tollgate / nginx: $(ratio "$(field tollgate '^repeated' 6)" "$(field nginx . 6)")   (target <= 1.3)"
echo "p99 at the repeated token, Tollgate / nginx:  $(ratio "$(micros "$(field tollgate '^repeated' 5)")" "$(micros "$(field nginx . 5)")")   (target <= 1.5)"
