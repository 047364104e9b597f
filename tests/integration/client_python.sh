#!/usr/bin/env bash
# The Python client (clients/python/hpprouter) against real engines: runs its
# unittest suite (which starts and stops each engine it needs) and reports
# each test as ok / FAIL / SKIP; then installs the package with pip into a
# temporary directory (no network: --no-index, no build isolation) and
# imports it from there. Ends with "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.." || exit 2
export HPP_BUILD=${HPP_BUILD:-build}
PY=/usr/bin/python3
source tests/integration/check_lib.bash
suite_setup

"$PY" -m unittest discover -s clients/python/tests -v >"$tmp/unittest.log" 2>&1
rc=$?
# "test_x (test_client.Class.test_x) ... ok|FAIL|ERROR|skipped 'why'"
while IFS= read -r line; do
    name=$(sed -n 's/^\(test_[a-z0-9_]*\) (\([^)]*\)) \.\.\. .*/\2/p' <<<"$line")
    [ -n "$name" ] || continue
    case "$line" in
    *" ... ok") ok "$name" ;;
    *" ... skipped "*) skip "$name" "${line##* ... skipped }" ;;
    *) fail "$name" "${line##* ... }" ;;
    esac
done <"$tmp/unittest.log"
if [ "$rc" -ne 0 ]; then
    fail "python unittest exits 0" "$(grep -A 15 -E '^(FAIL|ERROR):' "$tmp/unittest.log" | head -n 40)"
fi

# pip install, as a gateway would (from the source tree, without fetching anything).
if ! "$PY" -c 'import setuptools' 2>/dev/null || ! "$PY" -m pip --version >/dev/null 2>&1; then
    skip "pip installs the package" "python3-pip or python3-setuptools not installed"
else
    # From a copy: a setuptools build writes build/ and *.egg-info where it runs.
    cp -r clients/python "$tmp/src" && rm -rf "$tmp/src/tests"
    "$PY" -m pip install --quiet --no-index --no-deps --no-build-isolation \
        --target "$tmp/site" "$tmp/src" >"$tmp/pip.log" 2>&1
    check "pip installs the package" 0 "$?"
    out=$(cd "$tmp" && PYTHONPATH=$tmp/site "$PY" -c \
        'import hpprouter, os; print(os.path.dirname(hpprouter.__file__))' 2>&1)
    check "the installed package imports" "$tmp/site/hpprouter" "$out"
fi
suite_end
