#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer and runs each on its corpus for a bounded time.
#   scripts/fuzz.sh                  every target, FUZZ_SECONDS (default 30) each, the request
#                                    parser FUZZ_PARSER_SECONDS (default 60)
#   scripts/fuzz.sh FuzzJWS 3600     one target for an hour
# New inputs the fuzzer finds go to a scratch copy of the corpus, never into the checkout; a
# crash leaves its input in .build-fuzz/artifacts/ (replay it with the ordinary build:
# `swift build && .build/debug/FuzzJWS .build-fuzz/artifacts/crash-…`) and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(FuzzJWS FuzzPath FuzzConfiguration FuzzRequestHead FuzzResponseHead)
corpora=(jws path configuration request-head response-head)
seconds="${FUZZ_SECONDS:-30}"
if [ $# -ge 1 ]; then
    targets=("$1")
    case "$1" in
        FuzzJWS) corpora=(jws) ;;
        FuzzPath) corpora=(path) ;;
        FuzzConfiguration) corpora=(configuration) ;;
        FuzzRequestHead) corpora=(request-head) ;;
        FuzzResponseHead) corpora=(response-head) ;;
        *) echo "unknown fuzz target $1" >&2; exit 2 ;;
    esac
    seconds="${2:-$seconds}"
fi

flags=(--scratch-path .build-fuzz -Xswiftc -use-ld=lld -Xswiftc -sanitize=fuzzer -Xswiftc -D -Xswiftc FUZZING)
for target in "${targets[@]}"; do
    swift build "${flags[@]}" --product "$target"
done
bin="$(swift build "${flags[@]}" --show-bin-path)"

scratch="$(mktemp -d)"
mkdir -p .build-fuzz/artifacts
trap 'rm -rf "$scratch"' EXIT
for index in "${!targets[@]}"; do
    target="${targets[$index]}"
    corpus="${corpora[$index]}"
    mkdir -p "$scratch/$corpus"
    cp Fuzz/Corpus/"$corpus"/* "$scratch/$corpus/"
    target_seconds="$seconds"
    if [ $# -eq 0 ] && [ "$target" = FuzzRequestHead ]; then
        # The HTTP/1.1 parser is the proxy's attack surface: it gets the longest run.
        target_seconds="${FUZZ_PARSER_SECONDS:-60}"
    fi
    echo "fuzzing $target for ${target_seconds}s"
    set +e
    "$bin/$target" -max_total_time="$target_seconds" -timeout=5 -rss_limit_mb=2048 -max_len=16384 \
        -print_final_stats=1 -artifact_prefix=.build-fuzz/artifacts/ "$scratch/$corpus" >"$scratch/$target.log" 2>&1
    status=$?
    set -e
    grep -E "^stat::number_of_executed_units|Fatal error|ERROR: libFuzzer|SUMMARY" "$scratch/$target.log" || true
    if [ "$status" -ne 0 ]; then
        tail -40 "$scratch/$target.log" >&2
        echo "$target failed (status $status)" >&2
        exit 1
    fi
done
