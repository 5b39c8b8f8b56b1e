#!/usr/bin/env bash
# HTTP/2 pass-through: Tollgate (`auth: none`, access log on as shipped) against nginx
# `listen … http2` with `proxy_pass`, both on one core (CPU 1), h2load and the upstream (nginx
# answering "ok") on CPU 0, on 127.0.0.1 only. Two cases: h2c by prior knowledge, and TLS with
# ALPN choosing h2 (one self-signed certificate for both servers). Prints req/s per round and the
# ratio, and the upstream connects per request that strace counts in Tollgate.
#
#   benchmarks/load/http2.sh [SECONDS] [ROUNDS]
#   TOLLGATE_BIN=/tmp/tollgate-before benchmarks/load/http2.sh 5 2
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-5}
ROUNDS=${2:-2}
WORK=$(mktemp -d /tmp/tollgate-h2.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
need=()
command -v h2load >/dev/null || need+=(nghttp2-client)
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v strace >/dev/null || need+=(strace)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
TOLLGATE_BIN=${TOLLGATE_BIN:-.build-release/release/tollgate}
[ -x "$TOLLGATE_BIN" ] || swift build -c release --product tollgate --scratch-path .build-release

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
cat >"$WORK/up.conf" <<NGINX
worker_processes 1; daemon off; pid $WORK/up.pid; error_log /dev/null;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:18700; keepalive_requests 1000000;
  location / { return 200 "ok"; } } }
NGINX
cat >"$WORK/nx.conf" <<NGINX
worker_processes 1; daemon off; pid $WORK/nx.pid; error_log /dev/null;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; upstream up { server 127.0.0.1:18700; keepalive 64; }
  server { listen 127.0.0.1:18701 http2;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  server { listen 127.0.0.1:18711 ssl http2; ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
NGINX
cat >"$WORK/tollgate.yaml" <<YAML
listen: 127.0.0.1:18702
admin: 127.0.0.1:18703
upstream: http://127.0.0.1:18700
server:
  threads: 1
  h2c: true
routes:
  - match: { prefix: / }
    auth: none
YAML
cat >"$WORK/tollgate-tls.yaml" <<YAML
listen: 127.0.0.1:18712
admin: 127.0.0.1:18713
upstream: http://127.0.0.1:18700
server:
  threads: 1
  tls:
    certificate_file: $WORK/cert.pem
    key_file: $WORK/key.pem
routes:
  - match: { prefix: / }
    auth: none
YAML
taskset -c 0 /usr/sbin/nginx -c "$WORK/up.conf" -p "$WORK" & PIDS+=($!)
taskset -c 1 /usr/sbin/nginx -c "$WORK/nx.conf" -p "$WORK" & PIDS+=($!)
taskset -c 1 "$TOLLGATE_BIN" serve --config "$WORK/tollgate.yaml" >"$WORK/tollgate.log" 2>&1 & TOLLGATE=$!
PIDS+=($TOLLGATE)
taskset -c 1 "$TOLLGATE_BIN" serve --config "$WORK/tollgate-tls.yaml" >"$WORK/tollgate-tls.log" 2>&1 & PIDS+=($!)
for port in 18700 18701 18702 18711 18712; do
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done
# h2load negotiates h2 by ALPN on https URLs (it refuses a session that did not).
rate() { taskset -c 0 h2load -D "$DURATION" -c 8 -m 10 "$1://127.0.0.1:$2/x" | awk '/^finished/ {print $4}'; }
taskset -c 0 h2load -n 3000 -c 8 -m 10 http://127.0.0.1:18702/x >/dev/null
taskset -c 0 h2load -n 3000 -c 8 -m 10 https://127.0.0.1:18712/x >/dev/null
for round in $(seq "$ROUNDS"); do
    for case in "h2c http 18702 18701" "tls https 18712 18711"; do
        set -- $case
        t=$(rate "$2" "$3")
        n=$(rate "$2" "$4")
        echo "round $round, $1: tollgate $t req/s, nginx $n req/s, ratio $(awk -v a="$t" -v b="$n" 'BEGIN { printf "%.2f", a / b }') (target >= 0.5)"
    done
done
args=""
for task in /proc/$TOLLGATE/task/*; do args="$args -p ${task##*/}"; done
strace -c -f -o "$WORK/strace.txt" $args 2>/dev/null & STRACE=$!
sleep 0.5
taskset -c 0 h2load -n 10000 -c 8 -m 10 http://127.0.0.1:18702/x >/dev/null
kill -INT $STRACE; wait $STRACE 2>/dev/null || true
awk '$NF == "connect" {printf "upstream connects per request: %.4f\n", $4 / 10000; found = 1} END {if (!found) print "upstream connects per request: 0 (none counted)"}' "$WORK/strace.txt"
