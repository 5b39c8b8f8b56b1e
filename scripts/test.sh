#!/usr/bin/env bash
# Runs every test Tollgate has, on a fresh machine: installs what the tests need, checks
# formatting, builds, and runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# The interop tests mint tokens with joserfc, an independent JOSE library from PyPI.
if ! python3 -c "import joserfc" 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check "joserfc>=1.6,<2"
fi

swift format lint --strict --recursive Package.swift Sources Tests
swift build --build-tests
swift test --skip-build
