#!/usr/bin/env bash
# Runs every test: the cmocka unit tests built under $BUILD/tests, then the
# integration suites against the real binary ($STRATA_BIN). Ends with one line
# `N passed, N failed` and exits non-zero on any failure.
#
#   BUILD=build/san STRATA_BIN=build/san/strata tests/run.sh   (sanitizer run)
#   tests/run.sh tests/integration/test_conformance.py          (one suite)
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/rel}
export STRATA_BIN=${STRATA_BIN:-$PWD/bin/strata}
passed=0 failed=0 skipped=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

add() { passed=$((passed + $1)); failed=$((failed + $2)); }

suites=("$@")
if [ ${#suites[@]} -eq 0 ]; then
  while IFS= read -r t; do
    "$t" >"$log" 2>&1
    rc=$?
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
    p=${p:-0} f=${f:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi # crashed before its summary
    if [ "$f" -ne 0 ]; then cat "$log"; fi
    printf 'unit %-40s %3d passed, %d failed\n' "${t#"$BUILD"/tests/}" "$p" "$f"
    add "$p" "$f"
  done < <(find "$BUILD/tests" -type f -name 'test_*' -perm -u+x 2>/dev/null | sort)
  mapfile -t suites < <(ls tests/integration/test_*.py 2>/dev/null)
fi

for s in "${suites[@]}"; do
  python3 tests/integration/runner.py "$s" >"$log" 2>"$log.err"
  rc=$?
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
  p=$(echo "$line" | sed -n 's/^\([0-9]*\) passed.*/\1/p'); p=${p:-0}
  f=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed.*/\1/p'); f=${f:-0}
  k=$(echo "$line" | sed -n 's/.* \([0-9]*\) skipped.*/\1/p'); k=${k:-0}
  skipped=$((skipped + k))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  if [ "$f" -ne 0 ]; then cat "$log.err"; fi
  printf 'integration %-33s %3d passed, %d failed, %d skipped\n' "$(basename "$s")" "$p" "$f" "$k"
  add "$p" "$f"
  rm -f "$log.err"
done

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
