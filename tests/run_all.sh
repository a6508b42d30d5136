#!/bin/bash
# Every test Sol has, in one run: unit (cmocka via ctest), integration, cluster, deploy and benchmark-smoke
# suites (pytest against real sol processes), then the unit, integration and cluster suites under
# ASan/UBSan, then the fuzzers (codec 60 s, gossip 30 s; seal, tls, ws, proxy 15 s each). Each stage runs even if an earlier one failed; the exit code is non-zero if any
# failed. Called by `make test` (which builds first) and by .ci/run.
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-/usr/bin/python3}
BUILD=${BUILD:-build}
ASAN_BUILD=${ASAN_BUILD:-build-asan}
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
JOBS=${JOBS:-2}
passed=0
failed=0
failed_names=""

stage() {
    local name=$1
    shift
    echo
    echo "=== $name: $*"
    local start=$SECONDS
    if "$@"; then
        passed=$((passed + 1))
        echo "=== $name: ok ($((SECONDS - start)) s)"
    else
        failed=$((failed + 1))
        failed_names="$failed_names $name"
        echo "=== $name: FAILED ($((SECONDS - start)) s)"
    fi
}

pytest_dir() {
    local bin=$1 dir=$2
    shift 2
    SOL_BIN=$bin "$PYTHON" -m pytest -q -p no:cacheprovider "$dir" "$@"
}

asan_build() {
    cmake -S . -B "$ASAN_BUILD" -DCMAKE_BUILD_TYPE=Debug -DSOL_SANITIZE=ON >/dev/null &&
        cmake --build "$ASAN_BUILD" -j"$JOBS" >/dev/null
}

# The packet decoder for FUZZ_SECONDS (60 by default), then the gossip receive path and the cluster's
# frame decoders for half as long, then opening sealed gossip, TLS, WebSocket, PROXY and the HTTP
# endpoint for a quarter each.
fuzz_run() {
    cmake -S . -B "$FUZZ_BUILD" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DSOL_FUZZ=ON >/dev/null &&
        cmake --build "$FUZZ_BUILD" -j"$JOBS" --target fuzz_codec fuzz_gossip fuzz_seal fuzz_tls fuzz_ws fuzz_proxy \
            fuzz_cluster fuzz_http >/dev/null &&
        ./tests/fuzz/run_fuzz.sh "$FUZZ_BUILD" "$FUZZ_SECONDS" fuzz_codec &&
        ./tests/fuzz/run_fuzz.sh "$FUZZ_BUILD" $((FUZZ_SECONDS / 2)) fuzz_gossip &&
        ./tests/fuzz/run_fuzz.sh "$FUZZ_BUILD" $((FUZZ_SECONDS / 4)) fuzz_seal &&
        ./tests/fuzz/run_fuzz.sh "$FUZZ_BUILD" $((FUZZ_SECONDS / 4)) fuzz_tls &&
        ./tests/fuzz/run_fuzz.sh "$FUZZ_BUILD" $((FUZZ_SECONDS / 4)) fuzz_ws &&
        ./tests/fuzz/run_fuzz.sh "$FUZZ_BUILD" $((FUZZ_SECONDS / 4)) fuzz_proxy &&
        ./tests/fuzz/run_fuzz.sh "$FUZZ_BUILD" $((FUZZ_SECONDS / 2)) fuzz_cluster &&
        ./tests/fuzz/run_fuzz.sh "$FUZZ_BUILD" $((FUZZ_SECONDS / 4)) fuzz_http
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

stage format ./tests/check_format.sh
stage unit bash -c "cd $BUILD && ctest --output-on-failure"
stage integration pytest_dir "$BUILD/sol" tests/integration
[ -d tests/cluster ] && stage cluster pytest_dir "$BUILD/sol" tests/cluster
[ -d tests/deploy ] && stage deploy pytest_dir "$BUILD/sol" tests/deploy
[ -d tests/bench ] && stage bench-smoke pytest_dir "$BUILD/sol" tests/bench
stage asan-build asan_build
stage asan-unit bash -c "cd $ASAN_BUILD && ctest --output-on-failure"
stage asan-integration pytest_dir "$ASAN_BUILD/sol" tests/integration
[ -d tests/cluster ] && stage asan-cluster pytest_dir "$ASAN_BUILD/sol" tests/cluster
stage fuzz fuzz_run

echo
echo "stages: $passed passed, $failed failed${failed_names:+ (failed:$failed_names)}"
[ "$failed" -eq 0 ]
