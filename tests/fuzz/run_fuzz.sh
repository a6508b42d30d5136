#!/bin/sh
# run_fuzz.sh BUILD_DIR SECONDS [TARGET]: run a libFuzzer target (default fuzz_codec) for SECONDS on a
# copy of the committed seed corpus, so the corpus in the tree is never modified. Exits non-zero on a
# finding (crash, sanitizer report, leak, timeout) or if the target is missing; a reproducer is kept in
# the temp dir, whose path is printed.
set -eu

if [ $# -lt 2 ]; then
    echo "usage: $0 BUILD_DIR SECONDS [TARGET]" >&2
    exit 2
fi
build_dir=$1
seconds=$2
target=${3:-fuzz_codec}
here=$(cd "$(dirname "$0")" && pwd)
bin=$build_dir/$target

if [ ! -x "$bin" ]; then
    echo "run_fuzz: $bin not found (configure with -DSOL_FUZZ=ON and CC=clang)" >&2
    exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/sol-fuzz.XXXXXX")
mkdir -p "$work/corpus" "$work/artifacts"
# A target with a seed corpus of its own (corpus_seal for fuzz_seal) uses it, the others share corpus.
seeds=$here/corpus_${target#fuzz_}
[ -d "$seeds" ] || seeds=$here/corpus
if [ -d "$seeds" ]; then
    cp -R "$seeds/." "$work/corpus/"
fi

# UBSan only reports by default; make any undefined behaviour a finding.
UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export UBSAN_OPTIONS

echo "run_fuzz: $target for ${seconds}s in $work"
status=0
"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/fuzz.log" 2>&1 || status=$?
tail -n 20 "$work/fuzz.log"

if [ "$status" -ne 0 ] || [ -n "$(ls -A "$work/artifacts")" ]; then
    echo "run_fuzz: FINDING (exit $status); log and reproducer kept in $work" >&2
    ls -l "$work/artifacts" >&2
    exit 1
fi
rm -rf "$work"
echo "run_fuzz: $target clean for ${seconds}s"
