#!/bin/sh
# The tree is formatted as .clang-format says (make format fixes it); run by make test. Lists every
# file that is not and exits 1, so a change that forgot `make format` fails CI.
cd "$(dirname "$0")/.." || exit 2
command -v clang-format >/dev/null || { echo "clang-format missing (deploy/install-deps.sh)"; exit 2; }
bad=0
for f in $(git ls-files 'app/*.[ch]' 'node/*.[ch]' 'cluster/*.[ch]' 'ops/*.[ch]' 'bench/*.[ch]' 'tests/unit/*.[ch]' \
    'tests/fuzz/*.c'); do
    if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
        echo "not formatted: $f (make format)"
        bad=1
    fi
done
[ "$bad" = 0 ] && echo "formatting: every C file as .clang-format says"
exit "$bad"
