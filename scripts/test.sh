#!/usr/bin/env bash
# Runs every test Tollgate has, on a fresh machine: installs what the tests need, checks
# formatting, builds, and runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# The interop tests mint tokens with joserfc, an independent JOSE library from PyPI.
if ! python3 -c "import joserfc" 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check "joserfc>=1.6,<2"
fi
# The gRPC pass-through test uses grpcio, an independent gRPC implementation, as client and server.
if ! python3 -c "import grpc" 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check "grpcio>=1.60,<2"
fi

# The issuer's interop test is driven by Authlib, an independent OAuth 2 / OpenID Connect client.
if ! python3 -c "import authlib, requests" 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check "authlib>=1.3,<2" "requests>=2.28,<3"
fi
# py_oidc_auth, a relying-party library, drives the issuer too (it needs greenlet for its
# SQLAlchemy import).
if ! python3 -c "import py_oidc_auth" 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check "py_oidc_auth>=2606,<2700" "greenlet>=3"
fi
# The MCP end-to-end test runs the official MCP Python SDK: its server behind the gate, its own
# OAuth client in front.
if ! python3 -c "import mcp.client.auth, httpx2" 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check "mcp>=2.3,<3"
fi
# The forward-auth tests (and the DPoP cases' upstream) put Debian's nginx (auth_request) in front of Tollgate; the TLS tests
# make a throwaway certificate with openssl.
missing=()
if ! command -v nginx >/dev/null 2>&1 && ! [ -x /usr/sbin/nginx ]; then missing+=(nginx-light); fi
if ! [ -x /usr/bin/openssl ]; then missing+=(openssl); fi
# The DPoP cases run against Apache mod_oauth2 too, in the DPoP benchmark's set-up.
if ! [ -x /usr/sbin/apache2 ]; then missing+=(apache2); fi
if ! [ -f /usr/lib/apache2/modules/mod_oauth2.so ]; then missing+=(libapache2-mod-oauth2); fi
# The curl walk-through of the issuer uses curl, jq and xxd as its reader would; the issuer's
# attack tests read its SQLite file past it with Debian's sqlite3.
for tool in curl jq xxd sqlite3; do
    if ! command -v "$tool" >/dev/null 2>&1; then missing+=("$tool"); fi
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
    $SUDO apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# The issuer's PostgreSQL tests (store conformance, two replicas on one database, the Authlib
# suite on PostgreSQL) run against Debian's postgresql in a throwaway cluster on loopback.
eval "$(./scripts/postgres.sh start)"
trap './scripts/postgres.sh stop "$TOLLGATE_TEST_POSTGRES_DIR"' EXIT
export TOLLGATE_TEST_REQUIRE_POSTGRES=1

swift format lint --strict --recursive Package.swift Sources Tests Fuzz
swift build --build-tests
# What deploy/ ships: the manifests and inject's output against the Kubernetes schemas, checkov.
./scripts/validate-deploy.sh
# Every parser that sees hostile bytes, under libFuzzer for a bounded time (FUZZ_SECONDS each).
./scripts/fuzz.sh
swift test --skip-build
